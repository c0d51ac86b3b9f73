"""The workbench: curating trajectories after import (pure rules, and the Django services around them).

Pure (no Django):
- ``editing``: the edits (``Edit``, ``apply_edit``) the editor and the API make;
- ``revisions``: what changed between two versions, and re-applying an edit over someone else's;
- ``workflow``: the review workflow's rules (draft -> submitted -> approved / rejected);
- ``step_forms`` and ``argument_form``: the editor's step forms, read back into edits.

Services (Django, shared by the pages, the API and the commands):
- ``documents``: a trajectory's versions and history; saving a whole document (optimistic locking);
- ``saving``: saving an edit, conflicts, merge / overwrite, revert;
- ``transitions``: moving a trajectory through the review workflow;
- ``queue``: the work queue, the next trajectory, assignment;
- ``dashboard``: counts, case-type coverage, labels and progress.

Pages: ``views``, the editor (a trajectory, its step saves, review moves, history, revert).
"""
