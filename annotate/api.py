"""REST API for projects, trajectories and imports (DRF APIViews, explicit serializers)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.findings import validate
from annotate.forms import IMPORT_FORMATS
from annotate.importing import parse_file
from annotate.models import Project, Trajectory
from annotate.services import import_parsed


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "slug", "name", "description", "guidelines", "error_labels", "required_case_types",
                  "target_template", "target_tokenizer", "created_at"]


class TrajectorySummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Trajectory
        fields = ["id", "project", "title", "external_id", "source", "status", "assignee", "version",
                  "case_types", "split", "tags", "step_count", "finding_count", "created_at", "updated_at"]


class ImportInputSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=[f for f, _ in IMPORT_FORMATS], default="auto")
    answers = serializers.FileField(required=False)
    skip_invalid = serializers.BooleanField(default=False)


class ImportOutputSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    skipped = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())


def project_for(request, slug: str, minimum: str = permissions.ANNOTATOR) -> Project:
    project = get_object_or_404(Project, slug=slug)
    permissions.require_role(request.user, project, minimum)
    return project


class ProjectListAPI(APIView):
    @extend_schema(responses=ProjectSerializer(many=True))
    def get(self, request):
        return Response(ProjectSerializer(permissions.projects_for(request.user).order_by("name"), many=True).data)


class ProjectDetailAPI(APIView):
    @extend_schema(responses=ProjectSerializer)
    def get(self, request, slug: str):
        return Response(ProjectSerializer(project_for(request, slug)).data)


class TrajectoryListAPI(APIView):
    @extend_schema(responses=TrajectorySummarySerializer(many=True))
    def get(self, request, slug: str):
        project = project_for(request, slug)
        qs = project.trajectories.order_by("id")
        if s := request.query_params.get("status"):
            qs = qs.filter(status=s)
        if ct := request.query_params.get("case_type"):
            qs = qs.with_case_type(ct)
        from rest_framework.pagination import PageNumberPagination

        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(TrajectorySummarySerializer(page, many=True).data)


class TrajectoryDocumentAPI(APIView):
    """One trajectory as its canonical document, with validation findings."""

    def get(self, request, pk: int):
        trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
        permissions.require_role(request.user, trajectory.project)
        doc = trajectory.to_canonical()
        data = TrajectorySummarySerializer(trajectory).data
        data["document"] = doc.to_dict()
        data["findings"] = [f.to_dict() for f in validate(doc)]
        return Response(data)


class ImportAPI(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=ImportInputSerializer, responses={201: ImportOutputSerializer, 400: ImportOutputSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, permissions.LEAD)
        inp = ImportInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        upload = inp.validated_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            return Response({"imported": 0, "skipped": 0, "errors": [{
                "file": upload.name, "line": None, "field": "",
                "message": f"file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} bytes"}]},
                status=status.HTTP_400_BAD_REQUEST)
        answers = inp.validated_data.get("answers")
        result = parse_file(upload.read(), upload.name, fmt=inp.validated_data["format"],
                            max_bytes=settings.IMPORT_MAX_BYTES, skip_invalid=inp.validated_data["skip_invalid"],
                            answers=answers.read() if answers else None)
        outcome = import_parsed(project, result, filename=upload.name, fmt=inp.validated_data["format"],
                                user=request.user)
        code = status.HTTP_201_CREATED if outcome.imported else status.HTTP_400_BAD_REQUEST
        return Response(ImportOutputSerializer({"imported": outcome.imported, "skipped": outcome.skipped,
                                                "errors": outcome.errors}).data, status=code)
