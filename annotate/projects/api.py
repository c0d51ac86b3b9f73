"""REST API for creating a project and managing its settings and members (DRF APIViews, explicit serializers).

The same services and role checks as the pages: creating needs staff (or ``STUDIO_ANYONE_CREATES_PROJECTS``);
the rest needs the lead role in the project. A refusal is 400 ``{"errors": [{"field", "message"}]}``.
"""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import permissions
from annotate.api import ProjectSerializer
from annotate.projects import rules, services
from core.errors import InputError
from studio.rest import FIELD_ERRORS_SCHEMA, StrictSerializer


def _refused(e: InputError) -> Response:
    if isinstance(e, services.NotMember):
        raise Http404(e.message)
    return Response({"errors": [e.to_dict()]}, status=status.HTTP_400_BAD_REQUEST)


REFUSED = OpenApiResponse(FIELD_ERRORS_SCHEMA, description="Refused: the field and why (e.g. the last lead)")


class ProjectCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ProjectCreateAPI(APIView):
    """Create a project; the caller becomes its lead."""

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def post(self, request):
        if not services.can_create_projects(request.user):
            raise PermissionDenied("Only staff create projects (or set STUDIO_ANYONE_CREATES_PROJECTS).")
        inp = ProjectCreateSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            project = services.create_project(request.user, **inp.validated_data)
        except InputError as e:
            return _refused(e)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class LabelSerializer(StrictSerializer):
    name = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SettingsSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    guidelines = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    target_template = serializers.CharField(required=False, allow_blank=True, max_length=500)
    target_tokenizer = serializers.CharField(required=False, allow_blank=True, max_length=500)
    error_labels = LabelSerializer(many=True, required=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False,
                                  help_text="Replaces the tool catalog: [{name, description, parameters}]")
    required_case_types = serializers.ListField(child=serializers.CharField(), required=False)


class ProjectSettingsAPI(APIView):
    """Change a project's settings (leads); only the fields sent change."""

    @extend_schema(request=SettingsSerializer, responses=ProjectSerializer)
    def patch(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = SettingsSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        data = inp.validated_data
        # Check everything before changing anything: a refused field leaves the project as it was.
        try:
            labels = None
            if "error_labels" in data:
                labels = rules.parse_labels("\n".join(f"{x['name']}: {x['description']}" for x in data["error_labels"]))
            tools_text = json.dumps(data["tools"]) if "tools" in data else None
            if tools_text is not None:
                rules.parse_tools(tools_text)
            if "required_case_types" in data:
                rules.check_case_types(data["required_case_types"])
            services.update_general(project, {k: v for k, v in data.items() if k in services.GENERAL_FIELDS})
        except InputError as e:
            project.refresh_from_db()
            return _refused(e)
        if labels is not None:
            project.error_labels = labels
            project.save(update_fields=["error_labels"])
        if tools_text is not None:
            services.update_tools(project, tools_text)
        if "required_case_types" in data:
            services.update_case_types(project, data["required_case_types"])
        return Response(ProjectSerializer(project).data)


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    role = serializers.CharField()


class MemberAddSerializer(StrictSerializer):
    user = serializers.CharField(help_text="username or e-mail address")
    role = serializers.ChoiceField(choices=rules.ROLES, default="annotator")


class MemberRoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=rules.ROLES)


class MemberListAPI(APIView):
    """A project's members and roles (leads); POST adds one."""

    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        members = project.memberships.select_related("user").order_by("user__username")
        return Response(MemberSerializer(members, many=True).data)

    @extend_schema(request=MemberAddSerializer, responses={201: MemberSerializer})
    def post(self, request, slug: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = MemberAddSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            m = services.add_member(project, inp.validated_data["user"], inp.validated_data["role"])
        except InputError as e:
            return _refused(e)
        return Response(MemberSerializer(m).data, status=status.HTTP_201_CREATED)


class MemberDetailAPI(APIView):
    """Change a member's role, or remove them (never the last lead)."""

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    def patch(self, request, slug: str, username: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        inp = MemberRoleSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            m = services.change_role(project, username, inp.validated_data["role"])
        except InputError as e:
            return _refused(e)
        return Response(MemberSerializer(m).data)

    @extend_schema(responses={204: None, 400: REFUSED})
    def delete(self, request, slug: str, username: str):
        project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
        try:
            services.remove_member(project, username)
        except InputError as e:
            return _refused(e)
        return Response(status=status.HTTP_204_NO_CONTENT)
