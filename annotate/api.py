"""REST API for projects, trajectories, imports and the workbench (DRF APIViews, explicit serializers).

Every write names the version it is based on (``base_version``); a stale one is answered with
409 and what changed since (the same conflict the editor shows), so a script never overwrites
a person's edit unseen. Permissions come from ``annotate.permissions``, as for the pages.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.agreement import services as overlap
from annotate.findings import argument_errors, validate
from annotate.forms import IMPORT_FORMATS
from annotate.ingest import preview as import_preview
from annotate.ingest.writer import import_upload
from annotate.models import Project, Revision, Trajectory
from annotate.trajectory import CASE_TYPES, SPLITS, SchemaError
from annotate.trajectory import Trajectory as Document
from annotate.workbench import workflow
from annotate.workbench.dashboard import dashboard
from annotate.workbench.documents import StaleVersion, current_document, document_at, history_of, replace_document
from annotate.workbench.editing import OPS, Edit, EditError
from annotate.workbench.queue import QUEUE_SORTS, QueuePaginator, assign, next_in_queue, queue
from annotate.workbench.revisions import diff_documents
from annotate.workbench.saving import conflict_for, resolve_conflict, revert, save_edit
from annotate.workbench.step_forms import schemas_for
from annotate.workbench.transitions import WorkflowRefused, bulk_transition, transition
from studio.rest import MAX_ID, IdField, StrictSerializer, StudioPagination, id_list, id_or_none


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


class ImportInputSerializer(StrictSerializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=[f for f, _ in IMPORT_FORMATS], default="auto")
    answers = serializers.FileField(required=False)
    tools = serializers.FileField(required=False, help_text="JSON list of tool specs for records without tools")
    skip_invalid = serializers.BooleanField(default=False)
    dry_run = serializers.BooleanField(default=False, help_text="Only read the file and answer what would be "
                                       "written (format, counts, mapped fields, extra keys, first record); "
                                       "nothing is written")


class ImportOutputSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    skipped = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())


def project_for(request, slug: str, minimum: str = permissions.ANNOTATOR) -> Project:
    """(The old name, for training/api.py and evaluation/api.py until they call
    ``permissions.project_for`` themselves; this module does.)"""
    return permissions.project_for(request.user, slug, minimum)[0]


class ProjectListAPI(APIView):
    @extend_schema(responses=ProjectSerializer(many=True))
    def get(self, request):
        return Response(ProjectSerializer(permissions.projects_for(request.user).order_by("name"), many=True).data)


class ProjectDetailAPI(APIView):
    @extend_schema(responses=ProjectSerializer)
    def get(self, request, slug: str):
        return Response(ProjectSerializer(permissions.project_for(request.user, slug)[0]).data)


class QueueFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[s for s, _ in Trajectory.STATUS_CHOICES], required=False)
    case_type = serializers.ChoiceField(choices=list(CASE_TYPES), required=False)
    label = serializers.CharField(required=False, max_length=100)
    assignee = serializers.RegexField(r"^(me|none|\d+)$", required=False,
                                      help_text='"me", "none" or a user id')

    def validate_assignee(self, value: str) -> str:
        if value.isdigit() and int(value) > MAX_ID:
            raise serializers.ValidationError("no user has so large an id")
        return value
    source = serializers.CharField(required=False, max_length=300)
    split = serializers.ChoiceField(choices=list(SPLITS), required=False)
    q = serializers.CharField(required=False, max_length=200, help_text="Words that must occur in some step")
    sort = serializers.ChoiceField(choices=list(QUEUE_SORTS), required=False)


class QueuePagination(StudioPagination):
    """The queue's pages, counted as the queue page counts them (annotate.workbench.queue.QueuePaginator):
    ``count`` is exact when ``count_capped`` is false, otherwise more than ``count`` rows match."""

    django_paginator_class = QueuePaginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        paginator = self.page.paginator
        response.data = {"count": paginator.count_shown, "count_capped": paginator.capped,
                         **{k: v for k, v in response.data.items() if k != "count"}}
        return response

    def get_paginated_response_schema(self, schema):
        out = super().get_paginated_response_schema(schema)
        out["properties"]["count_capped"] = {
            "type": "boolean", "description": "true: more than `count` trajectories match (the count stops "
                                              "at 1,000, or at the end of the requested page)"}
        out["required"] = [*out.get("required", []), "count_capped"]
        return out


class TrajectoryListAPI(APIView):
    """The queue: a project's trajectories, filtered, sorted and paginated."""

    pagination_class = QueuePagination

    @extend_schema(parameters=[QueueFilterSerializer], responses=TrajectorySummarySerializer(many=True))
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        filters = QueueFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = queue(project, filters.validated_data, request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(TrajectorySummarySerializer(page, many=True).data)


class FindingSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    turn = serializers.IntegerField(allow_null=True)
    step = serializers.IntegerField(allow_null=True)
    field = serializers.CharField()
    severity = serializers.CharField()


class DocumentOutputSerializer(TrajectorySummarySerializer):
    document = serializers.DictField(help_text="The canonical trajectory (annotate.trajectory)")
    findings = FindingSerializer(many=True)

    class Meta(TrajectorySummarySerializer.Meta):
        fields = TrajectorySummarySerializer.Meta.fields + ["document", "findings"]


class DocumentInputSerializer(StrictSerializer):
    base_version = serializers.IntegerField(min_value=1, help_text="The version this document was edited from")
    document = serializers.DictField()
    summary = serializers.CharField(required=False, allow_blank=True, max_length=300)


class ChangeSerializer(serializers.Serializer):
    kind = serializers.CharField()
    where = serializers.CharField()
    turn = serializers.IntegerField(allow_null=True)
    step = serializers.IntegerField(allow_null=True)
    fields = serializers.ListField(child=serializers.DictField())


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    base_version = serializers.IntegerField()
    current_version = serializers.IntegerField()
    authors = serializers.ListField(child=serializers.CharField())
    changes = ChangeSerializer(many=True, help_text="What changed from base_version to current_version")
    document = serializers.DictField(help_text="The current document")


def document_response(trajectory: Trajectory, doc: Document, status_code: int = 200) -> Response:
    data = dict(TrajectorySummarySerializer(trajectory).data)
    data["document"] = doc.to_dict()
    data["findings"] = [f.to_dict() for f in validate(doc)]
    return Response(data, status=status_code)


def conflict_response(trajectory: Trajectory, base_version: int) -> Response:
    conflict = conflict_for(trajectory, base_version)
    return Response({
        "detail": f"version {base_version} is not the current version ({conflict.current_version}): "
                  "someone saved in between. Look at their changes, then resend with base_version="
                  f"{conflict.current_version} (overwriting) or with resolution=merge.",
        "base_version": base_version, "current_version": conflict.current_version, "authors": conflict.authors,
        "changes": [c.to_dict() for c in conflict.changes], "document": conflict.current.to_dict(),
    }, status=status.HTTP_409_CONFLICT)


def trajectory_for(request, pk: int, *, edit: bool = False) -> Trajectory:
    """The trajectory, after the same checks as the pages: 404 outside its project, 403 to edit
    one that is not yours or is in review."""
    trajectory = get_object_or_404(Trajectory.objects.select_related("project", "assignee"), pk=pk)
    permissions.require_role(request.user, trajectory.project)
    overlap.require_open(request.user, trajectory)
    if edit and not permissions.can_edit_trajectory(request.user, trajectory):
        raise PermissionDenied("You may not edit this trajectory now (it is not yours, or it is in review).")
    return trajectory


def edit_error(e: EditError | SchemaError) -> Response:
    return Response({"detail": e.message, "field": e.field}, status=status.HTTP_400_BAD_REQUEST)


class TrajectoryDocumentAPI(APIView):
    """One trajectory as its canonical document, with validation findings; PUT replaces it."""

    @extend_schema(responses=DocumentOutputSerializer)
    def get(self, request, pk: int):
        trajectory = trajectory_for(request, pk)
        return document_response(trajectory, current_document(trajectory))

    @extend_schema(request=DocumentInputSerializer, responses={200: DocumentOutputSerializer, 409: ConflictSerializer})
    def put(self, request, pk: int):
        trajectory = trajectory_for(request, pk, edit=True)
        inp = DocumentInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            doc = Document.from_dict(inp.validated_data["document"], "document")
        except SchemaError as e:
            return edit_error(e)
        base = inp.validated_data["base_version"]
        try:
            replace_document(trajectory, doc, user=request.user, base_version=base,
                             summary=inp.validated_data.get("summary") or "replaced through the API")
        except StaleVersion:
            return conflict_response(trajectory, base)
        return document_response(trajectory, doc)


class EditInputSerializer(StrictSerializer):
    base_version = serializers.IntegerField(min_value=1)
    op = serializers.ChoiceField(choices=list(OPS))
    turn = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    step = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    fields = serializers.DictField(required=False, help_text="New values (see annotate.workbench.editing.Edit)")
    resolution = serializers.ChoiceField(choices=["merge", "overwrite"], required=False,
                                         help_text="After a 409: re-apply this edit (made on base_version) on top "
                                                   "of seen_version, field by field, or overwrite with it")
    seen_version = serializers.IntegerField(min_value=1, required=False,
                                            help_text="With resolution: the current_version the 409 named")


def _apply(request, trajectory: Trajectory, edit: Edit, data: dict) -> Response:
    base = data["base_version"]
    try:
        if data.get("resolution"):
            doc = resolve_conflict(trajectory, edit, user=request.user, base_version=base,
                                   seen_version=data.get("seen_version") or trajectory.version,
                                   resolution=data["resolution"])
        else:
            doc = save_edit(trajectory, edit, user=request.user, base_version=base)
    except StaleVersion:
        return conflict_response(trajectory, base)
    except EditError as e:
        return edit_error(e)
    return document_response(trajectory, doc)


class TrajectoryEditAPI(APIView):
    """Apply one edit (update / insert / duplicate / delete / move a step, parallel call, turns, metadata)."""

    @extend_schema(request=EditInputSerializer, responses={200: DocumentOutputSerializer, 409: ConflictSerializer})
    def post(self, request, pk: int):
        trajectory = trajectory_for(request, pk, edit=True)
        inp = EditInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        edit = Edit(d["op"], d.get("turn"), d.get("step"), dict(d.get("fields") or {}))
        return _apply(request, trajectory, edit, d)


class StepUpdateSerializer(StrictSerializer):
    base_version = serializers.IntegerField(min_value=1)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    name = serializers.CharField(required=False, allow_blank=True)
    arguments = serializers.JSONField(required=False)
    call_id = serializers.CharField(required=False, allow_blank=True)
    ok = serializers.BooleanField(required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    note = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    train = serializers.BooleanField(required=False)
    resolution = serializers.ChoiceField(choices=["merge", "overwrite"], required=False)
    seen_version = serializers.IntegerField(min_value=1, required=False)


class StepAPI(APIView):
    """Change some fields of one step (the fields left out keep their values)."""

    @extend_schema(request=StepUpdateSerializer, responses={200: DocumentOutputSerializer, 409: ConflictSerializer})
    def patch(self, request, pk: int, turn: int, step: int):
        trajectory = trajectory_for(request, pk, edit=True)
        inp = StepUpdateSerializer(data=request.data, partial=True)
        inp.is_valid(raise_exception=True)
        d = dict(inp.validated_data)
        if "base_version" not in d:
            return Response({"detail": "base_version is required", "field": "base_version"}, status=400)
        fields = {k: v for k, v in d.items() if k not in ("base_version", "resolution", "seen_version")}
        return _apply(request, trajectory, Edit("update_step", turn, step, fields), d)


class TransitionInputSerializer(StrictSerializer):
    action = serializers.ChoiceField(choices=list(workflow.ACTION_NAMES))
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    base_version = serializers.IntegerField(min_value=1, required=False)


class TransitionAPI(APIView):
    """Submit, approve, reject (a comment is required) or reopen."""

    @extend_schema(request=TransitionInputSerializer, responses={200: TrajectorySummarySerializer, 409: ConflictSerializer})
    def post(self, request, pk: int):
        trajectory = trajectory_for(request, pk)
        inp = TransitionInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        try:
            transition(trajectory, d["action"], user=request.user, comment=d.get("comment", ""),
                       base_version=d.get("base_version"))
        except StaleVersion:
            return conflict_response(trajectory, d["base_version"])
        except WorkflowRefused as e:
            return Response({"detail": e.message, "blockers": [f.to_dict() for f in e.blockers]},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(TrajectorySummarySerializer(trajectory).data)


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = ["version", "author", "created_at", "summary", "status"]

    def get_author(self, r) -> str | None:
        return r.author.get_username() if r.author else None


class RevisionDetailSerializer(RevisionSerializer):
    document = serializers.DictField()
    changes = ChangeSerializer(many=True, help_text="Against the version before")

    class Meta(RevisionSerializer.Meta):
        fields = RevisionSerializer.Meta.fields + ["document", "changes"]


class RevisionListAPI(APIView):
    pagination_class = StudioPagination

    @extend_schema(responses=RevisionSerializer(many=True))
    def get(self, request, pk: int):
        trajectory = trajectory_for(request, pk)
        history = history_of(trajectory)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(history if isinstance(history, list) else history.defer("document"),
                                           request, view=self)
        return paginator.get_paginated_response(RevisionSerializer(page, many=True).data)


class RevisionDetailAPI(APIView):
    @extend_schema(responses=RevisionDetailSerializer)
    def get(self, request, pk: int, version: int):
        trajectory = trajectory_for(request, pk)
        history = history_of(trajectory)
        if isinstance(history, list):  # (an unchanged import: its version 1 is implied by its rows)
            revision = history[0] if version == 1 else None
        else:
            revision = history.filter(version=version).first()
        if revision is None:
            raise Http404(f"no version {version}")
        before = document_at(trajectory, version - 1)
        data = dict(RevisionSerializer(revision).data)
        data["document"] = revision.document
        data["changes"] = [c.to_dict() for c in diff_documents(before, revision.document)] if before else []
        return Response(data)


class RevertInputSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1, help_text="The version to bring back")
    base_version = serializers.IntegerField(min_value=1, help_text="The current version, as you saw it")


class RevertAPI(APIView):
    @extend_schema(request=RevertInputSerializer, responses={200: DocumentOutputSerializer, 409: ConflictSerializer})
    def post(self, request, pk: int):
        trajectory = trajectory_for(request, pk, edit=True)
        inp = RevertInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            doc = revert(trajectory, inp.validated_data["version"], user=request.user,
                         base_version=inp.validated_data["base_version"])
        except StaleVersion:
            return conflict_response(trajectory, inp.validated_data["base_version"])
        except EditError as e:
            return edit_error(e)
        return document_response(trajectory, doc)


class CheckArgumentsInputSerializer(StrictSerializer):
    tool = serializers.CharField()
    arguments = serializers.JSONField()


class ArgumentErrorSerializer(serializers.Serializer):
    path = serializers.CharField()
    message = serializers.CharField()


class CheckArgumentsAPI(APIView):
    """Check arguments against a tool's schema (the trajectory's own spec, else the project catalog)."""

    @extend_schema(request=CheckArgumentsInputSerializer, responses=ArgumentErrorSerializer(many=True))
    def post(self, request, pk: int):
        trajectory = trajectory_for(request, pk)
        inp = CheckArgumentsInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        doc = current_document(trajectory)
        schemas = schemas_for(doc, {t.name: t.spec() for t in trajectory.project.tools.all()})
        tool, args = inp.validated_data["tool"], inp.validated_data["arguments"]
        if tool not in schemas:
            errors = [("", f"{tool!r} is not a known tool")]
        elif not isinstance(args, dict):
            errors = [("", "arguments must be a JSON object")]
        else:
            errors = argument_errors(schemas[tool], args)
        return Response([{"path": p, "message": m} for p, m in errors])


class ToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.DictField()


class ToolListAPI(APIView):
    """The project's tool catalog."""

    @extend_schema(responses=ToolSerializer(many=True))
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        return Response(ToolSerializer([t.spec() for t in project.tools.all()], many=True).data)


class CoverageSerializer(serializers.Serializer):
    case_type = serializers.CharField()
    name = serializers.CharField()
    count = serializers.IntegerField()
    share = serializers.FloatField()
    required = serializers.BooleanField()
    state = serializers.ChoiceField(choices=["ok", "thin", "missing"])


class DashboardSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    coverage = CoverageSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Required case types missing or thin")
    labels = serializers.ListField(child=serializers.DictField())
    progress = serializers.ListField(child=serializers.DictField())


class DashboardAPI(APIView):
    @extend_schema(responses=DashboardSerializer)
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        dash = dashboard(project)
        return Response({
            "total": dash.total, "by_status": {s: n for s, _, n in dash.by_status},
            "coverage": [vars(row) for row in dash.coverage], "warnings": [w.case_type for w in dash.warnings],
            "labels": dash.labels,
            "progress": [{**{k: v for k, v in p.items() if k != "user"},
                          "user": p["user"].get_username() if p["user"] else None} for p in dash.progress],
        })


class NextAPI(APIView):
    """Next in my queue (may claim an unassigned draft); 204 when the queue is empty."""

    @extend_schema(request=None, responses={200: TrajectorySummarySerializer, 204: None}, parameters=[
        OpenApiParameter("after", description="The next one after this trajectory id")])
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        found = next_in_queue(request.user, project, after=id_or_none(request.query_params.get("after")))
        if found is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TrajectorySummarySerializer(found).data)


class AssignInputSerializer(StrictSerializer):
    ids = id_list(allow_empty=False)
    assignee = IdField(allow_null=True, help_text="A member's user id; null unassigns")


class AssignOutputSerializer(serializers.Serializer):
    assigned = serializers.IntegerField()


class AssignAPI(APIView):
    """Bulk assignment (leads)."""

    @extend_schema(request=AssignInputSerializer, responses=AssignOutputSerializer)
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = AssignInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        who = None
        if inp.validated_data["assignee"] is not None:
            member = project.memberships.select_related("user").filter(user_id=inp.validated_data["assignee"]).first()
            if member is None:
                return Response({"detail": "not a member of this project", "field": "assignee"}, status=400)
            who = member.user
        return Response({"assigned": assign(project, inp.validated_data["ids"], who, by=request.user)})


class BulkTransitionInputSerializer(StrictSerializer):
    ids = id_list(allow_empty=False)
    action = serializers.ChoiceField(choices=list(workflow.ACTION_NAMES))
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000, help_text="Required to reject")


class BulkTransitionOutputSerializer(serializers.Serializer):
    done = serializers.ListField(child=serializers.IntegerField(), help_text="The ids moved, each a new version")
    refused = serializers.ListField(child=serializers.DictField(), help_text='{"id", "message"} per id not moved')


class BulkTransitionAPI(APIView):
    """Submit / approve / reject / reopen many trajectories: one move per trajectory, each checked."""

    @extend_schema(request=BulkTransitionInputSerializer, responses=BulkTransitionOutputSerializer)
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug)
        inp = BulkTransitionInputSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        try:
            out = bulk_transition(project, d["ids"], d["action"], user=request.user, comment=d.get("comment", ""))
        except workflow.WorkflowError as e:
            return Response({"detail": e.message, "field": e.field}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"done": out.done, "refused": out.refused})


class ImportAPI(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def handle_exception(self, exc):
        if isinstance(exc, ParseError):  # a body that is not a form: the documented 400 (an import report)
            return Response({"imported": 0, "skipped": 0, "errors": [
                {"file": None, "line": None, "field": "", "message": str(exc.detail)}]},
                status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)

    @extend_schema(request=ImportInputSerializer, responses={201: ImportOutputSerializer, 400: ImportOutputSerializer,
                                                             200: OpenApiTypes.OBJECT})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = ImportInputSerializer(data=request.data)
        if not inp.is_valid():  # the documented 400: an import report with no file read
            return Response({"imported": 0, "skipped": 0, "errors": [
                {"file": None, "line": None, "field": field, "message": str(message)}
                for field, messages in inp.errors.items() for message in messages]},
                status=status.HTTP_400_BAD_REQUEST)
        upload = inp.validated_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            return Response({"imported": 0, "skipped": 0, "errors": [{
                "file": upload.name, "line": None, "field": "",
                "message": f"file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} bytes"}]},
                status=status.HTTP_400_BAD_REQUEST)
        if inp.validated_data["dry_run"]:
            answers, tools = inp.validated_data.get("answers"), inp.validated_data.get("tools")
            return Response(import_preview.preview(
                upload.read(), upload.name, fmt=inp.validated_data["format"],
                skip_invalid=inp.validated_data["skip_invalid"], answers=answers.read() if answers else None,
                answers_filename=answers.name if answers else "", tools=tools.read() if tools else None,
                tools_filename=tools.name if tools else ""))
        outcome = import_upload(project, upload, fmt=inp.validated_data["format"],
                                skip_invalid=inp.validated_data["skip_invalid"],
                                answers=inp.validated_data.get("answers"), tools=inp.validated_data.get("tools"),
                                user=request.user)
        code = status.HTTP_201_CREATED if outcome.imported else status.HTTP_400_BAD_REQUEST
        return Response(ImportOutputSerializer({"imported": outcome.imported, "skipped": outcome.skipped,
                                                "errors": outcome.errors}).data, status=code)
