#!/usr/bin/env bash
# Start Trajectory Studio on its embedded default: SQLite, a Celery worker and the beat scheduler
# on the filesystem broker, all under ./var (override with STUDIO_DATA_DIR), with the demo project
# and users (STUDIO_DEMO=0 to skip them). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export STUDIO_DEMO=${STUDIO_DEMO:-1}

$PY manage.py migrate --noinput
if [ "$STUDIO_DEMO" = 1 ]; then
  $PY manage.py seed_demo
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping web server, worker and beat..."
  for pid in "${pids[@]}"; do kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap stop INT TERM EXIT

set -m  # each background job in its own process group, so a stop reaches its children
.venv/bin/celery -A studio worker -Q default,export,train,eval --concurrency 2 --loglevel INFO &
pids+=($!)
# Beat on its own (not `worker -B`): it sends the periodic job sweep, and stops with the rest.
.venv/bin/celery -A studio beat --loglevel INFO --schedule "${STUDIO_DATA_DIR:-var}/celerybeat-schedule" &
pids+=($!)
$PY manage.py runserver "$HOST:$PORT" --noreload &
pids+=($!)
set +m
if [ "$STUDIO_DEMO" = 1 ]; then
  echo "Trajectory Studio: http://$HOST:$PORT/  (admin / admin-demo, lead / lead-demo, annotator / annotator-demo)"
else
  echo "Trajectory Studio: http://$HOST:$PORT/  (create a user: .venv/bin/python manage.py createsuperuser)"
fi
wait -n "${pids[@]}"
