"""python manage.py agreement {settings,versions,assign,figures} ... : overlap and agreement from the shell.

    agreement settings --project SLUG [--annotators N] [--share S] [--threshold T] [--seed K]
    agreement versions --project SLUG [--limit N]        (make the N versions of each sampled item)
    agreement assign --project SLUG --user NAME           (claim the user's next blind version)
    agreement figures --project SLUG [--json]             (compute now and print)

The CLI acts as an operator (no per-project role check), like the other management commands.
"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotate.agreement import services
from annotate.management.cli import project_by_slug


_project = project_by_slug


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = "Overlap settings, annotator versions, blind assignment and agreement figures."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        s = sub.add_parser("settings")
        s.add_argument("--project", required=True)
        s.add_argument("--annotators", type=int)
        s.add_argument("--share", type=float)
        s.add_argument("--threshold", type=float)
        s.add_argument("--seed", type=int)
        v = sub.add_parser("versions")
        v.add_argument("--project", required=True)
        v.add_argument("--limit", type=int)
        a = sub.add_parser("assign")
        a.add_argument("--project", required=True)
        a.add_argument("--user", required=True)
        f = sub.add_parser("figures")
        f.add_argument("--project", required=True)
        f.add_argument("--json", action="store_true")

    def handle(self, *args, action, project, **opts):
        project = _project(project)
        getattr(self, f"do_{action}")(project, **opts)

    def do_settings(self, project, *, annotators=None, share=None, threshold=None, seed=None, **_):
        conf = services.settings_for(project)
        if annotators is not None and not 1 <= annotators <= 10:
            raise CommandError("--annotators: between 1 (overlap off) and 10")
        if share is not None and not 0 <= share <= 1:
            raise CommandError("--share: between 0 and 1 (0.1 is 10%)")
        if threshold is not None and not -1 <= threshold <= 1:
            raise CommandError("--threshold: between -1 and 1")
        if seed is not None and seed < 0:
            raise CommandError("--seed: 0 or more")
        for name, value in (("annotators", annotators), ("share", share), ("threshold", threshold), ("seed", seed)):
            if value is not None:
                setattr(conf, name, value)
        conf.save()
        self.stdout.write(f"annotators={conf.annotators} share={conf.share} threshold={conf.threshold} seed={conf.seed}")

    def do_versions(self, project, *, limit=None, **_):
        self.stdout.write(f"versions made for {services.create_versions(project, limit=limit)} trajectories")

    def do_assign(self, project, *, user, **_):
        who = get_user_model().objects.filter(username=user).first()
        if who is None or not project.memberships.filter(user=who).exists():
            raise CommandError(f"--user: '{user}' is not a member of {project.slug}")
        version = services.claim_version(who, project)
        self.stdout.write(f"trajectory {version.pk}" if version else "no version left for this user")

    def do_figures(self, project, *, json: bool = False, **_):
        figures = services.compute_report(project).figures
        if json:
            self.stdout.write(_dumps(figures))
            return
        o = figures["overall"]
        self.stdout.write(f"{figures['items']} items, annotators {', '.join(figures['annotators'])}: "
                          f"alpha {_fmt(o['alpha'])} interval {o['interval']}")
        for name, f in figures["labels"].items():
            self.stdout.write(f"  {name:28} alpha {_fmt(f['alpha'])}  observed {_fmt(f['observed'])}  units {f['units']}")
        for p in figures["pairs"]:
            self.stdout.write(f"  {p['a']} / {p['b']}: kappa {_fmt(p['kappa'])} on {p['items']} items")


def _dumps(value) -> str:
    return json.dumps(value, indent=2)
