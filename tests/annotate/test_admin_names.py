"""The admin speaks plural English for every model it lists ("Trajectories", not "Trajectorys")."""

from __future__ import annotations

import re

from django.contrib import admin


def test_every_admin_model_has_a_proper_plural():
    wrong = [f"{m.__name__}: {m._meta.verbose_name_plural}" for m in admin.site._registry
             if re.search(r"(?:[^aeiou]ys|chs|shs|xs|ss)$", str(m._meta.verbose_name_plural))]
    assert wrong == []
