"""Docs' Redis serves TLS only and Docs' clients verify it: Debian's real redis-server started with the rendered
arguments and the tenant's certificates (tests/components/rendered_servers.py), and the rendered REDIS_URL and
Celery broker URL used through the Redis clients of the pinned Docs (redis-py 5.2.1 for django-redis, kombu 5.5.4
for Celery: impress v5.4.1 src/backend/uv.lock). The only stand-in is the Service's DNS name: ``docs-redis``
resolves to the loopback address in this process, as the cluster's DNS would resolve it to the Service."""

from __future__ import annotations

import socket
import subprocess

import kombu
import pytest
import redis

from sovereign_suite.components import docs
from sovereign_suite.components.base import build_contexts
from sovereign_suite.tlsgen import new_ca

from ..helpers import load_example
from . import rendered_servers as rs

pytestmark = pytest.mark.slow
PASSWORD = "redis-pw-42"


@pytest.fixture(scope="module")
def fr():
    suite, clouds = load_example("four-countries")
    return build_contexts(suite, clouds)[0]


@pytest.fixture
def service_dns(monkeypatch):
    """docs-redis (and, for the name check, docs-postgres) resolve to 127.0.0.1 in this process."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        return real("127.0.0.1" if host in ("docs-redis", "docs-postgres") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def client_urls(objs, secrets, port: int, folder) -> dict[str, str]:
    """REDIS_URL and DJANGO_CELERY_BROKER_URL as the backend's container gets them: $(REDIS_PASSWORD) expanded, the
    CA file where the backend's volume puts it, the server's test port."""
    pod = rs.by_kind(objs, "Deployment", "docs-backend")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    where = rs.mount(pod, container, folder, secrets, {}, only={"tls-ca"})  # the CA the clients verify with
    env = {e["name"]: e.get("value") for e in container["env"]}
    return {name: rs.remap(env[name].replace("$(REDIS_PASSWORD)", PASSWORD), where).replace(":6379/", f":{port}/")
            for name in ("REDIS_URL", "DJANGO_CELERY_BROKER_URL")}


def test_docs_redis_is_tls_only_and_its_clients_verify_it(fr, service_dns):
    objs = docs.render(fr)
    secrets = {"tenant-tls": rs.tenant_tls(fr), "docs-secrets": {"REDIS_PASSWORD": PASSWORD}}
    with rs.redis(objs, "docs-redis", secrets, PASSWORD) as server:
        folder = rs.workdir()
        urls = client_urls(objs, secrets, server["port"], folder)
        assert all(u.startswith("rediss://") for u in urls.values())

        # django-redis' client (redis-py) with REDIS_URL: TLS, verified, authenticated
        cache = redis.Redis.from_url(urls["REDIS_URL"])
        assert cache.connection_pool.connection_class is redis.SSLConnection
        assert cache.set("k", "v") and cache.get("k") == b"v"

        # Celery's transport (kombu) with the broker URL: a message goes through the queue
        with kombu.Connection(urls["DJANGO_CELERY_BROKER_URL"]) as conn:
            conn.ensure_connection(max_retries=1)
            queue = conn.SimpleQueue("tls-check")
            queue.put({"hello": "tls"})
            message = queue.get(timeout=10)
            assert message.payload == {"hello": "tls"}
            message.ack()
            queue.close()

        # a plaintext client is refused: the port speaks TLS only (port 0: no plaintext listener)
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=server["port"], password=PASSWORD, socket_timeout=5).ping()

        # a client trusting another CA is refused
        other = folder / "other-ca.crt"
        other.write_text(new_ca("another tenant CA")[0])
        mounted_ca = f"{folder}/tls-ca/ca.crt"  # where the backend's volume "tls-ca" puts the tenant's CA
        foreign = urls["REDIS_URL"].replace(mounted_ca, str(other))
        assert str(other) in foreign
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            redis.Redis.from_url(foreign).ping()
        with pytest.raises(Exception, match="certificate verify failed"):
            with kombu.Connection(urls["DJANGO_CELERY_BROKER_URL"].replace(mounted_ca, str(other))) as c:
                c.ensure_connection(max_retries=1)

        # the host name is checked: the tenant's CA signed docs-postgres too, but that name is not Redis's
        with pytest.raises(redis.ConnectionError, match="match|mismatch"):
            redis.Redis.from_url(urls["REDIS_URL"].replace("@docs-redis:", "@docs-postgres:")).ping()

        # the rendered readiness probe (redis-cli over TLS, verifying with the CA) passes
        pod = rs.by_kind(objs, "Deployment", "docs-redis")["spec"]["template"]["spec"]
        probe = pod["containers"][0]["readinessProbe"]["exec"]["command"]
        script = rs.remap_all(probe[2], server["where"]).replace("-p 6379", f"-p {server['port']}")
        ran = subprocess.run([*probe[:2], script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stdout + ran.stderr
