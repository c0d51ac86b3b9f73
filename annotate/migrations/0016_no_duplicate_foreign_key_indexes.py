"""Drop four foreign-key indexes that another index already covers.

Each of these columns is the first column of a unique constraint or composite index of its table
(``step_order``, ``unique_turn_index``, ``unique_step_label``, ``unique_revision_version``), which
serves every lookup the lone index served. The lone indexes were only written: about 150 bytes
and eleven B-tree inserts per imported trajectory of ten steps. (The trajectory's project index
stays: it also gives a project's trajectories in id order without a sort.)

The model state changes with ``AlterField(db_index=False)``; the database only drops the index
(``DROP INDEX IF EXISTS``, the same names on SQLite and PostgreSQL): on SQLite, Django would
otherwise rebuild each whole table to alter a foreign key, copying every step row.
"""

import django.db.models.deletion
from django.db import migrations, models

# (model, field, table, column, index name as Django named it)
INDEXES = [
    ("revision", "trajectory", "annotate_revision", "trajectory_id", "annotate_revision_trajectory_id_3ab74fd2"),
    ("step", "trajectory", "annotate_step", "trajectory_id", "annotate_step_trajectory_id_b9bca704"),
    ("steplabel", "step", "annotate_steplabel", "step_id", "annotate_steplabel_step_id_3bb515d4"),
    ("turn", "trajectory", "annotate_turn", "trajectory_id", "annotate_turn_trajectory_id_790faa65"),
]
TARGETS = {"revision": ("annotate.trajectory", "revisions"), "step": ("annotate.trajectory", "steps"),
           "steplabel": ("annotate.step", "labels"),
           "turn": ("annotate.trajectory", "turns")}


def _state(model: str, name: str):
    to, related = TARGETS[model]
    return migrations.AlterField(model_name=model, name=name, field=models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name=related, to=to))


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0015_notifications"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[_state(model, name) for model, name, *_ in INDEXES],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{index}"',
                                  reverse_sql=f'CREATE INDEX "{index}" ON "{table}" ("{column}")')
                for _, _, table, column, index in INDEXES
            ],
        ),
    ]
