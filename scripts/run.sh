#!/usr/bin/env bash
# Start Trajectory Studio on its embedded default: SQLite + a Celery worker on the filesystem
# broker, both under ./var (override with STUDIO_DATA_DIR). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

$PY manage.py migrate --noinput
$PY manage.py seed_demo

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping web server and worker..."
  for pid in "${pids[@]}"; do kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap stop INT TERM EXIT

set -m  # each background job in its own process group, so a stop reaches its children
.venv/bin/celery -A studio worker -B -Q default,export,train,eval --concurrency 2 --loglevel INFO \
  --schedule "${STUDIO_DATA_DIR:-var}/celerybeat-schedule" &
pids+=($!)
$PY manage.py runserver "$HOST:$PORT" --noreload &
pids+=($!)
set +m
echo "Trajectory Studio: http://$HOST:$PORT/  (admin / admin-demo, lead / lead-demo, annotator / annotator-demo)"
wait -n "${pids[@]}"
