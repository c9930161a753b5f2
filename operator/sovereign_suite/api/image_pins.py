"""The release's image pins: every image the operator runs by default, by tag (for reading) and, once verified,
by digest (issue 22, item 17).

A tag is mutable: whoever controls the registry (or a mirror in between) can serve other bytes under it. A digest
names the bytes. The rendered reference is ``<repository>:<tag>@<digest>`` when a pin has a digest: the container
runtime pulls by digest and ignores the tag, which stays for people reading the pod spec; a country's
``imageRegistry`` rewrites the registry and keeps both (imageref.py).

No pin carries a digest yet. The machine this release was prepared on reaches no container registry, so no
digest could be read from one, and a digest copied from elsewhere without checking it against the registry could
be wrong or hostile. docs/security.md ("Image digests") says how a platform team fills them: here for its own
build of the operator, or per suite in the image fields (``spec.components.<component>.*image``), which accept
``repository:tag@sha256:<64 hex>`` as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The digest algorithms the OCI image spec registers (image-spec descriptor.md, "Registered algorithms"), each with
# its exact encoded length: a shorter or longer hex string is a typo, never a digest.
DIGEST_PATTERN = r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"
_DIGEST_RE = re.compile(rf"^{DIGEST_PATTERN}$")
_TAGGED_RE = re.compile(r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Pin:
    """``image`` is ``registry/repository:tag``; ``digest`` is ``sha256:<64 hex>`` read from the registry, or None."""

    image: str
    digest: str | None = None

    def __post_init__(self) -> None:
        if not _TAGGED_RE.match(self.image) or "@" in self.image:
            raise ValueError(f"pin {self.image!r}: must be registry/repository:tag (the digest goes in digest)")
        if self.digest is not None and not _DIGEST_RE.match(self.digest):
            raise ValueError(f"pin {self.image!r}: digest {self.digest!r} is not sha256:<64 hex> or sha512:<128 hex>")

    @property
    def ref(self) -> str:
        return f"{self.image}@{self.digest}" if self.digest else self.image


PINS: dict[str, Pin] = {
    "postgres": Pin("docker.io/library/postgres:17.6-bookworm"),
    "postgres-exporter": Pin("quay.io/prometheuscommunity/postgres-exporter:v0.18.1"),
    "synapse": Pin("ghcr.io/element-hq/synapse:v1.163.2"),
    "element-web": Pin("ghcr.io/element-hq/element-web:v1.11.110"),
    "jitsi-web": Pin("ghcr.io/jitsi/web:stable-11146-1"),
    "jitsi-prosody": Pin("ghcr.io/jitsi/prosody:stable-11146-1"),
    "jitsi-jicofo": Pin("ghcr.io/jitsi/jicofo:stable-11146-1"),
    "jitsi-jvb": Pin("ghcr.io/jitsi/jvb:stable-11146-1"),
    "docs-backend": Pin("docker.io/lasuite/impress-backend:v5.4.1"),
    "docs-frontend": Pin("docker.io/lasuite/impress-frontend:v5.4.1"),
    "docs-y-provider": Pin("docker.io/lasuite/impress-y-provider:v5.4.1"),
    "redis": Pin("docker.io/library/redis:8.2-alpine"),
    "litellm": Pin("ghcr.io/berriai/litellm:v1.77.7-stable"),
    "vllm": Pin("docker.io/vllm/vllm-openai:v0.33.0"),
    "synapse-redis": Pin("docker.io/library/redis:8.2-alpine"),  # the Synapse workers' replication
    "synapse-router": Pin("docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine"),  # paths to worker types
    # built from this repository's Dockerfile.backup (api/backups.py)
    "backup": Pin("ghcr.io/sovereign-suite/backup:0.1.0"),
    # the FineTune training Job (python -m sovereign_suite.finetune.trainer): the operator's, never the user's
    "trainer": Pin("ghcr.io/sovereign-suite/trainer:0.1.0"),
}


# The pins of the releases before the current one (api/releases.yaml says what each release is): only the images
# that differ from PINS. Declared here, with the current ones, so that this file stays the one place a pinned
# image is written.
OLDER_PINS: dict[str, dict[str, Pin]] = {
    # Synapse v1.99.0 (January 2024): the last minor whose schema (83) a database migrated by the current
    # Synapse refuses (api/releases.yaml), which is what the downgrade refusal is about.
    "2024.01": {"synapse": Pin("ghcr.io/element-hq/synapse:v1.99.0")},
}


def release_pins(release: str | None) -> dict[str, Pin]:
    """Every pin of ``release`` (None: the current one): the current pins with the release's own over them."""
    return {**PINS, **OLDER_PINS.get(release or "", {})}


def pinned(name: str) -> str:
    """The rendered reference of pin ``name`` (with its digest when it has one)."""
    return PINS[name].ref
