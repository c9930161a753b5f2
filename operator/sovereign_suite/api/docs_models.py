"""La Suite Docs' part of the SovereignSuite API (models.py re-exports it)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from .common import MAX_EXTRA_ENV, Model, ObjectName, Resources, resources
from .fieldtypes import Endpoint, ImageRef
from .image_pins import pinned
from .ingress_annotations import IngressAnnotations, ingress_annotations_field
from .network import MAX_SOURCE_RANGES, SourceRange
from .postgres_model import Postgres


class S3(Model):
    endpoint: Endpoint = Field(
        description="S3 endpoint: http(s)://<host>[:<port>] and nothing else (no credentials, no path; external: "
        "MinIO is not bundled)."
    )
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    region: str | None = Field(None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    credentials_secret_ref: ObjectName = Field(
        description="Secret with keys AWS_S3_ACCESS_KEY_ID and AWS_S3_SECRET_ACCESS_KEY."
    )


class DocsAdmin(Model):
    """Django's admin site (``/admin`` and the ``/static`` files it needs). Not routed by default, as in Docs' own
    chart (suitenumerique/docs src/helm/impress/values.yaml, v5.4.1: ``ingressAdmin.enabled: false``): it is a
    password form for Django superusers and staff, and reachable by anyone who can reach the public host."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "!has(self.enabled) || !self.enabled || (has(self.sourceRanges) && size(self.sourceRanges) > 0)",
             "message": "enabled needs sourceRanges (the client networks the admin site is routed for)"}]}
    )

    enabled: bool = Field(
        False, description="Route /admin and /static to the backend through a second Ingress, docs-admin, that "
        "ingress-nginx serves only to sourceRanges (annotation nginx.ingress.kubernetes.io/whitelist-source-range). "
        "Refused on a NationalCloud whose ingressController is other (no allow-list the operator could write).",
    )
    source_ranges: list[SourceRange] = Field(
        default_factory=list, max_length=MAX_SOURCE_RANGES,
        description="Client networks allowed to reach the admin site (CIDRs in canonical form, e.g. "
        "192.0.2.0/24); required when enabled. /0 is refused: it would be no allow-list.",
    )

    @model_validator(mode="after")
    def _ranges_when_enabled(self) -> "DocsAdmin":
        if self.enabled and not self.source_ranges:
            raise ValueError("enabled needs sourceRanges (the client networks the admin site is routed for)")
        return self


class Docs(Model):
    """La Suite Docs (impress): backend, frontend, y-provider, celery worker, Redis."""

    enabled: bool = True
    backend_image: ImageRef = pinned("docs-backend")
    frontend_image: ImageRef = pinned("docs-frontend")
    y_provider_image: ImageRef = pinned("docs-y-provider")
    redis_image: ImageRef = pinned("redis")
    backend_replicas: int = Field(2, ge=0, le=20)
    frontend_replicas: int = Field(2, ge=0, le=20)
    y_provider_replicas: int = Field(1, ge=0, le=20)
    worker_replicas: int = Field(1, ge=0, le=20)
    s3: S3 | None = Field(None, description="Object storage for documents' media (required when enabled).")
    ingress_annotations: IngressAnnotations = ingress_annotations_field()
    admin: DocsAdmin = Field(default_factory=DocsAdmin, description="Django's admin site; not routed by default.")
    postgres: Postgres = Field(default_factory=Postgres)
    resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "250m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"})
    )
    extra_config: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_EXTRA_ENV,
        description="Extra Django settings (environment); may not set an owned variable.",
    )
