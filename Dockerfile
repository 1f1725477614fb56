# One image for every part of the service: web (the default command), the
# RQ workers and the scheduler; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# A fixed, unprivileged id, so that volume permissions and a cluster's
# "run as non-root" rule both work.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app \
        --shell /usr/sbin/nologin app

# The setup wizard saves settings and keys in DATA_DIR. A new named volume
# mounted on /data takes this folder's owner and mode, so the app can write
# there; docker-compose.yml mounts one volume on web, worker and scheduler.
ENV DATA_DIR=/data
RUN install -d -o 10001 -g 10001 -m 700 /data
VOLUME ["/data"]

# Runtime requirements only; the test tools stay out of the image.
COPY requirements.txt ./
RUN pip install --no-compile -r requirements.txt

COPY sync/ sync/
COPY web/ web/
COPY worker/ worker/
COPY scripts/healthcheck.py scripts/
COPY mapping.yaml ./

USER 10001:10001
EXPOSE 8000

# Slim has no curl; the check is plain Python against GET /health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "scripts/healthcheck.py", "web"]

CMD ["gunicorn", "-c", "web/gunicorn.conf.py", "web:create_app()"]
