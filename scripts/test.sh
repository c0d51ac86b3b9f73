#!/usr/bin/env bash
# Run the whole suite: unit, importer, DB, API, Celery, Redis, PostgreSQL and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export STUDIO_DATA_DIR=${STUDIO_DATA_DIR:-$PWD/var/test}
mkdir -p "$STUDIO_DATA_DIR"
# Build the tiny model once, before the parallel workers start.
.venv/bin/python -c "from pathlib import Path; from training.tiny_model import build_tiny_model; build_tiny_model(Path('var/test-cache/tiny-qwen3'))" >/dev/null 2>&1
# BFCL's reference checkers and tool classes (the agreement and multi-turn tests need them):
# downloaded once with pip, unpacked, never installed. Fails loudly if it can't.
.venv/bin/python -m evaluation.bfcl_package >/dev/null
exec .venv/bin/pytest -n "${TEST_WORKERS:-2}" --dist loadgroup "$@"
