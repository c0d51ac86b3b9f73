"""REST API of a GRPO run's rollouts (what the run page does).

- ``GET  /api/training-jobs/ID/rollouts/``        the run's stored rollouts (``?step=`` one step); any role
- ``POST /api/training-jobs/ID/rollouts/pair/``   ``{"rollouts": [id, id]}``: a draft preference pair of two
  rollouts of one prompt, the higher total reward chosen (lead); 201 new, 200 when they already make one
"""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.pairs.core import PairError
from studio.rest import StrictSerializer, StudioPagination, id_list, id_or_none
from training.api import job_for
from training.rollouts.store import make_rollout_pair, rollout_rows


class RolloutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField(help_text="The trajectory's page in the editor")
    status = serializers.CharField()
    step = serializers.IntegerField()
    prompt_id = serializers.CharField()
    source_trajectory = serializers.IntegerField(allow_null=True)
    total_reward = serializers.FloatField()
    rewards = serializers.DictField(child=serializers.FloatField())
    hit_iteration_limit = serializers.BooleanField()
    tool_errors = serializers.IntegerField()

    def to_representation(self, row):
        extra = row.extra or {}
        return {"id": row.pk, "url": row.get_absolute_url(), "status": row.status, "step": int(extra.get("step", 0)),
                "prompt_id": str(extra.get("prompt_id", "")), "source_trajectory": extra.get("source_trajectory"),
                "total_reward": float(extra.get("total_reward") or 0.0), "rewards": dict(extra.get("rewards") or {}),
                "hit_iteration_limit": bool(extra.get("hit_iteration_limit")),
                "tool_errors": int(extra.get("tool_errors") or 0)}


class RolloutPairInputSerializer(StrictSerializer):
    rollouts = id_list(min_length=2, max_length=2, help_text="Two rollouts of one prompt of this run (trajectory "
                                                             "ids); the higher total reward is chosen")


class RolloutPairOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    chosen = serializers.IntegerField(help_text="The rollout whose steps are chosen")
    created = serializers.BooleanField()


class RolloutListAPI(APIView):
    pagination_class = StudioPagination

    @extend_schema(responses=RolloutSerializer(many=True), parameters=[
        OpenApiParameter("step", description="Only the rollouts of this step; not a number: all")])
    def get(self, request, pk: int):
        job = job_for(request, pk)
        rows = rollout_rows(job).order_by("id")
        step = id_or_none(request.query_params.get("step", ""))
        if step is not None:
            rows = rows.filter(extra__step=step)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(RolloutSerializer(page, many=True).data)


class RolloutPairAPI(APIView):
    @extend_schema(request=RolloutPairInputSerializer,
                   responses={201: RolloutPairOutputSerializer, 200: RolloutPairOutputSerializer})
    def post(self, request, pk: int):
        job = job_for(request, pk, permissions.LEAD)
        inp = RolloutPairInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        first, second = inp.validated_data["rollouts"]
        try:
            with transaction.atomic():
                pair, created = make_rollout_pair(job, first, second, user=request.user)
        except PairError as exc:
            raise ValidationError({exc.field or "rollouts": [exc.message]}) from None
        return Response({"id": pair.pk, "url": reverse("annotate:pair-detail", args=[pair.pk]),
                         "chosen": pair.trajectory_id, "created": created},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
