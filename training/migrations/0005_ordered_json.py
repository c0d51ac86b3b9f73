# Tool specs, arguments and documents keep their key order on PostgreSQL too (json, not jsonb).

from django.db import migrations

import studio.fields
from studio.fields import json_columns_on_postgresql


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0004_snapshot_render_cache_blobs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='snapshotpair',
                    name='document',
                    field=studio.fields.OrderedJSONField(),
                ),
            ],
            database_operations=[json_columns_on_postgresql(
                ("training_snapshotpair", "document"))],
        ),
    ]
