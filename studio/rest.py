"""What every API view shares: strict input serializers, id fields in the database's range, the
error bodies and how the OpenAPI schema describes them.

- ``StrictSerializer``: a field the serializer does not define is a 400 naming it (a typo, or a
  setting at the wrong level, must not be dropped silently: a snapshot POST with ``template`` at
  the top level used to take the defaults).
- ``keyed_dict``: a JSON object field whose keys the API defines; other keys are a 400 naming them.
- ``IdField`` / ``id_list``: ids are positive and fit the database's 64-bit integers (a bigger
  one is a 400 naming the field, not an ``OverflowError`` from SQLite).
- ``StudioAutoSchema``: documents the 400 / 401 / 403 / 404 answers DRF and the views give.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination

from studio.forms import MAX_ID, id_or_none  # noqa: F401  (the API's names for them)


def unknown_keys_error(unknown, known) -> str:
    return (f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(known)}")


class StrictSerializer(serializers.Serializer):
    """A serializer that answers 400 for fields it does not define, instead of ignoring them."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            known = [name for name, f in self.fields.items() if not f.read_only]
            unknown = sorted(set(data) - set(known))
            if unknown:
                raise serializers.ValidationError({k: [unknown_keys_error([k], known)] for k in unknown})
        return super().to_internal_value(data)


class _KeyedDictField(serializers.DictField):
    keys: tuple[str, ...] = ()

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        unknown = sorted(set(value) - set(self.keys))
        if unknown:
            raise serializers.ValidationError(unknown_keys_error(unknown, self.keys))
        return value


def keyed_dict(keys, *, descriptions: Mapping[str, str] | None = None, **kwargs) -> serializers.DictField:
    """A JSON object field that takes only ``keys`` (the schema lists them, ``additionalProperties: false``)."""
    keys = tuple(keys)
    descriptions = descriptions or {}
    schema = {"type": "object", "additionalProperties": False,
              "properties": {k: ({"description": descriptions[k]} if k in descriptions else {}) for k in keys}}
    cls = extend_schema_field(schema)(type("KeyedDictField", (_KeyedDictField,), {"keys": keys}))
    return cls(**kwargs)


class IdField(serializers.IntegerField):
    """A row id: 1 up to the database's largest integer."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


def id_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=IdField(), **kwargs)


class StudioPagination(PageNumberPagination):
    """Page-number pagination (``?page=``), as the settings' PAGE_SIZE says."""


# --- the error bodies, as the schema describes them ---------------------------------------------------

class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()




FIELD_ERRORS_SCHEMA = {
    "type": "object",
    "description": "Each bad input field (or `detail`, `non_field_errors`, or a named reason such as "
                   "`field`/`error`) with what is wrong: a message, a list of messages, or the errors "
                   "of the nested fields.",
    "additionalProperties": True,
    "minProperties": 1,
}


class StudioAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the error answers every view can give: 400 where the
    operation takes input, 401 and 403 everywhere (login and role), 404 where the path names a
    row. A view that documents its own error body for a code keeps it."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        detail = self._get_response_for_code(ErrorDetailSerializer, "403")
        if "400" not in responses and (self.method in ("POST", "PUT", "PATCH") or self._has_query_input()):
            responses["400"] = {"description": "Bad input: what is wrong, by field",
                                "content": {"application/json": {"schema": FIELD_ERRORS_SCHEMA}}}
        for code, text in (("401", "Not logged in (session or token)"), ("403", "No role for this here")):
            responses.setdefault(code, {**detail, "description": text})
        if "{" in self.path:
            responses.setdefault("404", {**detail, "description": "No such row (or not visible to you)"})
        return responses

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if isinstance(serializer, StrictSerializer) or (isinstance(serializer, type)
                                                         and issubclass(serializer, StrictSerializer)):
            schema["additionalProperties"] = False  # as StrictSerializer answers: other fields are a 400
        return schema

    def _has_query_input(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters()) if self.method == "GET" else False
