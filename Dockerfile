FROM python:3.11-slim
# The production shape: SECRET_KEY must be set at run time (the app refuses to start without one).
ENV PYTHONUNBUFFERED=1 STUDIO_PRODUCTION=1 STUDIO_DATA_DIR=/data STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY pyproject.toml README.md ./
COPY studio studio
COPY annotate annotate
COPY training training
COPY evaluation evaluation
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install --no-cache-dir -e .
# Static files collected (and compressed) into the image, served by whitenoise. Settings need a key
# to load: a throwaway one, in this step's environment only; its data dir is removed.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" STUDIO_DATA_DIR=/tmp/build \
    python manage.py collectstatic --noinput && rm -rf /tmp/build
RUN useradd --system --home-dir /app studio && mkdir -p /data && chown studio /data
USER studio
EXPOSE 8000
CMD ["gunicorn", "-c", "python:studio.gunicorn", "studio.wsgi"]
