"""REST API for overlap and agreement: a project's overlap settings, making versions, the figures."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.agreement import services
from annotate.agreement.models import OverlapSettings
from annotate.agreement.tasks import refresh_agreement
from studio.rest import StrictSerializer


class OverlapSettingsSerializer(StrictSerializer, serializers.ModelSerializer):
    annotators = serializers.IntegerField(min_value=1, max_value=10)
    share = serializers.FloatField(min_value=0.0, max_value=1.0)
    threshold = serializers.FloatField(min_value=-1.0, max_value=1.0)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1)

    class Meta:
        model = OverlapSettings
        fields = ["annotators", "share", "threshold", "seed"]


class OverlapAPI(APIView):
    """A project's overlap settings (read: members; change: leads)."""

    @extend_schema(responses=OverlapSettingsSerializer)
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        return Response(OverlapSettingsSerializer(services.settings_for(project)).data)

    @extend_schema(request=OverlapSettingsSerializer, responses=OverlapSettingsSerializer)
    def put(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = OverlapSettingsSerializer(services.settings_for(project), data=request.data)
        inp.is_valid(raise_exception=True)
        inp.save()
        return Response(inp.data)


class VersionsOutputSerializer(serializers.Serializer):
    items = serializers.IntegerField()


class OverlapVersionsAPI(APIView):
    """Make the versions of every sampled trajectory not yet overlapped (leads; idempotent)."""

    @extend_schema(request=None, responses=VersionsOutputSerializer)
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        return Response({"items": services.create_versions(project)})


class AgreementOutputSerializer(serializers.Serializer):
    computed_at = serializers.DateTimeField(allow_null=True)
    figures = serializers.JSONField(allow_null=True, help_text="annotate.agreement.figures.agreement's result")


class QueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()


class AgreementAPI(APIView):
    """The newest agreement figures (leads); POST queues a refresh on the worker."""

    @extend_schema(responses=AgreementOutputSerializer)
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        report = services.latest_report(project)
        if report is None:
            return Response({"computed_at": None, "figures": None})
        return Response({"computed_at": report.finished_at, "figures": report.figures})

    @extend_schema(request=None, responses={202: QueuedSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        refresh_agreement.delay_on_commit(project.pk)
        return Response({"queued": True}, status=202)
