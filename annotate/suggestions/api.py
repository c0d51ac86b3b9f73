"""REST API for a judge's suggestions on a trajectory: list them, accept or dismiss one. Reading
needs a role in the project; deciding needs the right to edit the trajectory (as a step save)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.api import trajectory_for
from annotate.suggestions import decide
from annotate.suggestions.models import StepSuggestion


class StepSuggestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepSuggestion
        fields = ["id", "trajectory", "turn_index", "step_index", "step_kind", "version", "label", "note",
                  "judge_run_id", "source", "status", "decided_by", "decided_at", "created_at"]


class SuggestionListAPI(APIView):
    @extend_schema(responses=StepSuggestionSerializer(many=True))
    def get(self, request, pk: int):
        trajectory = trajectory_for(request, pk)
        rows = StepSuggestion.objects.filter(trajectory=trajectory)
        if s := request.query_params.get("status"):
            rows = rows.filter(status=s)
        return Response(StepSuggestionSerializer(rows, many=True).data)


class _DecideAPI(APIView):
    decision = staticmethod(decide.accept)

    @extend_schema(request=None, responses={200: StepSuggestionSerializer})
    def post(self, request, pk: int, sid: int):
        trajectory = trajectory_for(request, pk, edit=True)
        try:
            row = self.decision(sid, trajectory.pk, user=request.user)
        except decide.SuggestionError as exc:
            return Response({"detail": exc.message, "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        return Response(StepSuggestionSerializer(row).data)


class AcceptSuggestionAPI(_DecideAPI):
    """Accept: the label goes on the step in a new revision by you, naming the judge run."""
    decision = staticmethod(decide.accept)


class DismissSuggestionAPI(_DecideAPI):
    """Dismiss: the suggestion is closed; the trajectory does not change."""
    decision = staticmethod(decide.dismiss)
