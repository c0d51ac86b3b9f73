from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("p/<slug:slug>/runs/", views.run_list, name="run-list"),
    path("p/<slug:slug>/runs/new/", views.launch_job, name="launch-job"),
    path("runs/<int:pk>/", views.job_detail, name="job-detail"),
    path("runs/<int:pk>/cancel/", views.cancel_job, name="cancel-job"),
    path("runs/<int:pk>/resume/", views.resume_job, name="resume-job"),
    path("runs/<int:pk>/files/<str:name>", views.download_artifact, name="download-artifact"),
]
