"""Moved to :mod:`annotate.formats.common`; this re-export keeps older imports working for now."""

from annotate.formats.common import *  # noqa: F401,F403
from annotate.formats.common import (  # noqa: F401
    ANNOTATION_KEYS, TrajectoryBuilder, annotations, annotations_of, dump_arguments, make_meta, meta_field,
    parse_arguments, require_dict, require_list, string_field, text_of, tool_memo, tools_field, type_name,
)
