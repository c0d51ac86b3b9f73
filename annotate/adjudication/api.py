"""REST API for adjudication (lead): a trajectory's versions compared step by step, and the
decision (per-step choices) that becomes its adjudicated version."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.adjudication import service
from annotate.adjudication.compare import AdjudicationError
from annotate.adjudication.models import Adjudication
from annotate.models import Trajectory
from studio.rest import StrictSerializer


class ChoiceSerializer(StrictSerializer):
    turn = serializers.IntegerField(min_value=0, help_text="0-based")
    step = serializers.IntegerField(min_value=0, help_text="0-based")
    pick = serializers.CharField(required=False, help_text="The version (its name) whose step to take")
    merge_labels = serializers.BooleanField(required=False, default=False,
                                            help_text="Give the picked step every version's labels")
    drop = serializers.BooleanField(required=False, default=False, help_text="Leave the step out")


class DecisionInputSerializer(StrictSerializer):
    base_version = serializers.IntegerField(min_value=1, help_text="The trajectory version you compared")
    choices = ChoiceSerializer(many=True)


class AdjudicationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Adjudication
        fields = ["id", "trajectory", "version", "sources", "choices", "provenance", "decided_by", "created_at"]


class AdjudicationAPI(APIView):
    def _trajectory(self, request, pk: int) -> Trajectory:
        t = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
        permissions.require_role(request.user, t.project, permissions.LEAD)
        return t

    @extend_schema(responses=dict)
    def get(self, request, pk: int):
        t = self._trajectory(request, pk)
        versions, rows = service.comparison(t)
        latest = service.latest(t)
        return Response({
            "version": t.version,
            "versions": [{"name": n, "ref": ref} for n, (ref, _) in versions.items()],
            "steps": [{"turn": r.turn, "step": r.step, "differs": r.fields,
                       "versions": {n: (s.to_dict() if s is not None else None) for n, s in r.versions.items()}}
                      for r in rows],
            "needs_adjudication": service.needs_adjudication(t),
            "latest": AdjudicationSerializer(latest).data if latest else None,
        })

    @extend_schema(request=DecisionInputSerializer, responses={201: AdjudicationSerializer})
    def post(self, request, pk: int):
        t = self._trajectory(request, pk)
        inp = DecisionInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        choices = [{k: v for k, v in c.items() if not (k in ("drop", "merge_labels") and v is False)}
                   for c in d["choices"]]
        try:
            row = service.decide(t, choices, user=request.user, base_version=d["base_version"])
        except AdjudicationError as exc:
            return Response({"detail": exc.message, "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        return Response(AdjudicationSerializer(row).data, status=status.HTTP_201_CREATED)
