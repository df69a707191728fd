# The gpu-scheduler image: the controller (`gpu-scheduler run`) and the node agent
# (`gpu-scheduler agent`) in one, as the Helm chart deploys it.
#
#   docker build -t gpu-scheduler:dev .
#   docker build --build-arg VERSION=0.1.0 --build-arg BASE=registry.example/python:3.12-slim@sha256:... .
#
# Two stages on the same base: `build` makes the wheel and installs it with its dependencies into a
# virtual environment at /opt/venv; the final stage copies only that venv onto the base. It runs as
# 65532:65532, writes nothing at runtime (read-only root filesystem; the chart mounts an emptyDir
# at /tmp), and ships the programme's policy at /etc/gpu-scheduler/policies, where the chart mounts
# the policy ConfigMap over it.
#
# BASE is any Debian-like image with python3 (3.11 or later) and its venv module; the default is
# the official slim image, pinned by digest so a rebuild gets the same base. The venv points at the
# base's own interpreter (/usr/local/bin/python3 there, /usr/bin/python3 on a Debian base), which
# is why both stages must use the same BASE.
ARG BASE=python:3.12.13-slim-bookworm@sha256:4766d8b510c428e595d74b9cc5bbb2fae8e26316fffb4adc89908d79aacd58a2

FROM ${BASE} AS build

# A CA bundle for pip, when the build's network goes through a TLS-inspecting proxy
# (docker build --build-arg PIP_CERT=/path/in/the/build/container ...). Empty: pip's own bundle.
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY scheduler/ scheduler/
# The wheel (built in isolation with the build backend pyproject.toml names), installed with its
# dependencies as published wheels only (no compiler here, nor in the final image); then the venv's
# own installers removed: nothing in the final image installs anything. Every module is compiled
# here, since the running container cannot write its bytecode.
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --progress-bar off --wheel-dir /tmp/dist . \
    && /opt/venv/bin/pip install --no-cache-dir --no-compile --only-binary :all: --progress-bar off \
        /tmp/dist/gpu_scheduler-*.whl \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv \
    && /opt/venv/bin/gpu-scheduler --version

FROM ${BASE}

# The release (the image tag without its "v"); the release pipeline passes it.
ARG VERSION=dev

LABEL org.opencontainers.image.title="gpu-scheduler" \
      org.opencontainers.image.description="Hands a national GPU fleet to competing AI consortia and takes it back, safely, as rounds eliminate them." \
      org.opencontainers.image.source="https://github.com/sovereign-ai/gpu-scheduler" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The runtime user (no home, no login shell); the interpreter's standard library compiled now, for
# the same reason as the venv (the slim image ships it without bytecode); and no world-writable
# path left but /tmp (the base's /var/tmp and /run/lock lose that bit). /tmp is the only scratch
# space: the chart mounts an emptyDir there, `docker run --read-only` wants `--tmpfs /tmp`.
RUN echo 'nonroot:x:65532:' >> /etc/group \
    && echo 'nonroot:x:65532:65532:gpu-scheduler:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && python3 -m compileall -q -j 0 "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
    && find / -xdev -path /tmp -prune -o \( -type d -o -type f \) -perm -o+w -exec chmod o-w {} +

COPY --from=build /opt/venv /opt/venv
COPY policies/ /etc/gpu-scheduler/policies/

USER 65532:65532
WORKDIR /
ENTRYPOINT ["gpu-scheduler"]
CMD ["--help"]
