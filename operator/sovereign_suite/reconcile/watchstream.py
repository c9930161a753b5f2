"""One watch request on the event loop (watchloop.py): ``Kube.watch``'s rules, with aiohttp instead of a thread.

aiohttp is already in the operator (Kopf's own client, kopf==1.45.2 requires it), so multiplexing the watches costs
no new dependency. What ``Kube.watch`` and transport.py do, kept here:

- bookmarks on, ``timeoutSeconds`` = the cluster's ``Deadlines.watch``; a read timeout of ``watch + read``
  (aiohttp's ``sock_read``: the longest wait for any bytes of the response, its headers included;
  aiohttp==3.14.5 aiohttp/client.py ``ClientTimeout.sock_read``), so a server that stops answering (SIGSTOP,
  black-holed route) is noticed within 60 s on a member;
- no retry in the client: a failure is raised, and the informer decides (relist, back off);
- every chunk received marks the cluster as answering; a timeout or a TLS failure marks it down, a reset
  connection does not (the informer's relist says whether the server answers);
- the same TLS as the client's ``Configuration`` (CA file or in-memory CA data, client certificate, TLS server
  name, verification switch) and the same credentials (``update_params_for_auth`` per request: a rotated token
  file is read again).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import aiohttp

from .kube import ApiError, Kind, Kube, Unreachable
from .transport import Cause


def ssl_context(cfg: Any) -> ssl.SSLContext | None:
    """The TLS settings of a kubernetes client ``Configuration`` (None: plain HTTP)."""
    if not str(cfg.host).startswith("https"):
        return None
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None, cadata=cfg.ca_cert_data or None)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cfg.assert_hostname is False:
        ctx.check_hostname = False
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


def session_for(kube: Kube) -> aiohttp.ClientSession:
    """A cluster's session (made on the event loop): as many connections as it has watches (``limit=0``), its
    client's TLS."""
    cfg = kube.api.configuration
    connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context(cfg) or False)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def aio_transport_error(exc: BaseException) -> Cause | None:
    """transport.py's ``transport_error`` for aiohttp's exceptions (aiohttp==3.14.5 aiohttp/client_exceptions.py:
    ``ServerTimeoutError`` derives from ``asyncio.TimeoutError``, ``ClientSSLError`` from ``ClientConnectorError``,
    the certificate and SSL errors from both ``ClientSSLError`` and the ``ssl`` module's)."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Cause(f"no answer in time: {text}", False)
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError, ssl.CertificateError)):
        return Cause(f"TLS: {text}", False)
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)):
        return Cause(text, True)
    return None


def _unanswered(kube: Kube, exc: BaseException, kind: str) -> BaseException:
    cause = aio_transport_error(exc)
    if cause is None:
        return exc
    if not cause.retriable:
        kube.reachability.failed(f"watch {kind}: {cause.message}")
    return Unreachable(cause.message, f"watch {kind}", "GET")


async def watch(session: aiohttp.ClientSession, kube: Kube, kind: Kind, resource_version: str,
                label_selector: str | None, namespace: str | None, field_selector: str | None,
                timeout: int) -> AsyncIterator[dict[str, Any]]:
    """The watch events ({"type", "object"}) from ``resource_version`` until the server ends the watch. An expired
    version arrives as an ERROR event (code 410); a status other than 200 raises ``ApiError``; no byte for
    ``timeout`` + the read deadline, or any other transport error, raises ``Unreachable``."""
    cfg = kube.api.configuration
    query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
             "labelSelector": label_selector, "fieldSelector": field_selector, "timeoutSeconds": timeout}
    url = cfg.host + kind.path(namespace) + "?" + urlencode({q: v for q, v in query.items() if v is not None})
    headers = {"Accept": "application/json", "User-Agent": kube.user_agent}
    kube.api.update_params_for_auth(headers, None, ["BearerToken"], None, "GET", None)
    with kube._lock:
        kube.requests["WATCH"] += 1
    deadline = aiohttp.ClientTimeout(total=None, sock_connect=kube.deadlines.connect,
                                     sock_read=timeout + kube.deadlines.read)
    sent = time.monotonic()
    try:
        resp = await session.get(url, headers=headers, timeout=deadline, proxy=cfg.proxy or None,
                                 server_hostname=getattr(cfg, "tls_server_name", None) or None)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - only transport errors are handled; anything else is raised
        raise _unanswered(kube, exc, kind.kind) from None
    kube.reachability.answered(sent)
    async with resp:
        if resp.status != 200:
            data = await resp.read()
            try:
                detail = json.loads(data)
            except ValueError:
                detail = {"message": data.decode(errors="replace")[:500]}
            if resp.status == 404:
                kube.forget_api(kind.api_version)
            raise ApiError(resp.status, detail.get("reason", ""), detail.get("message", ""), f"watch {kind.kind}",
                           "GET")
        buf = bytearray()
        chunks = resp.content.iter_any().__aiter__()
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - only transport errors are handled
                raise _unanswered(kube, exc, kind.kind) from None
            kube.reachability.answered(sent)
            buf += chunk
            start = 0
            while (end := buf.find(b"\n", start)) >= 0:
                line = bytes(buf[start:end])
                start = end + 1
                if line.strip():
                    yield json.loads(line)
            del buf[:start]
