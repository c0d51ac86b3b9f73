"""Pages for notifications, included from ``annotate/urls.py`` (``annotate`` namespace)."""

from django.urls import path

from annotate.notifications import views

urlpatterns = [
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.mark_all_read, name="notifications-read"),
    path("notifications/<int:pk>/", views.open_notification, name="notification-open"),
]
