# syntax=docker/dockerfile:1
# The operator's image: `make image` (docker build -t sovereign-suite-operator:<version> .).
# Build stage: a virtual environment with the package installed from this repository (pinned dependencies
# from pyproject.toml), compiled to bytecode. Final stage: the same slim Python with only that environment,
# no pip, no compiler, running as an unprivileged user on a read-only root filesystem.
#
# The base is pinned by tag; pin it by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/sovereign-suite
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
RUN /opt/sovereign-suite/bin/pip install --compile . \
 && /opt/sovereign-suite/bin/pip uninstall --yes pip \
 && /opt/sovereign-suite/bin/sovereign-suite crds >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sovereign-suite-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Kubernetes operator for a multi-country sovereign digital workplace"
# pip and setuptools of the base image are not needed at run time
RUN python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel >/dev/null 2>&1 || true
COPY --from=build /opt/sovereign-suite /opt/sovereign-suite
ENV PATH=/opt/sovereign-suite/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# 65532: the conventional "nonroot" user; the chart's podSecurityContext uses the same ids.
USER 65532:65532
EXPOSE 9090 8080
ENTRYPOINT ["sovereign-suite"]
CMD ["run"]
