"""Model fields shared by the apps."""

from __future__ import annotations

from django.db import migrations, models


class OrderedJSONField(models.JSONField):
    """A ``JSONField`` that keeps every object's key order, on SQLite and on PostgreSQL alike.

    PostgreSQL's ``jsonb`` (what ``JSONField`` uses there) reorders keys, shorter first: a tool
    schema's properties or a call's arguments would come back in another order than imported, and
    the chat template renders them in the order it is given, so the trained text would differ
    between databases. ``json`` keeps the text as written. Used for everything that is rendered
    into training or evaluation text (tool specs, arguments, trajectory and pair documents). Key
    lookups (``document__meta__split``, ``icontains``) work on ``json`` too; equality and
    containment lookups do not, and nothing uses them on these fields.
    """

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        if hasattr(value, "as_sql"):
            return value
        from django.db.backends.postgresql.operations import get_json_dumps  # the PostgreSQL path only
        from psycopg.types.json import Json

        return Json(value, dumps=get_json_dumps(self.encoder))  # sent as json, not cast through jsonb

    def from_db_value(self, value, expression, connection):
        if connection.vendor == "postgresql":
            return value  # psycopg decodes json columns itself (in document order)
        return super().from_db_value(value, expression, connection)


def json_columns_on_postgresql(*columns: tuple[str, str]):
    """The database side of switching ``columns`` ((table, column) pairs) to ``OrderedJSONField``.

    For a migration's ``SeparateDatabaseAndState``: on PostgreSQL the columns become ``json``
    (rows already stored as ``jsonb`` keep the order jsonb gave them); on SQLite nothing changes
    in the database, so no table is rebuilt (a rebuild would drop the full-text index's trigger).
    """
    def alter(to_type: str):
        def run(apps, schema_editor):
            if schema_editor.connection.vendor != "postgresql":
                return
            q = schema_editor.quote_name
            for table, column in columns:
                schema_editor.execute(f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} "
                                      f"TYPE {to_type} USING {q(column)}::{to_type}")
        return run

    return migrations.RunPython(alter("json"), alter("jsonb"))
