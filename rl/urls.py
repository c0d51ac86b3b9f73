from django.urls import path

from rl import views

app_name = "rl"

urlpatterns = [
    path("p/<slug:slug>/grpo/new/", views.launch_grpo_job, name="launch-grpo"),
]
