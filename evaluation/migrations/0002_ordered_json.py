# Tool specs, arguments and documents keep their key order on PostgreSQL too (json, not jsonb).

from django.db import migrations

import studio.fields
from studio.fields import json_columns_on_postgresql


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='evalitemresult',
                    name='episode',
                    field=studio.fields.OrderedJSONField(blank=True, help_text='The replayed continuation, when there was one', null=True),
                ),
                migrations.AlterField(
                    model_name='evalsetitem',
                    name='document',
                    field=studio.fields.OrderedJSONField(help_text='evaluation.items.EvalItem as a dict'),
                ),
            ],
            database_operations=[json_columns_on_postgresql(
                ("evaluation_evalitemresult", "episode"), ("evaluation_evalsetitem", "document"))],
        ),
    ]
