"""REST API for evaluations: eval sets, runs (launch, read, cancel), per-item results, and the two
ways a failure goes back to curation. The same rules as the pages: reading needs a role in the
project, everything else the lead role. Explicit input and output serializers; no logic in them.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.pairs import PairError
from evaluation import eval_sets, jobs
from evaluation.generate import GenerationSettings
from evaluation.models import EvalItemResult, EvalRun, EvalSet
from jobs.rows import request_cancel
from studio.rest import MAX_ID, IdField, StrictSerializer, StudioPagination, keyed_dict



def launch_inputs(project, v: dict) -> tuple[GenerationSettings, object]:
    """The generation settings and the training run (or None) a launch body names: shared by the
    evaluation and judge launch endpoints; a bad settings object is a 400 naming ``settings``."""
    try:
        gen = GenerationSettings.from_dict(v["settings"])
    except ValueError as exc:
        raise ValidationError({"settings": [str(exc)]}) from None
    training_job = project.training_jobs.filter(pk=v["training_job"]).first() if v["training_job"] else None
    return gen, training_job

class EvalSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalSet
        fields = ["id", "project", "name", "source", "snapshot", "split", "filters", "item_count", "case_type_counts",
                  "created_by", "created_at"]


class EvalSetInputSerializer(StrictSerializer):
    source = serializers.ChoiceField(choices=[EvalSet.SNAPSHOT, EvalSet.TRAJECTORIES],
                                     help_text="Upload candidates files through the page")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    snapshot = IdField(required=False, help_text="A finished prompt snapshot (source snapshot)")
    split = serializers.CharField(required=False, default="eval")
    filters = keyed_dict(eval_sets.TRAJECTORY_FILTERS + ("ids",), required=False, default=dict,
                         help_text=", ".join(eval_sets.TRAJECTORY_FILTERS) + ", ids (a list of trajectory ids) "
                                   "(source trajectories)")

    def validate_filters(self, value: dict) -> dict:
        ids = value.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= MAX_ID for i in ids)):
            raise serializers.ValidationError({"ids": ["must be a list of trajectory ids"]})
        return value


class EvalRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalRun
        fields = ["id", "project", "eval_set", "name", "model_source", "model_path", "training_job", "merge_adapter",
                  "endpoint_url", "endpoint_model", "settings", "limit", "status", "message", "error", "progress",
                  "total_items", "done_items", "failed_items", "cancel_requested", "summary", "checker_versions", "output_dir",
                  "created_by", "created_at", "started_at", "finished_at", "heartbeat_at", "worker_host"]


class EvalRunDetailSerializer(EvalRunSerializer):
    summary = serializers.SerializerMethodField()

    def get_summary(self, run) -> dict:
        return jobs.live_summary(run)


class EvalLaunchInputSerializer(StrictSerializer):
    eval_set = IdField()
    model_source = serializers.ChoiceField(choices=[k for k, _ in EvalRun.MODEL_SOURCES])
    model_path = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    training_job = IdField(required=False, allow_null=True, default=None)
    merge_adapter = serializers.BooleanField(required=False, default=False)
    endpoint_url = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    endpoint_model = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    limit = serializers.IntegerField(required=False, min_value=0, default=0)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="evaluation.generate.GenerationSettings fields; missing: defaults")


class EvalItemResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalItemResult
        fields = ["position", "item_id", "case_types", "prompt_text", "raw_output", "parsed", "score", "labels",
                  "decision", "gold_decision", "correct", "error", "episode", "seconds", "new_tokens",
                  "sent_trajectory", "pair"]


class EvalLoopOutputSerializer(serializers.Serializer):
    created = serializers.BooleanField()
    id = serializers.IntegerField()
    url = serializers.CharField()


def run_for(request, pk: int, minimum: str = permissions.ANNOTATOR) -> EvalRun:
    run = get_object_or_404(EvalRun.objects.select_related("project", "eval_set"), pk=pk)
    permissions.require_role(request.user, run.project, minimum)
    return run


class EvalSetListAPI(APIView):
    @extend_schema(responses=EvalSetSerializer(many=True))
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        return Response(EvalSetSerializer(project.eval_sets.all(), many=True).data)

    @extend_schema(request=EvalSetInputSerializer, responses={201: EvalSetSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = EvalSetInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        v = inp.validated_data
        snapshot = project.snapshots.filter(pk=v["snapshot"]).first() if v.get("snapshot") else None
        try:
            es = eval_sets.create_eval_set(project, v["source"], name=v["name"], user=request.user, snapshot=snapshot,
                                      split=v["split"], filters=v["filters"])
        except eval_sets.EvalSetError as exc:
            raise ValidationError({exc.field or "detail": [exc.message]}) from None
        return Response(EvalSetSerializer(es).data, status=status.HTTP_201_CREATED)


class EvalRunListAPI(APIView):
    pagination_class = StudioPagination

    @extend_schema(responses=EvalRunSerializer(many=True),
                   parameters=[OpenApiParameter("status", description="Only runs with this status")])
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        qs = project.eval_runs.all()
        if s := request.query_params.get("status"):
            qs = qs.filter(status=s)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(EvalRunSerializer(page, many=True).data)

    @extend_schema(request=EvalLaunchInputSerializer, responses={201: EvalRunSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = EvalLaunchInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        v = inp.validated_data
        gen, training_job = launch_inputs(project, v)
        eval_set = project.eval_sets.filter(pk=v["eval_set"]).first()
        try:
            run = jobs.launch_eval(project=project, eval_set=eval_set, model_source=v["model_source"], gen=gen,
                                   model_path=v["model_path"], training_job=training_job,
                                   merge_adapter=v["merge_adapter"], endpoint_url=v["endpoint_url"],
                                   endpoint_model=v["endpoint_model"], limit=v["limit"], name=v["name"],
                                   user=request.user)
        except jobs.LaunchError as exc:
            raise ValidationError({k: [m] for k, m in exc.errors.items()}) from None
        return Response(EvalRunSerializer(run).data, status=status.HTTP_201_CREATED)


class EvalRunDetailAPI(APIView):
    @extend_schema(responses=EvalRunDetailSerializer)
    def get(self, request, pk: int):
        return Response(EvalRunDetailSerializer(run_for(request, pk)).data)


class EvalRunItemsAPI(APIView):
    pagination_class = StudioPagination

    @extend_schema(responses=EvalItemResultSerializer(many=True), parameters=[
        OpenApiParameter("failed", description="1 or true: only the items scored wrong")])
    def get(self, request, pk: int):
        run = run_for(request, pk)
        qs = run.results.all()
        if request.query_params.get("failed") in ("1", "true"):
            qs = qs.filter(correct=False)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(EvalItemResultSerializer(page, many=True).data)


class EvalRunCancelAPI(APIView):
    @extend_schema(request=None, responses=EvalRunSerializer)
    def post(self, request, pk: int):
        run = run_for(request, pk, permissions.LEAD)
        request_cancel(run)
        run.refresh_from_db()
        return Response(EvalRunSerializer(run).data)


class _LoopAPI(APIView):
    action = ""

    @extend_schema(request=None, responses={201: EvalLoopOutputSerializer, 200: EvalLoopOutputSerializer})
    def post(self, request, pk: int, position: int):
        run = run_for(request, pk, permissions.LEAD)
        result = get_object_or_404(run.results.select_related("set_item"), position=position)
        if result.set_item is None:
            raise ValidationError({"detail": ["the eval set item of this result is gone"]})
        try:
            outcome = getattr(jobs, self.action)(result, user=request.user)
        except (PairError, ValueError) as exc:
            field = getattr(exc, "field", "") or "detail"
            raise ValidationError({field: [getattr(exc, "message", str(exc))]}) from None
        obj = outcome.obj
        return Response({"created": outcome.created, "id": obj.pk, "url": obj.get_absolute_url()},
                        status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)


class SendToAnnotationAPI(_LoopAPI):
    action = "send_to_annotation"


class MakePairAPI(_LoopAPI):
    action = "make_pair"
