"""Jitsi Meet's part of the SovereignSuite API (models.py re-exports it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import HOST_PORT_PATTERN, MAX_EXTRA_ENV, MAX_STUN_SERVERS, Model, Resources, resources
from .fieldtypes import EnvName, HostName, ImageRef, JitsiValue
from .image_pins import pinned
from .ingress_annotations import JitsiIngressAnnotations, ingress_annotations_field


class JvbExposure(Model):
    type: Literal["NodePort", "HostPort", "LoadBalancer"] = "NodePort"
    udp_port: int = Field(
        10000, ge=1024, le=65535,
        description="UDP port JVB listens on (and advertises with HostPort). At least 1024: JVB runs without "
        "privileges and cannot bind a lower port; with HostPort it must be in the NationalCloud's spec.hostPorts.",
    )
    node_port: int | None = Field(
        None, ge=30000, le=32767,
        description="NodePort only: the node port for media; default: 30000 + the country's index in the list of "
        "supported countries, so tenants sharing a cluster never collide.",
    )
    advertised_address: HostName | None = Field(
        None, description="Public IP or host name JVB advertises (NAT); default: the node IP (HostPort/NodePort)."
    )


class Jitsi(Model):
    """Jitsi Meet: web, prosody, jicofo, jvb."""

    enabled: bool = True
    web_image: ImageRef = pinned("jitsi-web")
    prosody_image: ImageRef = pinned("jitsi-prosody")
    jicofo_image: ImageRef = pinned("jitsi-jicofo")
    jvb_image: ImageRef = pinned("jitsi-jvb")
    web_replicas: int = Field(2, ge=0, le=20)
    jvb_replicas: int = Field(1, ge=0, le=50)
    jvb: JvbExposure = Field(default_factory=JvbExposure)
    ingress_annotations: JitsiIngressAnnotations = ingress_annotations_field(limits_owned=False)
    stun_servers: list[Annotated[str, Field(pattern=HOST_PORT_PATTERN, max_length=260)]] = Field(
        default_factory=list,
        max_length=MAX_STUN_SERVERS,
        description="STUN servers (host:port) the bridges use to learn their public address and the browsers "
        "use for peer-to-peer calls. None by default: nothing calls a third-party server (the images and the "
        "browsers would otherwise use meet-jit-si-turnrelay.jitsi.net:443), and peer-to-peer is off (every call "
        "goes through the tenant's bridge); set one you operate if the nodes are behind NAT or for peer-to-peer.",
    )
    resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "250m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"})
    )
    jvb_resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "1", "memory": "1Gi"}, {"cpu": "8", "memory": "8Gi"})
    )
    extra_config: dict[EnvName, JitsiValue] = Field(
        default_factory=dict,
        max_length=MAX_EXTRA_ENV,
        description="Extra environment for the Jitsi containers; may not set an owned variable. Values may not hold "
        "quotes, backslashes or control characters (the images paste them unescaped into their config files).",
    )
