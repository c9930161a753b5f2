"""A small raw-JSON Kubernetes client on top of apiclient.py's transport (or the official client's, for the CLI
commands that keep it: both have the same ``configuration``, ``rest_client.request`` and ``update_params_for_auth``).

Why not the typed or dynamic clients: the pipeline works on plain dicts (what the renderers produce), needs
server-side apply with a field manager, and must handle 429 and 5xx itself (honouring Retry-After), count its
requests by verb for the metrics, and name the object and the API server's message in every error.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

from .discovery import Discovery
from .kinds import ApiError, Kind, Unreachable, ref  # noqa: F401 (re-exported: the operator imports them from here)
from .transport import CONNECTION_POOL, HUB, Deadlines, Reachability, transport_error  # noqa: F401 (re-exported)
from .unserved import Waiters

log = logging.getLogger(__name__)

USER_AGENT = "sovereign-suite-operator"  # the audit log and API server metrics tell its requests apart
RETRIABLE = {429, 500, 502, 503, 504}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


# Characters the API server's YAML reader refuses raw ("yaml: control characters are not allowed": DEL and the C1
# controls, U+FFFE, U+FFFF) or reads as a line break inside a quoted string (NEL, U+2028, U+2029 in YAML 1.1), and
# the byte-order mark. Found by tests/cluster/test_input_property_dryrun.py: an adminGroup ending in U+0091.
_YAML_UNSAFE_RE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def yaml_safe_json(obj: Any) -> str:
    """``obj`` as JSON that the API server's YAML parser reads back unchanged (an apply body is parsed as YAML).

    Raw UTF-8, not json.dumps' default \\uXXXX surrogate pairs for characters outside the BMP, which are no valid
    YAML escape (refused with 400); the characters above as \\uXXXX escapes, which YAML reads like JSON. JSON's
    own syntax is ASCII, so every such character is inside a string, where the escape is valid."""
    text = json.dumps(obj, ensure_ascii=False)
    return _YAML_UNSAFE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Kube(Discovery):
    """Thread-safe; one per cluster. ``requests`` counts calls by HTTP verb (APPLY for server-side apply).
    ``deadlines``: how long a request and a watch may go without an answer (transport.py); ``reachability``:
    whether the cluster answers (``Reachability``); ``fence``: checked before each write is sent (leader election).
    ``api``: an apiclient.ApiClient built on ``transport.client_configuration`` (no retry hidden in urllib3:
    ``request`` decides what is tried again), or an official ``kubernetes.client.ApiClient`` (CLI commands)."""

    def __init__(self, api: Any, max_retries: int = 6, max_delay: float = 30.0,
                 user_agent: str = USER_AGENT, discovery_ttl: float = 30.0, deadlines: Deadlines = HUB,
                 reachability: Reachability | None = None, fence: Callable[[str], None] | None = None):
        self.api = api
        # called before every mutating request is sent (each attempt): raises when this replica may not write
        # (leader/elector.py, Leadership.check); None: always allowed
        self.fence = fence
        # called with (apiVersion, kind, namespace) before an object is created or patched: a member's cache
        # watches again a kind it had stopped watching (informer.py, parking); None: nothing to tell
        self.on_write: Callable[[str, str, str | None], None] | None = None
        self.deadlines = deadlines
        self.reachability = reachability or Reachability()
        self.user_agent = user_agent
        self.max_retries = max_retries
        self.max_delay = max_delay
        self.requests: Counter[str] = Counter()
        # how old a cached "not served" may be when asked again (unserved.py: the watches' own backoff is longer)
        self.discovery_ttl = discovery_ttl
        # watches waiting for a group to serve a kind (informer.py): woken by a request of this client that finds it
        self.waiters = Waiters()
        self._groups: dict[str, tuple[float, dict[str, Kind]]] = {}  # api_version -> (when, kind -> resource)
        self._asking: dict[str, threading.Lock] = {}  # api_version -> held while its discovery is asked
        self._lock = threading.Lock()

    # ---- transport --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
        what: str = "",
        timeout: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """``timeout``: (connect, read) for this request instead of the client's deadlines (the leader's Lease
        renewal must not wait past its renew deadline)."""
        url = self.api.configuration.host + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": self.user_agent}
        self.api.update_params_for_auth(headers, None, ["BearerToken"], None, method, body)
        verb = "APPLY" if content_type == "application/apply-patch+yaml" else method
        if verb == "APPLY" and isinstance(body, dict):
            body = yaml_safe_json(body).encode()
        if (query or {}).get("dryRun"):
            verb = "DRYRUN"  # nothing is written: not counted with the writes
        attempt = 0
        while True:
            if self.fence is not None and method in MUTATING:
                self.fence(f"{method} {what or path}")  # last thing before the request goes out
            with self._lock:
                self.requests[verb] += 1
            sent = time.monotonic()
            try:
                resp = self.api.rest_client.request(method, url, headers=headers, body=body,
                                                   _request_timeout=timeout or self.deadlines.request)
                data = resp.read()
                status = resp.status
            except Exception as exc:  # noqa: BLE001 - only transport errors are handled; anything else is raised
                cause = transport_error(exc)
                if cause is None:
                    raise
                if not cause.retriable or attempt >= self.max_retries:
                    # a timeout is never sent again at once: the server had its whole deadline
                    self.reachability.failed(f"{method} {what or path}: {cause.message}")
                    raise Unreachable(cause.message, what or path, method) from None
                delay = min(self.max_delay, 0.2 * 2 ** attempt + random.uniform(0, 0.1))
                log.info("%s %s: %s, retrying in %.1f s", method, what or path, cause.message, delay)
                time.sleep(delay)
                attempt += 1
                continue
            self.reachability.answered(sent)
            if 200 <= status < 300:
                return json.loads(data) if data else {}
            try:
                detail = json.loads(data)
            except ValueError:
                detail = {"message": (data or b"").decode(errors="replace")[:500]}
            permanent = status == 500 and str(detail.get("message", "")).startswith("failed to create typed patch")
            if status in RETRIABLE and not permanent and attempt < self.max_retries:
                retry_after = resp.getheader("Retry-After")
                delay = float(retry_after) if retry_after and retry_after.isdigit() else min(
                    self.max_delay, 0.2 * 2 ** attempt + random.uniform(0, 0.1))
                delay = min(delay, self.max_delay)
                log.info("%s %s: %s, retrying in %.1f s", method, what or path, status, delay)
                time.sleep(delay)
                attempt += 1
                continue
            raise ApiError(status, detail.get("reason", ""), detail.get("message", ""), what or path, method)

    # ---- verbs ------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        k = self.require(api_version, kind)
        try:
            return self.request("GET", k.path(namespace, name), what=f"{kind}/{name}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, label_selector: str | None = None,
             namespace: str | None = None, field_selector: str | None = None) -> list[dict[str, Any]]:
        return self.list_rv(api_version, kind, label_selector, namespace, field_selector)[0]

    def list_rv(self, api_version: str, kind: str, label_selector: str | None = None,
                namespace: str | None = None, field_selector: str | None = None,
                each: Callable[[dict[str, Any]], dict[str, Any]] | None = None, page_size: int = 500,
                ) -> tuple[list[dict[str, Any]], str]:
        """Every object (paginated) and the list's resourceVersion, from which a watch starts. A kind the
        cluster does not serve (or no longer serves: 404) lists as empty. ``each`` maps every object as its
        page arrives (an informer's strip), so a long listing never holds more than one page unstripped."""
        k = self.kind(api_version, kind)
        if k is None:
            return [], ""
        items: list[dict[str, Any]] = []
        cont = None
        while True:
            try:
                doc = self.request(
                    "GET", k.path(namespace),
                    query={"labelSelector": label_selector, "fieldSelector": field_selector, "limit": page_size,
                           "continue": cont},
                    what=f"list {kind}",
                )
            except ApiError as err:
                if err.status == 404 and not items:
                    self.forget_api(api_version)
                    return [], ""
                raise
            for item in doc.get("items", []):
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(each(item) if each is not None else item)
            meta = doc.get("metadata", {})
            del doc  # the page, unstripped, is not held while the next one is read
            cont = meta.get("continue")
            if not cont:
                return items, meta.get("resourceVersion", "")

    def watch(self, api_version: str, kind: str, resource_version: str, label_selector: str | None = None,
              namespace: str | None = None, field_selector: str | None = None, timeout: int = 300,
              stop: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """The watch events ({"type", "object"}) from ``resource_version``, bookmarks on, until the server ends
        the watch (``timeout``). An expired version arrives as an ERROR event with code 410. No byte for
        ``timeout`` + the read deadline (the server ends a quiet watch at ``timeout``), or any other transport
        error, raises ``Unreachable``."""
        k = self.require(api_version, kind)
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "labelSelector": label_selector, "fieldSelector": field_selector, "timeoutSeconds": timeout}
        url = self.api.configuration.host + k.path(namespace) + "?" + urlencode(
            {q: v for q, v in query.items() if v is not None})
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        self.api.update_params_for_auth(headers, None, ["BearerToken"], None, "GET", None)
        with self._lock:
            self.requests["WATCH"] += 1
        # the client does not read the body before returning: the urllib3 response streams the events
        sent = time.monotonic()
        try:
            resp = self.api.rest_client.request("GET", url, headers=headers,
                                                _request_timeout=(self.deadlines.connect,
                                                                  timeout + self.deadlines.read))
        except Exception as exc:  # noqa: BLE001 - only transport errors are handled; anything else is raised
            raise self._unanswered(exc, kind) from None
        self.reachability.answered(sent)
        raw = resp.response
        finished = False
        try:
            if resp.status != 200:
                data = resp.read()
                try:
                    detail = json.loads(data)
                except ValueError:
                    detail = {"message": data.decode(errors="replace")[:500]}
                if resp.status == 404:
                    self.forget_api(api_version)
                raise ApiError(resp.status, detail.get("reason", ""), detail.get("message", ""), f"watch {kind}",
                               "GET")
            buf = b""
            chunks = raw.stream(65536, decode_content=True)
            while True:
                try:
                    chunk = next(chunks, None)
                except Exception as exc:  # noqa: BLE001 - only transport errors are handled
                    raise self._unanswered(exc, kind) from None
                if chunk is None:
                    break
                if stop is not None and stop.is_set():
                    return
                self.reachability.answered(sent)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            finished = True
        finally:
            if finished:
                raw.release_conn()
            else:  # left early: the connection is mid-stream, never give it back to the pool
                raw.close()

    def _unanswered(self, exc: Exception, kind: str) -> Exception:
        """A watch's transport error as ``Unreachable``; anything else unchanged. Only a timeout or a TLS failure
        marks the cluster down: a connection reset is the informer's to retry (its relist says whether the
        server answers)."""
        cause = transport_error(exc)
        if cause is None:
            return exc
        if not cause.retriable:
            self.reachability.failed(f"watch {kind}: {cause.message}")
        return Unreachable(cause.message, f"watch {kind}", "GET")

    def apply(self, obj: dict[str, Any], field_manager: str, force: bool = True, dry_run: bool = False
              ) -> dict[str, Any]:
        """Server-side apply; ``dry_run``: what it would give, nothing persisted (converge.py reads its
        managedFields)."""
        k = self.require(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        if not dry_run:
            self._writing(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        return self.request(
            "PATCH", k.path(meta.get("namespace"), meta["name"]), body=obj,
            query={"fieldManager": field_manager, "force": "true" if force else None,
                   "dryRun": "All" if dry_run else None},
            content_type="application/apply-patch+yaml", what=ref(obj),
        )

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: dict[str, Any],
                    sub: str | None = None) -> dict[str, Any]:
        k = self.require(api_version, kind)
        self._writing(api_version, kind, namespace)
        return self.request("PATCH", k.path(namespace, name, sub), body=body,
                            content_type="application/merge-patch+json", what=f"{kind}/{name}")

    def json_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        k = self.require(api_version, kind)
        self._writing(api_version, kind, namespace)
        return self.request("PATCH", k.path(namespace, name), body=ops, content_type="application/json-patch+json",
                            what=f"{kind}/{namespace + '/' if namespace else ''}{name}")

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        k = self.require(obj["apiVersion"], obj["kind"])
        self._writing(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"))
        return self.request("POST", k.path(obj["metadata"].get("namespace")), body=obj, what=ref(obj))

    def _writing(self, api_version: str, kind: str, namespace: str | None) -> None:
        if self.on_write is not None:
            self.on_write(api_version, kind, namespace)

    def delete(self, obj: dict[str, Any], propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        k = self.kind(obj["apiVersion"], obj["kind"])
        if k is None:
            return False
        meta = obj["metadata"]
        try:
            self.request("DELETE", k.path(meta.get("namespace"), meta["name"]),
                         body={"propagationPolicy": propagation}, what=ref(obj))
            return True
        except ApiError as err:
            if err.status == 404:
                return False
            raise
