"""REST API for judge runs: launch one over a batch of trajectories (lead), read it with its
judge-vs-human agreement per label (any role in the project)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from evaluation import judge
from evaluation.api import launch_inputs
from evaluation.judge_models import JudgeRun
from evaluation.models import EvalRun
from studio.rest import IdField, StrictSerializer
from training.jobs import LaunchError


class JudgeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = JudgeRun
        fields = ["id", "project", "name", "model_source", "model_path", "training_job", "merge_adapter",
                  "endpoint_url", "endpoint_model", "settings", "trajectory_ids", "status", "message", "error",
                  "progress", "total_items", "done_items", "suggestion_count", "problems", "created_by",
                  "created_at", "started_at", "finished_at"]


class JudgeRunDetailSerializer(JudgeRunSerializer):
    agreement = serializers.SerializerMethodField()

    class Meta(JudgeRunSerializer.Meta):
        fields = JudgeRunSerializer.Meta.fields + ["agreement"]

    def get_agreement(self, run) -> list[dict]:
        return judge.judge_vs_humans(run)


class JudgeLaunchInputSerializer(StrictSerializer):
    trajectories = serializers.ListField(child=IdField(), min_length=1, max_length=judge.MAX_BATCH)
    model_source = serializers.ChoiceField(choices=EvalRun.MODEL_SOURCES)
    model_path = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    training_job = IdField(required=False, allow_null=True, default=None)
    merge_adapter = serializers.BooleanField(required=False, default=False)
    endpoint_url = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    endpoint_model = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="evaluation.generate.GenerationSettings fields; missing: defaults")


class JudgeRunListAPI(APIView):
    @extend_schema(responses=JudgeRunSerializer(many=True))
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        return Response(JudgeRunSerializer(project.judge_runs.all()[:200], many=True).data)

    @extend_schema(request=JudgeLaunchInputSerializer, responses={201: JudgeRunSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = JudgeLaunchInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        v = inp.validated_data
        gen, training_job = launch_inputs(project, v)
        try:
            run = judge.launch_judge(project=project, trajectory_ids=v["trajectories"], model_source=v["model_source"],
                                     gen=gen, model_path=v["model_path"], training_job=training_job,
                                     merge_adapter=v["merge_adapter"], endpoint_url=v["endpoint_url"],
                                     endpoint_model=v["endpoint_model"], name=v["name"], user=request.user)
        except LaunchError as exc:
            raise ValidationError({k: [m] for k, m in exc.errors.items()}) from None
        return Response(JudgeRunSerializer(run).data, status=status.HTTP_201_CREATED)


class JudgeRunDetailAPI(APIView):
    @extend_schema(responses=JudgeRunDetailSerializer)
    def get(self, request, pk: int):
        run = get_object_or_404(JudgeRun.objects.select_related("project"), pk=pk)
        permissions.require_role(request.user, run.project)
        return Response(JudgeRunDetailSerializer(run).data)
