from django.urls import path

from annotate import api
from annotate.pairs import api_urls as pair_api_urls
from annotate.suggestions import api as suggestion_api
from annotate.adjudication import api as adjudication_api
from annotate.agreement import api_urls as agreement_api_urls
from annotate.projects import api_urls as project_api_urls

urlpatterns = [
    *project_api_urls.urlpatterns,  # new project, settings, members (before projects/<slug>/)
    path("projects/", api.ProjectListAPI.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", api.ProjectDetailAPI.as_view(), name="api-project"),
    path("projects/<slug:slug>/trajectories/", api.TrajectoryListAPI.as_view(), name="api-trajectories"),
    path("projects/<slug:slug>/import/", api.ImportAPI.as_view(), name="api-import"),
    path("trajectories/<int:pk>/", api.TrajectoryDocumentAPI.as_view(), name="api-trajectory"),
    # The workbench.
    path("projects/<slug:slug>/dashboard/", api.DashboardAPI.as_view(), name="api-dashboard"),
    path("projects/<slug:slug>/tools/", api.ToolListAPI.as_view(), name="api-tools"),
    path("projects/<slug:slug>/next/", api.NextAPI.as_view(), name="api-next"),
    path("projects/<slug:slug>/assign/", api.AssignAPI.as_view(), name="api-assign"),
    path("projects/<slug:slug>/bulk-status/", api.BulkTransitionAPI.as_view(), name="api-bulk-status"),
    path("trajectories/<int:pk>/edits/", api.TrajectoryEditAPI.as_view(), name="api-edits"),
    path("trajectories/<int:pk>/turns/<int:turn>/steps/<int:step>/", api.StepAPI.as_view(), name="api-step"),
    path("trajectories/<int:pk>/status/", api.TransitionAPI.as_view(), name="api-status"),
    path("trajectories/<int:pk>/revisions/", api.RevisionListAPI.as_view(), name="api-revisions"),
    path("trajectories/<int:pk>/revisions/<int:version>/", api.RevisionDetailAPI.as_view(), name="api-revision"),
    path("trajectories/<int:pk>/revert/", api.RevertAPI.as_view(), name="api-revert"),
    path("trajectories/<int:pk>/check-arguments/", api.CheckArgumentsAPI.as_view(), name="api-check-arguments"),
    *pair_api_urls.urlpatterns,  # preference pairs
    path("trajectories/<int:pk>/adjudication/", adjudication_api.AdjudicationAPI.as_view(), name="api-adjudication"),
    # A judge model's suggestions.
    path("trajectories/<int:pk>/suggestions/", suggestion_api.SuggestionListAPI.as_view(), name="api-suggestions"),
    path("trajectories/<int:pk>/suggestions/<int:sid>/accept/", suggestion_api.AcceptSuggestionAPI.as_view(),
         name="api-suggestion-accept"),
    path("trajectories/<int:pk>/suggestions/<int:sid>/dismiss/", suggestion_api.DismissSuggestionAPI.as_view(),
         name="api-suggestion-dismiss"),
    *agreement_api_urls.urlpatterns,  # overlap and agreement
]
