"""The job machinery shared by every kind of job (snapshot exports, training runs, evaluation runs).

A job row (a model with ``rows.JobFields``) is the single source of truth the UI reads; its broker
message is only a wake-up call. Read in this order:

- ``rows``: the row's fields and status, and the conditional UPDATEs that move it
  (``claim``, ``beat``, ``finish``, ``request_cancel``).
- ``kinds``: each app registers its kinds of job here (the model, its Celery task, its runner),
  so this package imports no app: the data flows annotate → training → evaluation, and all of
  them may use ``jobs``.
- ``processes``: a runner subprocess in its own process group (start, stop, tail its files).
- ``runner_io``: what every runner subprocess shares (its job file, its event log, ``run_main``).
- ``supervisor``: the worker's loop around a claimed row's runner (``Monitor``, ``run_supervised``).
- ``queue``: sending rows to the broker, and finding the ones whose message was lost.
- ``sweep``: the periodic sweep of stale heartbeats and lost messages; ``tasks`` runs it.

This package has no concrete models, so it is no Django app.
"""
