"""REST API for GRPO jobs (DRF APIViews, explicit input and output serializers).

- ``POST /api/projects/SLUG/grpo-jobs/``            launch (lead): snapshot, base_model, settings
- ``POST /api/projects/SLUG/grpo-jobs/preview/``    the job file, GRPOConfig and command, nothing queued

A GRPO job is a training job of kind ``grpo``: list, detail, metrics, cancel and resume are
``/api/projects/SLUG/training-jobs/`` and ``/api/training-jobs/ID/...``. Validation is the launch
form's (``rl.launch.grpo_errors``).
"""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.api import project_for
from rl import runner
from rl.launch import grpo_errors, launch_grpo, preview
from studio.rest import IdField, StrictSerializer
from training.api import TrainingJobSerializer
from training.jobs import LaunchError


class GRPOLaunchInputSerializer(StrictSerializer):
    snapshot = IdField(help_text="Id of a finished prompt snapshot")
    base_model = serializers.CharField(max_length=1000, help_text="A local model folder or a hub id")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="rl.runner.GRPOSettings fields (environment, rewards, num_generations, "
                                               "...); missing ones take the defaults")


class GRPOPreviewOutputSerializer(serializers.Serializer):
    command = serializers.CharField()
    job = serializers.DictField()
    grpo_config = serializers.DictField(child=serializers.DictField(), help_text="GRPOConfig kwargs by device")


def parse_launch(project, data) -> tuple:
    """Validated (snapshot, base_model, name, settings), or a 400 naming each bad field."""
    inp = GRPOLaunchInputSerializer(data=data)
    inp.is_valid(raise_exception=True)
    v = inp.validated_data
    try:
        s = runner.GRPOSettings.from_dict(v["settings"])
    except ValueError as exc:
        raise ValidationError({"settings": [str(exc)]}) from None
    snapshot = project.snapshots.filter(pk=v["snapshot"]).first()
    errors = grpo_errors(project, snapshot, v["base_model"], s)
    if errors:
        raise ValidationError({k: [m] for k, m in errors.items()})
    return snapshot, v["base_model"], v["name"], s


class GRPOLaunchAPI(APIView):
    @extend_schema(request=GRPOLaunchInputSerializer, responses={201: TrainingJobSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, permissions.LEAD)
        snapshot, base_model, name, s = parse_launch(project, request.data)
        try:
            job = launch_grpo(project=project, snapshot=snapshot, base_model=base_model, grpo_settings=s,
                              user=request.user, name=name)
        except LaunchError as exc:
            raise ValidationError({k: [m] for k, m in exc.errors.items()}) from None
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_201_CREATED)


class GRPOPreviewAPI(APIView):
    @extend_schema(request=GRPOLaunchInputSerializer, responses=GRPOPreviewOutputSerializer)
    def post(self, request, slug: str):
        project = project_for(request, slug, permissions.LEAD)
        snapshot, base_model, _, s = parse_launch(project, request.data)
        shown = preview(snapshot, base_model, s)
        devices = ["cpu", "cuda"] if s.device == "auto" else [s.device]
        cfg = runner.GRPORunConfig.from_dict(json.loads(shown["job_json"]))
        return Response({"command": shown["command"], "job": cfg.to_dict(),
                         "grpo_config": {d: runner.grpo_kwargs(cfg, d) for d in devices}})
