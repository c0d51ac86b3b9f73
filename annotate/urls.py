from django.urls import include, path

from annotate import views
from annotate.workbench import views as editor
from annotate.suggestions import views as suggestion_views
from annotate.adjudication import views as adjudication_views

app_name = "annotate"

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("p/<slug:slug>/", views.project_detail, name="project-detail"),
    path("p/<slug:slug>/trajectories/", views.trajectory_list, name="trajectory-list"),
    path("p/<slug:slug>/import/", views.import_trajectories, name="import"),
    path("import/formats/", views.import_formats_help, name="import-formats"),
    path("t/<int:pk>/", editor.trajectory_detail, name="trajectory-detail"),
    # The workbench: queue actions, step / turn / metadata saves, structure edits, review, history.
    path("p/<slug:slug>/next/", views.next_trajectory, name="next-trajectory"),
    path("p/<slug:slug>/assign/", views.assign_trajectories, name="assign"),
    path("p/<slug:slug>/bulk/", views.bulk_action, name="bulk"),
    path("t/<int:pk>/steps/<int:turn>/<int:step>/", editor.update_step, name="update-step"),
    path("t/<int:pk>/steps/<int:turn>/<int:step>/arguments/", editor.argument_fields_view, name="argument-fields"),
    path("t/<int:pk>/steps/<int:turn>/<int:step>/check/", editor.check_arguments_view, name="check-arguments"),
    path("t/<int:pk>/turns/<int:turn>/", editor.update_turn, name="update-turn"),
    path("t/<int:pk>/meta/", editor.update_meta, name="update-meta"),
    path("t/<int:pk>/structure/", editor.edit_structure, name="edit-structure"),
    path("t/<int:pk>/status/", editor.change_status, name="change-status"),
    path("t/<int:pk>/history/", editor.history, name="history"),
    path("t/<int:pk>/revert/", editor.revert_revision, name="revert"),
    path("", include("annotate.pairs.urls")),  # preference pairs
    path("p/<slug:slug>/adjudication/", adjudication_views.adjudication_queue, name="adjudication-queue"),
    path("t/<int:pk>/adjudicate/", adjudication_views.adjudicate_trajectory, name="adjudicate"),
    path("t/<int:pk>/suggestions/", suggestion_views.suggestion_box, name="suggestion-box"),
    path("t/<int:pk>/suggestions/<int:sid>/<str:verb>/", suggestion_views.decide_suggestion, name="decide-suggestion"),
    path("", include("annotate.agreement.urls")),  # overlap and agreement
    path("", include("annotate.projects.urls")),  # new project, project settings, export
    path("", include("annotate.notifications.urls")),  # in-app notifications
]
