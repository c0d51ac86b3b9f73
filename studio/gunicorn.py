"""gunicorn's settings for the production shape: `gunicorn -c python:studio.gunicorn studio.wsgi`
(docker-compose.yml and the Dockerfile). WEB_CONCURRENCY, PORT and WEB_TIMEOUT override them."""

import os

bind = f"0.0.0.0:{os.getenv('PORT', '8000')}"
workers = int(os.getenv("WEB_CONCURRENCY", "3"))
# An uploaded file is imported inside its request: a big one takes longer than the default 30 s.
timeout = int(os.getenv("WEB_TIMEOUT", "300"))
accesslog = "-"
