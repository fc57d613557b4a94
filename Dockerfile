# Consent Desk: one image for web (gunicorn), worker and beat (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN pip install .

COPY . .

# The code stays owned by root; only var/ (static files, uploads, exports) belongs to the app
# user; the named volumes mounted on var/media and var/private start with that ownership.
# Static files are collected at build time and served by WhiteNoise; collectstatic needs
# no database, only settings that load.
RUN DEBUG=false ENV_FILE=/dev/null ALLOWED_HOSTS=localhost SITE_URL=http://localhost \
        SECRET_KEY=collectstatic-only SUPPRESSION_HMAC_KEY=collectstatic-only \
        LEDGER_SEAL_KEY=collectstatic-only EMAIL_URL=smtp://localhost:25 \
        CONTROLLER_NAME=collectstatic-only CONTROLLER_ADDRESS=collectstatic-only \
        DPO_CONTACT=collectstatic-only PRIVACY_NOTICE_URL=collectstatic-only \
        FIELD_ENCRYPTION_KEY=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE= \
        python manage.py collectstatic --noinput \
    && mkdir -p var/media var/private var/celery \
    && chown -R app:app var

USER app

EXPOSE 8000

CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", "--logger-class", "preferences.logging.AccessLogger"]
