"""A notification to one user (imported by name at the end of ``annotate/models.py``, so it is a model of
the ``annotate`` app and its migration is the app's)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class NotificationQuerySet(models.QuerySet):
    def unread(self):
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    ASSIGNED, REJECTED = "assigned", "rejected"
    KIND_CHOICES = [(ASSIGNED, "Assigned to you"), (REJECTED, "Rejected")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    message = models.CharField(max_length=500)
    # Where the notification leads (a trajectory, or the queue filtered to the user's work).
    url = models.CharField(max_length=500)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The nav badge on every page ("my unread count") and the list page (mine, newest first).
            models.Index(fields=["user", "read_at", "created_at"], name="notification_user_unread"),
        ]

    def __str__(self) -> str:
        return self.message

    def get_absolute_url(self) -> str:
        return reverse("annotate:notification-open", args=[self.pk])
