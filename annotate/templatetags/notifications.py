"""``{% load notifications %}``: ``{% notification_link %}``, the nav's link with the unread count."""

from __future__ import annotations

from django import template

from annotate.notifications.services import unread_count

register = template.Library()


@register.inclusion_tag("annotate/notifications/_badge.html", takes_context=True)
def notification_link(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"unread": unread_count(user) if user is not None else 0}
