"""Pages for overlap and agreement, included from ``annotate/urls.py`` (``annotate`` namespace)."""

from django.urls import path

from annotate.agreement import views

urlpatterns = [
    path("p/<slug:slug>/agreement/", views.agreement_page, name="agreement"),
]
