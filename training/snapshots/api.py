"""REST API for snapshots: list, create (pin + queue the export), detail with the audit, override, cancel,
retry (a failed or cancelled export starts over)."""

from __future__ import annotations

import dataclasses

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from studio.rest import MAX_ID, StrictSerializer, keyed_dict
from training.export import ExportSettings
from training.models import Snapshot
from training.snapshots.lifecycle import create_snapshot, override_audit, request_cancel, retry_export
from training.snapshots.selection import Selection, SnapshotError


class SnapshotSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    blocked = serializers.BooleanField(read_only=True)

    class Meta:
        model = Snapshot
        fields = ["id", "name", "project", "kind", "status", "progress", "message", "error", "filters",
                  "render_settings", "content_hash", "out_dir", "item_count", "sample_count", "audit_errors",
                  "blocked", "override_reason", "override_at", "created_at", "started_at", "finished_at", "attempts"]


class SnapshotDetailSerializer(SnapshotSerializer):
    class Meta(SnapshotSerializer.Meta):
        fields = SnapshotSerializer.Meta.fields + ["audit"]


SELECTION_KEYS = tuple(f.name for f in dataclasses.fields(Selection))
RENDER_SETTING_KEYS = tuple(f.name for f in dataclasses.fields(ExportSettings) if f.name != "kind")


class SnapshotCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=[k for k, _ in Snapshot.KIND_CHOICES], default="sft")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    filters = keyed_dict(SELECTION_KEYS, required=False, help_text=", ".join(SELECTION_KEYS))
    render_settings = keyed_dict(RENDER_SETTING_KEYS, required=False, help_text=", ".join(RENDER_SETTING_KEYS))

    def validate_filters(self, value: dict) -> dict:
        ids = value.get("ids")
        if isinstance(ids, list) and any(isinstance(i, int) and not 1 <= i <= MAX_ID for i in ids):
            raise serializers.ValidationError({"ids": ["trajectory ids run from 1 to 2^63-1"]})
        return value


class OverrideSerializer(StrictSerializer):
    reason = serializers.CharField()


def snapshot_for(request, pk: int, minimum: str = permissions.ANNOTATOR) -> Snapshot:
    snap = get_object_or_404(Snapshot.objects.select_related("project"), pk=pk)
    permissions.require_role(request.user, snap.project, minimum)
    return snap


def error_response(e: SnapshotError) -> Response:
    return Response({"field": e.field, "error": e.message},
                    status=status.HTTP_400_BAD_REQUEST)


class SnapshotListAPI(APIView):
    @extend_schema(responses=SnapshotSerializer(many=True))
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        return Response(SnapshotSerializer(project.snapshots.order_by("-created_at")[:200], many=True).data)

    @extend_schema(request=SnapshotCreateSerializer, responses={201: SnapshotSerializer, 200: SnapshotSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = SnapshotCreateSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        try:
            snap = create_snapshot(project, d["kind"], d.get("filters") or {}, d.get("render_settings") or {},
                                   request.user, name=d.get("name", ""))
        except SnapshotError as e:
            return error_response(e)
        # The same content hash returns the existing snapshot (200) instead of a new one (201).
        return Response(SnapshotSerializer(snap).data,
                        status=status.HTTP_200_OK if getattr(snap, "reused", False) else status.HTTP_201_CREATED)


class SnapshotDetailAPI(APIView):
    @extend_schema(responses=SnapshotDetailSerializer)
    def get(self, request, pk: int):
        return Response(SnapshotDetailSerializer(snapshot_for(request, pk)).data)


class SnapshotOverrideAPI(APIView):
    @extend_schema(request=OverrideSerializer, responses=SnapshotSerializer)
    def post(self, request, pk: int):
        snap = snapshot_for(request, pk, permissions.LEAD)
        inp = OverrideSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            override_audit(snap, request.user, inp.validated_data["reason"])
        except SnapshotError as e:
            return error_response(e)
        return Response(SnapshotSerializer(snap).data)


class _SnapshotActionAPI(APIView):
    """A lead's action on a snapshot, ``perform(snapshot, user)`` (not ``action``: DRF and the schema
    generator read that name), answered with the snapshot as it is then."""

    perform = None

    @extend_schema(request=None, responses=SnapshotSerializer)
    def post(self, request, pk: int):
        snap = snapshot_for(request, pk, permissions.LEAD)
        try:
            type(self).perform(snap, request.user)
        except SnapshotError as e:
            return error_response(e)
        snap.refresh_from_db()
        return Response(SnapshotSerializer(snap).data)


class SnapshotCancelAPI(_SnapshotActionAPI):
    perform = request_cancel


class SnapshotRetryAPI(_SnapshotActionAPI):
    perform = retry_export
