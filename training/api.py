"""REST API for training jobs (DRF APIViews, explicit input and output serializers).

- ``GET  /api/projects/SLUG/training-jobs/``            a project's runs (``?status=&kind=``)
- ``POST /api/projects/SLUG/training-jobs/``            launch (lead): snapshot, kind, base_model, settings
- ``POST /api/projects/SLUG/training-jobs/preview/``    the job file, TRL config and command, nothing queued
- ``GET  /api/training-jobs/ID/``                       one run, with its summary and error
- ``GET  /api/training-jobs/ID/metrics/``               its logged steps (``?after=STEP`` for polling)
- ``POST /api/training-jobs/ID/cancel/`` and ``.../resume/`` (lead)

Validation is the same as the launch form's (``training.jobs.launch_errors``).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.api import project_for
from annotate.models import Project
from jobs.rows import request_cancel
from training import distributed, runner
from training.jobs import (LaunchError, ResumeError, launch_errors, launch_plan, launch_training,
                           preview_run_config, resume_training)
from training.models import MetricPoint, TrainingJob
from studio.rest import IdField, StrictSerializer, StudioPagination, id_or_none


class TrainingJobSerializer(serializers.ModelSerializer):
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = TrainingJob
        fields = ["id", "project", "snapshot", "kind", "name", "base_model", "config", "status", "message", "error",
                  "progress", "current_step", "total_steps", "eta_seconds", "cancel_requested", "resumed_from",
                  "resume_checkpoint", "output_dir", "summary", "created_by", "created_at", "started_at",
                  "finished_at", "heartbeat_at", "worker_host"]


class MetricPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricPoint
        fields = ["step", "epoch", "values", "created_at"]


class LaunchInputSerializer(StrictSerializer):
    snapshot = IdField(help_text="Id of a finished snapshot of the same kind")
    kind = serializers.ChoiceField(choices=list(runner.KINDS))
    base_model = serializers.CharField(max_length=1000, help_text="A local model folder or a hub id")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="training.runner.TrainSettings fields; missing ones take the defaults")


class PreviewOutputSerializer(serializers.Serializer):
    command = serializers.CharField()
    accelerate_config = serializers.DictField(allow_null=True, help_text="The accelerate config file (several "
                                                                         "processes on CUDA), else null")
    queue = serializers.CharField(help_text="The queue the job goes to: train, or train-<N>gpu for N GPUs a node")
    job = serializers.DictField()
    trl_config = serializers.DictField(child=serializers.DictField())


def job_for(request, pk: int, minimum: str = permissions.ANNOTATOR) -> TrainingJob:
    job = get_object_or_404(TrainingJob.objects.select_related("project"), pk=pk)
    permissions.require_role(request.user, job.project, minimum)
    return job


def parse_launch(project: Project, data) -> tuple:
    """Validated (snapshot, kind, base_model, name, settings), or a 400 naming each bad field."""
    inp = LaunchInputSerializer(data=data)
    inp.is_valid(raise_exception=True)
    v = inp.validated_data
    try:
        s = runner.TrainSettings.from_dict(v["settings"], v["kind"])
    except ValueError as exc:
        raise ValidationError({"settings": [str(exc)]}) from None
    snapshot = project.snapshots.filter(pk=v["snapshot"]).first()
    errors = launch_errors(project, snapshot, v["kind"], v["base_model"], s)
    if errors:
        raise ValidationError({k: [m] for k, m in errors.items()})
    return snapshot, v["kind"], v["base_model"], v["name"], s


class TrainingJobListAPI(APIView):
    pagination_class = StudioPagination

    @extend_schema(responses=TrainingJobSerializer(many=True), parameters=[
        OpenApiParameter("status", description="Only runs with this status"),
        OpenApiParameter("kind", description="Only runs of this kind (sft, dpo)")])
    def get(self, request, slug: str):
        project = project_for(request, slug)
        qs = project.training_jobs.all()
        if s := request.query_params.get("status"):
            qs = qs.filter(status=s)
        if k := request.query_params.get("kind"):
            qs = qs.filter(kind=k)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(TrainingJobSerializer(page, many=True).data)

    @extend_schema(request=LaunchInputSerializer, responses={201: TrainingJobSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, permissions.LEAD)
        snapshot, kind, base_model, name, s = parse_launch(project, request.data)
        try:
            job = launch_training(project=project, snapshot=snapshot, kind=kind, base_model=base_model,
                                  train_settings=s, user=request.user, name=name)
        except LaunchError as exc:
            raise ValidationError({k: [m] for k, m in exc.errors.items()}) from None
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_201_CREATED)


class TrainingPreviewAPI(APIView):
    @extend_schema(request=LaunchInputSerializer, responses=PreviewOutputSerializer)
    def post(self, request, slug: str):
        project = project_for(request, slug, permissions.LEAD)
        snapshot, kind, base_model, _, s = parse_launch(project, request.data)
        cfg = preview_run_config(snapshot, kind, base_model, s)
        devices = ["cpu", "cuda"] if s.device == "auto" else [s.device]
        plan = launch_plan(cfg, python="python")
        return Response({"command": plan.command_text, "accelerate_config": plan.accelerate_config,
                         "queue": distributed.train_queue(s.to_dict()),
                         "job": cfg.to_dict(), "trl_config": {d: runner.trl_kwargs(cfg, d) for d in devices}})


class TrainingJobDetailAPI(APIView):
    @extend_schema(responses=TrainingJobSerializer)
    def get(self, request, pk: int):
        return Response(TrainingJobSerializer(job_for(request, pk)).data)


class TrainingJobMetricsAPI(APIView):
    @extend_schema(responses=MetricPointSerializer(many=True), parameters=[
        OpenApiParameter("after", description="Only steps after this one (for polling); not a number: all")])
    def get(self, request, pk: int):
        job = job_for(request, pk)
        qs = job.metrics.all()
        after = id_or_none(request.query_params.get("after", ""))
        if after is not None:
            qs = qs.filter(step__gt=after)
        return Response(MetricPointSerializer(qs, many=True).data)


class TrainingJobCancelAPI(APIView):
    @extend_schema(request=None, responses=TrainingJobSerializer)
    def post(self, request, pk: int):
        job = job_for(request, pk, permissions.LEAD)
        request_cancel(job)
        job.refresh_from_db()
        return Response(TrainingJobSerializer(job).data)


class TrainingJobResumeAPI(APIView):
    @extend_schema(request=None, responses={201: TrainingJobSerializer})
    def post(self, request, pk: int):
        job = job_for(request, pk, permissions.LEAD)
        try:
            new = resume_training(job, request.user)
        except ResumeError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(TrainingJobSerializer(new).data, status=status.HTTP_201_CREATED)
