"""An index for the queue sorted by findings: (project, finding_count DESC, id).

The queue's "findings" column sorts a project's trajectories by ``-finding_count`` then ``id``
(annotate.workbench.queue), whatever the other filters. Without an index in that order the
database reads every row the filters leave and sorts them for each page: on PostgreSQL with
100,000 trajectories, ``split=eval&sort=-finding_count`` read and sorted 9,957 rows for one page
of 50 (58 ms; linear in the project's size). With it, the rows come in order and the page stops
after offset + 50 of them (9 ms at page 19, the same at any project size). The bench that shows it:
``bench/bench_workbench.py --database postgres``.

RunSQL rather than ``Meta.indexes``: the same statement on SQLite and PostgreSQL, kept out of
annotate/models.py this round (see the commit). A DESC column in an index is standard SQL on both.
"""

from django.db import migrations

INDEX = "traj_project_findings"


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0008_pair_external_id_whole"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON annotate_trajectory (project_id, finding_count DESC, id)",
            f"DROP INDEX IF EXISTS {INDEX}",
        ),
    ]
