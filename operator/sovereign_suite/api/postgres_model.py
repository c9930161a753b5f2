"""A component's database (Matrix and Docs): embedded, CloudNativePG or external. Part of the SovereignSuite API
(models.py re-exports it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .common import Model, Quantity, Resources, SecretKeyRef, resources
from .fieldtypes import HostName, ImageRef, PgIdentifier
from .image_pins import pinned


class Postgres(Model):
    """The database of a component. ``embedded``: a single-instance StatefulSet rendered by the operator;
    ``cloudnative-pg``: a CloudNativePG Cluster (the CNPG operator must be installed); ``external``: an
    existing server."""

    mode: Literal["embedded", "cloudnative-pg", "external"] = "embedded"
    image: ImageRef = pinned("postgres")
    storage: Quantity = "10Gi"
    instances: int = Field(1, ge=1, le=9, description="cloudnative-pg only: number of instances.")
    resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "250m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"})
    )
    host: HostName | None = Field(None, description="external only: the server's host name or IP address.")
    port: int = Field(5432, ge=1, le=65535)
    database: PgIdentifier | None = Field(None, description="Database name; default: the component's name.")
    user: PgIdentifier | None = Field(None, description="User name; default: the component's name.")
    password_secret_ref: SecretKeyRef | None = Field(None, description="external only: the user's password.")
    ssl_mode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        None, description="external only (default prefer). The embedded and cloudnative-pg databases accept TLS only "
        "and the suite's clients verify them (verify-full, with the tenant's CA or CloudNativePG's): any other value "
        "is refused there.")

    @model_validator(mode="after")
    def _external_needs_host(self) -> "Postgres":
        if self.mode == "external":
            missing = [n for n, v in (("host", self.host), ("passwordSecretRef", self.password_secret_ref)) if not v]
            if missing:
                raise ValueError(f"mode external needs {' and '.join(missing)}")
        return self
