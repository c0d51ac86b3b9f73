FROM python:3.11-slim
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
EXPOSE 8000
