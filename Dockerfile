# syntax=docker/dockerfile:1
#
# Image of the cme API: `docker build -t cme .`, run it with `docker compose up --build`.
#
# Both stages use the same base so the venv's interpreter symlinks stay valid in the runtime.
# BASE_IMAGE is a build argument only so that a machine without a registry can build with a local
# stand-in (`make container-test`, see the README); releases use this default.
# The base is pinned to a patch tag. It is not pinned by digest: the digest could not be looked up
# on the offline machine this file was written on. Where a registry can be reached, append it
#   docker buildx imagetools inspect python:3.11.17-slim-bookworm --format '{{.Manifest.Digest}}'
# as ARG BASE_IMAGE=python:3.11.17-slim-bookworm@sha256:<digest>, and let Dependabot or
# Renovate bump tag and digest together.
ARG BASE_IMAGE=python:3.11.17-slim-bookworm

FROM ${BASE_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src

# Only what the wheel is built from: the test suite and local files never reach a layer.
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY src ./src

# The wheel alone is enough at run time: the Alembic migrations ship inside the package.
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

# Every dependency version comes from the constraints file, so two builds install the same set.
# pip compiles the .pyc files here, since the runtime filesystem is read-only.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/constraints.txt /wheels/*.whl


FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="cme" \
      org.opencontainers.image.description="Product catalogue REST API"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}"

# A fixed UID/GID so volume ownership and Kubernetes securityContext agree with the image.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

# No compiler and no source tree in this stage: only the installed venv.
COPY --from=builder /opt/venv /opt/venv

WORKDIR /app

# Numeric so Kubernetes' runAsNonRoot can verify it without a runAsUser override.
USER 10001:10001

EXPOSE 5000

# Liveness only (/health does no I/O). urllib because the slim base has neither curl nor wget;
# exec form, so Python itself does ${PORT:-5000}: an unset or empty PORT means 5000.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('PORT') or 5000), timeout=2)"]

# `cme serve` reads HOST, PORT and WEB_CONCURRENCY from the environment itself.
CMD ["cme", "serve"]
