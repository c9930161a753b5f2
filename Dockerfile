# syntax=docker/dockerfile:1
# The operator's image: `make image` (docker build -t sovereign-suite-operator:<version> .).
# Build stage: a virtual environment with the Python packages of image/requirements.txt (every dependency at one
# version, checked by hash), then the package from this repository, compiled to bytecode. Final stage: the same
# slim Python with only that environment, no pip, no setuptools, no compiler, running as an unprivileged user on a
# read-only root filesystem. The same image is built without a container engine by `make operator-image`
# (operator/sovereign_suite/devcluster/realnode/operator_image.py); tests/test_operator_image.py checks that
# both install the same packages with the same entrypoint, user and environment.
#
# The base is pinned by tag; pin it by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/sovereign-suite
WORKDIR /src
COPY image/requirements.txt image/build-constraints.txt ./image/
RUN /opt/sovereign-suite/bin/pip install --compile --require-hashes --no-deps --only-binary=:all: -r image/requirements.txt
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
RUN PIP_CONSTRAINT=image/build-constraints.txt /opt/sovereign-suite/bin/pip install --compile --no-deps . \
 && /opt/sovereign-suite/bin/pip uninstall --yes pip setuptools \
 && /opt/sovereign-suite/bin/sovereign-suite crds >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sovereign-suite-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Kubernetes operator for a multi-country sovereign digital workplace"
# pip and setuptools of the base image are not needed at run time; the user needs a name (Kopf asks for it at
# start: getpass.getuser() fails on a uid without a passwd entry)
RUN python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel >/dev/null 2>&1 || true \
 && echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'nonroot:x:65532:' >> /etc/group
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
