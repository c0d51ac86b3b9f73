"""Creating a project and managing it from the app (not the Django admin).

- ``rules`` (pure): reading the settings forms' text (labels, tools, case types, roles) and the
  membership rules (a project always keeps a lead);
- ``services``: the changes, shared by the pages and the API;
- ``views`` / ``api``: the "New project" page, the project settings page and their endpoints;
- ``export``: a project's trajectories as JSONL, shared by ``export_trajectories`` and the download.
"""
