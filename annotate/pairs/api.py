"""REST API for preference pairs (DRF APIViews with explicit input and output serializers).

Reading needs a role in the project; creating, editing, reviewing, importing, deciding suggestions
and exporting need the lead role. Bad input answers 400 with ``{"errors": [{"field", "message"}]}``.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.models import Trajectory
from annotate.pairs import core, services
from annotate.pairs.models import Pair, PairSuggestion, categories_for
from annotate.pairs.starters import starter_steps
from annotate.trajectory import SchemaError, Trajectory as CanonicalTrajectory
from studio.parsers import StrictJSONParser
from studio.rest import IdField, StrictSerializer, StudioPagination, id_list


class PairSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                            help_text="null until someone reviews the pair")
    cut = serializers.SerializerMethodField()

    class Meta:
        model = Pair
        fields = ["id", "project", "trajectory", "revision", "cut", "category", "source", "status", "author",
                  "reviewer", "reviewed_at", "note", "override", "external_id", "context", "chosen", "rejected",
                  "created_at", "updated_at"]

    def get_cut(self, row) -> dict:
        return {"turn": row.cut_turn, "step": row.cut_step}


class PairSummarySerializer(PairSerializer):
    class Meta(PairSerializer.Meta):
        fields = ["id", "project", "trajectory", "cut", "category", "source", "status", "author", "reviewer",
                  "reviewed_at", "external_id", "created_at", "updated_at"]


class PairCreateSerializer(StrictSerializer):
    """Fork a trajectory (``trajectory``, ``turn``, ``step``) or give a ``context`` document whose last
    turn is the one continued. Sides default to the trajectory's own continuation; ``starter`` fills
    the rejected side with that category's typical bad variant."""

    trajectory = IdField(required=False)
    turn = serializers.IntegerField(required=False, min_value=0)
    step = serializers.IntegerField(required=False, min_value=0)
    context = serializers.JSONField(required=False)
    chosen = serializers.JSONField(required=False)
    rejected = serializers.JSONField(required=False)
    starter = serializers.CharField(required=False)
    category = serializers.CharField(default="other")
    source = serializers.ChoiceField(choices=list(core.SOURCES), default="manual",
                                     help_text="e.g. 'evaluation' for a pair built from an evaluation failure")
    note = serializers.CharField(required=False, allow_blank=True, default="")
    override = serializers.CharField(required=False, allow_blank=True,
                                     help_text="Why the chosen side is kept although it fails validation (leads)")


class PairUpdateSerializer(StrictSerializer):
    chosen = serializers.JSONField(required=False)
    rejected = serializers.JSONField(required=False)
    category = serializers.CharField(required=False)
    note = serializers.CharField(required=False, allow_blank=True)
    override = serializers.CharField(required=False, allow_blank=True,
                                     help_text="Why the chosen side is kept although it fails validation (leads)")


class PairReviewSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=["approved", "rejected", "draft"])
    note = serializers.CharField(required=False, allow_blank=True)


class PairErrorsSerializer(serializers.Serializer):
    errors = serializers.ListField(child=serializers.DictField())


class SuggestionSerializer(serializers.ModelSerializer):
    cut = serializers.SerializerMethodField()
    corrected_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PairSuggestion
        fields = ["id", "trajectory", "base_version", "version", "cut", "category", "status", "corrected_by",
                  "context", "chosen", "rejected", "pair", "created_at"]

    def get_cut(self, row) -> dict:
        return {"turn": row.cut_turn, "step": row.cut_step}


class SuggestionDecisionSerializer(StrictSerializer):
    ids = id_list(allow_empty=False)
    action = serializers.ChoiceField(choices=["accept", "dismiss"])


class SuggestionDecisionOutputSerializer(serializers.Serializer):
    accepted = serializers.ListField(child=serializers.IntegerField(), help_text="ids of the approved pairs")
    dismissed = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())


class PairImportInputSerializer(StrictSerializer):
    file = serializers.FileField()
    skip_invalid = serializers.BooleanField(default=False, help_text="Import the pairs of the valid records and "
                                                                    "report the rest (default: all or nothing)")
    override = serializers.CharField(required=False, allow_blank=True, default="",
                                     help_text="Keep chosen sides that fail validation, recording this reason")


class PairImportOutputSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    skipped = serializers.IntegerField()
    formats = serializers.ListField(child=serializers.CharField())
    errors = serializers.ListField(child=serializers.DictField())


class PairExportInputSerializer(StrictSerializer):
    name = serializers.CharField(required=False, allow_blank=True, default="")
    template = serializers.CharField(required=False, allow_blank=True)
    tokenizer = serializers.CharField(required=False, allow_blank=True)
    max_length = serializers.IntegerField(required=False, min_value=1)
    categories = serializers.ListField(child=serializers.CharField(), required=False)
    sources = serializers.ListField(child=serializers.CharField(), required=False)
    splits = serializers.ListField(child=serializers.CharField(), required=False)


class PairExportOutputSerializer(serializers.Serializer):
    snapshot = serializers.IntegerField()
    status = serializers.CharField()
    content_hash = serializers.CharField()
    item_count = serializers.IntegerField()
    out_dir = serializers.CharField()
    reused = serializers.BooleanField()


def _bad(errors) -> Response:
    items = [e.to_dict() if hasattr(e, "to_dict") else dict(e) for e in errors]
    return Response({"errors": items}, status=status.HTTP_400_BAD_REQUEST)


def _invalid(serializer: serializers.Serializer, **extra) -> Response:
    """A serializer's errors as this API's 400 (``{"errors": [{"field", "message"}]}``, plus ``extra``)."""
    return Response({**extra, "errors": [{"field": field, "message": str(m)} for field, ms in _flat(serializer.errors)
                                         for m in ms]}, status=status.HTTP_400_BAD_REQUEST)


class PairAPIView(APIView):
    """An APIView whose 400s all take this API's shape: a body that is not JSON (DRF's ParseError)
    is ``{"errors": [{"field": "", "message"}]}`` too."""

    def handle_exception(self, exc):
        if isinstance(exc, ParseError):
            return _bad([{"field": "", "message": str(exc.detail)}])
        return super().handle_exception(exc)


def _flat(errors, prefix: str = ""):
    """(field, messages) pairs of a DRF error dict; nested fields joined with dots."""
    if isinstance(errors, dict):
        for k, v in errors.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(errors, list) and errors and not all(isinstance(e, str) for e in errors):
        for i, v in enumerate(errors):
            if v:
                yield from _flat(v, f"{prefix}.{i}")
    else:
        yield prefix, errors if isinstance(errors, list) else [errors]


def _steps(value, where: str):
    try:
        return core.steps_from_dicts(value, where)
    except SchemaError as e:
        raise core.PairError(e.message, e.field) from None


class PairListAPI(PairAPIView):
    parser_classes = [StrictJSONParser]
    pagination_class = StudioPagination

    @extend_schema(responses=PairSummarySerializer(many=True), parameters=[
        OpenApiParameter(name, description=f"Only pairs with this {name}")
        for name in ("status", "category", "source")])
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        qs = project.pairs.select_related("project", "author", "reviewer").order_by("id")
        for key in ("status", "category", "source"):
            if v := request.query_params.get(key):
                qs = qs.filter(**{key: v})
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(PairSummarySerializer(page, many=True).data)

    @extend_schema(request=PairCreateSerializer, responses={201: PairSerializer, 400: PairErrorsSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = PairCreateSerializer(data=request.data)
        if not inp.is_valid():
            return _invalid(inp)
        d = inp.validated_data
        try:
            pair, trajectory, revision = _new_pair(project, d)
        except core.PairError as e:
            return _bad([e])
        try:
            row = services.save_pair(project, pair, user=request.user, trajectory=trajectory, revision=revision)
        except core.PairError as e:
            return _bad(core.pair_errors(pair, categories_for(project)) or [e])
        return Response(PairSerializer(row).data, status=status.HTTP_201_CREATED)


def _new_pair(project, d: dict):
    """The pure pair a create request describes (not yet checked), with its source trajectory and revision."""
    trajectory = revision = None
    if d.get("trajectory") is not None:
        trajectory = get_object_or_404(Trajectory, pk=d["trajectory"], project=project)
        if d.get("turn") is None or d.get("step") is None:
            raise core.PairError("forking a trajectory needs both turn and step", "turn")
        pair, revision = services.fork_trajectory(trajectory, d["turn"], d["step"])
    elif d.get("context") is not None:
        try:
            pair = core.Pair(context=CanonicalTrajectory.from_dict(d["context"], "context"))
        except SchemaError as e:
            raise core.PairError(e.message, e.field) from None
    else:
        raise core.PairError("give a trajectory with turn and step, or a context document", "trajectory")
    pair.category, pair.source, pair.note = d["category"], d["source"], d.get("note", "")
    pair.override = d.get("override", "").strip()
    if "chosen" in d:
        pair.chosen = _steps(d["chosen"], "chosen")
    if "rejected" in d:
        pair.rejected = _steps(d["rejected"], "rejected")
    if d.get("starter"):
        pair.rejected = starter_steps(d["starter"], pair.chosen, pair.context)
    return pair, trajectory, revision


class PairDetailAPI(PairAPIView):
    parser_classes = [StrictJSONParser]

    def _row(self, request, pk: int, minimum=permissions.ANNOTATOR) -> Pair:
        row = get_object_or_404(Pair.objects.select_related("project", "author", "reviewer"), pk=pk)
        permissions.require_role(request.user, row.project, minimum)
        return row

    @extend_schema(responses=PairSerializer)
    def get(self, request, pk: int):
        row = self._row(request, pk)
        data = PairSerializer(row).data
        data["errors"] = [e.to_dict() for e in core.pair_errors(row.to_core(), categories_for(row.project))]
        return Response(data)

    @extend_schema(request=PairUpdateSerializer, responses={200: PairSerializer, 400: PairErrorsSerializer})
    def patch(self, request, pk: int):
        row = self._row(request, pk, permissions.LEAD)
        inp = PairUpdateSerializer(data=request.data)
        if not inp.is_valid():
            return _invalid(inp)
        d = inp.validated_data
        pair = row.to_core()
        try:
            if "chosen" in d:
                pair.chosen = _steps(d["chosen"], "chosen")
            if "rejected" in d:
                pair.rejected = _steps(d["rejected"], "rejected")
            pair.category = d.get("category", pair.category)
            pair.note = d.get("note", pair.note)
            pair.override = d.get("override", pair.override).strip()
            services.save_pair(row.project, pair, user=request.user, row=row)
        except core.PairError as e:
            return _bad(core.pair_errors(pair, categories_for(row.project)) or [e])
        return Response(PairSerializer(row).data)


class PairReviewAPI(PairAPIView):
    parser_classes = [StrictJSONParser, FormParser]

    @extend_schema(request=PairReviewSerializer, responses={200: PairSerializer, 400: PairErrorsSerializer})
    def post(self, request, pk: int):
        row = get_object_or_404(Pair.objects.select_related("project"), pk=pk)
        permissions.require_role(request.user, row.project, permissions.LEAD)
        inp = PairReviewSerializer(data=request.data)
        if not inp.is_valid():
            return _invalid(inp)
        try:
            services.review_pair(row, inp.validated_data["status"], user=request.user,
                                 note=inp.validated_data.get("note"))
        except core.PairError as e:
            return _bad(core.pair_errors(row.to_core(), categories_for(row.project)) or [e])
        return Response(PairSerializer(row).data)


class SuggestionListAPI(APIView):
    @extend_schema(responses=SuggestionSerializer(many=True), parameters=[
        OpenApiParameter("status", description="pending (the default), accepted or dismissed")])
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        services.refresh_suggestions(project)
        qs = project.pair_suggestions.filter(status=request.query_params.get("status", PairSuggestion.PENDING))
        return Response(SuggestionSerializer(qs.select_related("corrected_by")[:1000], many=True).data)


class SuggestionDecideAPI(PairAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(request=SuggestionDecisionSerializer,
                   responses={200: SuggestionDecisionOutputSerializer, 400: PairErrorsSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = SuggestionDecisionSerializer(data=request.data)
        if not inp.is_valid():
            return _invalid(inp)
        d = services.decide_suggestions(project, inp.validated_data["ids"], inp.validated_data["action"],
                                        user=request.user)
        return Response(SuggestionDecisionOutputSerializer({"accepted": [p.pk for p in d.accepted], "dismissed": d.dismissed,
                                                "errors": d.errors}).data)


class PairImportAPI(PairAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=PairImportInputSerializer, responses={201: PairImportOutputSerializer, 400: PairImportOutputSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = PairImportInputSerializer(data=request.data)
        if not inp.is_valid():
            return _invalid(inp, created=0, duplicates=0, skipped=0, formats=[])
        upload = inp.validated_data["file"]
        out = services.import_candidates(project, upload.read(), upload.name, user=request.user,
                                         skip_invalid=inp.validated_data["skip_invalid"],
                                         override=inp.validated_data["override"])
        # All or nothing: 400 when nothing was imported; with skip_invalid the skipped records are listed in errors.
        code = status.HTTP_400_BAD_REQUEST if out.errors and not (out.created or out.duplicates) else status.HTTP_201_CREATED
        return Response(PairImportOutputSerializer(out).data, status=code)


class PairExportAPI(PairAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(request=PairExportInputSerializer,
                   responses={201: PairExportOutputSerializer, 200: PairExportOutputSerializer, 400: PairErrorsSerializer},
                   description="201 with a new snapshot; 200 with the existing one when the same pairs and "
                               "settings were exported before (``reused``).")
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = PairExportInputSerializer(data=request.data)
        if not inp.is_valid():
            return _invalid(inp)
        d = inp.validated_data
        render_settings = {k: d[k] for k in ("template", "tokenizer", "max_length") if d.get(k) not in (None, "")}
        try:
            snap = services.export_pairs(project, user=request.user, render_settings=render_settings,
                                         categories=d.get("categories"), sources=d.get("sources"),
                                         splits=d.get("splits"), name=d["name"])
        except services.ExportError as e:
            return _bad([e])
        reused = bool(getattr(snap, "reused", False))
        return Response(PairExportOutputSerializer({
            "snapshot": snap.pk, "status": snap.status, "content_hash": snap.content_hash,
            "item_count": snap.item_count, "out_dir": snap.out_dir, "reused": reused}).data,
            status=status.HTTP_200_OK if reused else status.HTTP_201_CREATED)


class PairDashboardAPI(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, description="Pairs by category × status and by source; "
                   "the categories with no approved pair yet (``missing``); pending suggestions.")
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        return Response(services.dashboard(project))
