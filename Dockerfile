# Backend-AI: one image for the web process (default command) and the job worker (`python -m backend.jobs.worker`).
#   docker build -t backend-ai .
#   docker run -p 8000:8000 --env-file .env backend-ai                          # web (gunicorn)
#   docker run --env-file .env backend-ai python -m backend.jobs.worker          # worker
#   docker run --env-file .env backend-ai flask --app wsgi db upgrade            # release step (migrations)
# Stopping: on SIGTERM web drains (still serving for SHUTDOWN_DRAIN_SECONDS while /health/ready says 503), then
# lets in-flight requests finish, within gunicorn's graceful_timeout (LONGEST_REQUEST_SECONDS + 25 +
# SHUTDOWN_DRAIN_SECONDS, 130 s by default), and running jobs reach their next step; give the runtime at least that
# long (`docker stop -t 135`, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
# BASE: the official image for users; scripts/image-test.sh passes a locally built Debian bookworm with python3.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS builder
# A CA bundle for pip, mounted at build time only where outbound TLS is re-signed by a local CA; never copied into
# the image (scripts/image-test.sh passes it).
ARG PIP_CERT=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY requirements.txt /tmp/requirements.txt
# Wheels only where they exist (every compiled dependency ships manylinux wheels), so no compiler is needed; pip
# and setuptools are removed afterwards: nothing imports them at run time and the image has no business installing.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} --prefer-binary -r /tmp/requirements.txt \
 && /opt/venv/bin/pip uninstall -y -q pip setuptools

FROM ${BASE}
# The Speech SDK's native libraries load OpenSSL (even for ws://), libuuid, libstdc++ and ALSA (its audio extension
# links it); ca-certificates for TLS to the providers. GStreamer is left out: it is needed only for compressed
# audio input, which the service never hands the SDK (it converts to PCM WAV itself).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libasound2 libuuid1 libstdc++6 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# A fixed uid/gid, so volume ownership and Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY wsgi.py ./
COPY config/gunicorn.conf.py ./config/
COPY templates ./templates
COPY backend ./backend
# Byte-code compiled now (root-owned, read-only at run time), since the process may not write it; only ./var
# (SQLite, the disk cache, the job queue file) and /tmp (metrics of the workers) are writable by the app user.
RUN python -m compileall -q wsgi.py config backend \
 && mkdir -p /app/var \
 && chown 10001:10001 /app/var \
 && chmod 1777 /tmp

USER 10001:10001
EXPOSE 8000
# Liveness only: /health touches no dependency. It asks the port the server listens on (PORT), on loopback unless
# HOST names one address. Stdlib urllib, because the slim base has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; h = os.environ.get('HOST') or '0.0.0.0'; h = '127.0.0.1' if h in ('0.0.0.0', '::') else ('[%s]' % h if ':' in h else h); r = u.urlopen('http://%s:%s/health' % (h, os.environ.get('PORT') or '8000'), timeout=4); raise SystemExit(0 if r.status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]
