"""Evaluation pages under ``evaluation/`` and its API under ``api/`` (one include in studio/urls.py).

API views are exempt from the login redirect (DRF answers 401/403 itself), as ``studio.urls.api``
does for the other apps' API.
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from evaluation import api, judge_api, judge_views, views

app_name = "evaluation"


def _api(route: str, view, name: str):
    return path(route, login_not_required(view.as_view()), name=name)


urlpatterns = [
    path("evaluation/p/<slug:slug>/", views.run_list, name="run-list"),
    path("evaluation/p/<slug:slug>/new/", views.launch_run, name="launch-run"),
    path("evaluation/p/<slug:slug>/sets/", views.eval_sets, name="eval-sets"),
    path("evaluation/p/<slug:slug>/compare/", views.compare_runs, name="compare-runs"),
    path("evaluation/runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("evaluation/runs/<int:pk>/cancel/", views.cancel_run, name="cancel-run"),
    path("evaluation/runs/<int:pk>/items/<int:position>/", views.item_detail, name="item-detail"),
    path("evaluation/runs/<int:pk>/items/<int:position>/annotate/", views.send_to_annotation,
         name="send-to-annotation"),
    path("evaluation/runs/<int:pk>/items/<int:position>/pair/", views.make_pair, name="make-pair"),
    # API
    _api("api/projects/<slug:slug>/eval-sets/", api.EvalSetListAPI, "api-eval-sets"),
    _api("api/projects/<slug:slug>/eval-runs/", api.EvalRunListAPI, "api-eval-runs"),
    _api("api/eval-runs/<int:pk>/", api.EvalRunDetailAPI, "api-eval-run"),
    _api("api/eval-runs/<int:pk>/items/", api.EvalRunItemsAPI, "api-eval-run-items"),
    _api("api/eval-runs/<int:pk>/cancel/", api.EvalRunCancelAPI, "api-eval-run-cancel"),
    _api("api/eval-runs/<int:pk>/items/<int:position>/send-to-annotation/", api.SendToAnnotationAPI,
         "api-eval-send-to-annotation"),
    _api("api/eval-runs/<int:pk>/items/<int:position>/make-pair/", api.MakePairAPI, "api-eval-make-pair"),
    # Judge runs: a model as one more annotator.
    path("evaluation/p/<slug:slug>/judge/", judge_views.judge_runs, name="judge-runs"),
    path("evaluation/judge/<int:pk>/", judge_views.judge_detail, name="judge-detail"),
    _api("api/projects/<slug:slug>/judge-runs/", judge_api.JudgeRunListAPI, "api-judge-runs"),
    _api("api/judge-runs/<int:pk>/", judge_api.JudgeRunDetailAPI, "api-judge-run"),
]
