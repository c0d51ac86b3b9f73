# Trajectory Studio: `make run` starts the app, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup system-deps bench bench-smoke clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m evaluation.bfcl_package  # BFCL's reference checkers and tool classes, unpacked, not installed
	touch $(STAMP)

setup: $(STAMP)

## run: set up, migrate, seed the demo, start the web server and a Celery worker (Ctrl-C stops both)
run: $(STAMP)
	./scripts/run.sh

## test: set up the same environment, install Chromium / Redis / PostgreSQL if missing, run every test
test: $(STAMP)
	./scripts/system-deps.sh
	./scripts/test.sh

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

bench-smoke: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b --smoke || exit 1; done

clean:
	rm -rf $(VENV) var
