"""Who may open a host port: the platform team, through the NationalCloud, never a suite editor alone.

A hostPort is forbidden by the Pod Security levels ``restricted`` and ``baseline`` alike (baseline allows only
the ports of a list that is empty by default), so a tenant namespace running JVB with ``jitsi.jvb.type:
HostPort`` must enforce ``privileged``. That lowers the namespace's protection as a whole, so it is allowed
only on a cloud whose owner declared ``spec.hostPorts`` (a port range), and only for a port in that range.
"""

from __future__ import annotations

from .models import Jitsi, NationalCloud


def host_ports_allowed(cloud: NationalCloud) -> bool:
    return cloud.spec.host_ports is not None


def host_port_problems(jitsi: Jitsi, cloud: NationalCloud, type_path: str, port_path: str) -> list[tuple[str, str]]:
    """(field path, message) for a JVB host port the tenant's cloud does not allow."""
    if not jitsi.enabled or jitsi.jvb.type != "HostPort":
        return []
    allowed = cloud.spec.host_ports
    if allowed is None:
        return [(type_path, f"HostPort is not allowed on NationalCloud {cloud.name!r}: a host port needs the "
                            "namespace's Pod Security level privileged, which only the cloud's owner can allow "
                            "(NationalCloud spec.hostPorts); use NodePort or LoadBalancer")]
    port = jitsi.jvb.udp_port
    if not allowed.min <= port <= allowed.max:
        return [(port_path, f"{port} is outside the host ports NationalCloud {cloud.name!r} allows "
                            f"({allowed.min}-{allowed.max})")]
    return []
