# Tool specs, arguments and documents keep their key order on PostgreSQL too (json, not jsonb).

from django.db import migrations

import studio.fields
from studio.fields import json_columns_on_postgresql


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0002_workbench_search'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='pair',
                    name='chosen',
                    field=studio.fields.OrderedJSONField(default=list),
                ),
                migrations.AlterField(
                    model_name='pair',
                    name='context',
                    field=studio.fields.OrderedJSONField(),
                ),
                migrations.AlterField(
                    model_name='pair',
                    name='rejected',
                    field=studio.fields.OrderedJSONField(default=list),
                ),
                migrations.AlterField(
                    model_name='pairsuggestion',
                    name='chosen',
                    field=studio.fields.OrderedJSONField(),
                ),
                migrations.AlterField(
                    model_name='pairsuggestion',
                    name='context',
                    field=studio.fields.OrderedJSONField(),
                ),
                migrations.AlterField(
                    model_name='pairsuggestion',
                    name='rejected',
                    field=studio.fields.OrderedJSONField(),
                ),
                migrations.AlterField(
                    model_name='revision',
                    name='document',
                    field=studio.fields.OrderedJSONField(),
                ),
                migrations.AlterField(
                    model_name='step',
                    name='arguments',
                    field=studio.fields.OrderedJSONField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name='tool',
                    name='parameters',
                    field=studio.fields.OrderedJSONField(default=dict),
                ),
                migrations.AlterField(
                    model_name='trajectory',
                    name='reference',
                    field=studio.fields.OrderedJSONField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name='trajectory',
                    name='tools',
                    field=studio.fields.OrderedJSONField(blank=True, default=list),
                ),
            ],
            database_operations=[json_columns_on_postgresql(
                ("annotate_pair", "chosen"), ("annotate_pair", "context"), ("annotate_pair", "rejected"), ("annotate_pairsuggestion", "chosen"), ("annotate_pairsuggestion", "context"), ("annotate_pairsuggestion", "rejected"), ("annotate_revision", "document"), ("annotate_step", "arguments"), ("annotate_tool", "parameters"), ("annotate_trajectory", "reference"), ("annotate_trajectory", "tools"))],
        ),
    ]
