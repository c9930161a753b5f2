"""Keeps a running vLLM's LoRA adapters equal to the desired list: downloads each from the country's object storage
into the shared emptyDir, loads it through vLLM's runtime API, unloads and deletes what is no longer listed.

Usage: python3 -m sovereign_suite.adapterloader.program CONFIG_JSON [--once]

CONFIG_JSON (ConfigMap ``vllm-<model>-adapters``, components/llm/adapters.py) is read again on every pass: the
kubelet updates a mounted ConfigMap in place, so a new adapter is served without restarting the base model.

vLLM v0.33.0 (vllm/entrypoints/serve/lora/api_router.py, protocol.py; openai/models/serving.py), with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: ``POST /v1/load_lora_adapter {lora_name, lora_path, load_inplace}``,
``POST /v1/unload_lora_adapter {lora_name}``; ``GET /v1/models`` lists each loaded adapter with ``root`` = its path
and ``parent`` = the base model (the base model's own card has no parent). A name already loaded is refused unless
``load_inplace``. All three are under /v1: they take vLLM's API key (read from a file, never the environment).

Each adapter version lives in ``<adapterDir>/<name>/<version>/`` (version: a hash of its URI), written to a
temporary folder first and renamed when complete: vLLM never sees half an adapter. After vLLM restarts (it forgets
its runtime adapters), the next pass finds them missing from /v1/models and loads them again from the disk copy.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from ..backup.s3 import Client, Credentials, S3Error

TIMEOUT = 120  # a load reads the adapter's weights from disk


def log(message: str) -> None:
    print(f"adapter-loader: {message}", file=sys.stderr, flush=True)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def s3_client(s3: dict[str, Any]) -> Client:
    creds = Credentials(_read(os.path.join(s3["credentialsDir"], "AWS_ACCESS_KEY_ID")),
                        _read(os.path.join(s3["credentialsDir"], "AWS_SECRET_ACCESS_KEY")))
    return Client(s3["endpoint"].rstrip("/"), s3["bucket"], s3.get("region") or "us-east-1", creds)


@dataclass
class VLLM:
    """vLLM's runtime LoRA API."""

    url: str
    key: str

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.read()

    def loaded(self) -> dict[str, str]:
        """Adapter name -> the path vLLM loaded it from."""
        cards = json.loads(self._call("GET", "/v1/models")).get("data", [])
        return {c["id"]: c.get("root") or "" for c in cards if c.get("parent")}

    def load(self, name: str, path: str, inplace: bool) -> None:
        self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path, "load_inplace": inplace})

    def unload(self, name: str) -> None:
        self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name})


def parse_uri(uri: str, bucket: str) -> str:
    """The key prefix of ``s3://<bucket>/<prefix>`` (ending in /); another bucket is refused."""
    head = f"s3://{bucket}/"
    if not uri.startswith(head) or len(uri) == len(head):
        raise ValueError(f"{uri!r} is not under {head}")
    return uri[len(head):].rstrip("/") + "/"


def download(s3: Client, uri: str, target: str) -> int:
    """Every object under the URI's prefix into ``target`` (created complete or not at all); returns the bytes."""
    prefix = parse_uri(uri, s3.bucket)
    tmp = target + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        total = _fetch_all(s3, prefix, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays
        raise
    if not os.path.exists(os.path.join(tmp, "adapter_config.json")):
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{uri}: no adapter_config.json (a PEFT checkpoint has one)")
    os.replace(tmp, target)
    return total


def _fetch_all(s3: Client, prefix: str, tmp: str) -> int:
    total = 0
    for key, _ in s3.list(prefix):
        rel = key[len(prefix):]
        norm = posixpath.normpath(rel)
        if not rel or rel.endswith("/"):
            continue
        if norm.startswith("../") or norm == ".." or posixpath.isabs(norm):
            raise ValueError(f"object {key!r} would be written outside the adapter's folder")
        path = os.path.join(tmp, *norm.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = s3.get(key)  # whole objects in memory (backup/s3.py has no streaming read): see LOADER_RESOURCES
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
    return total


def sync(config: dict[str, Any], s3: Client, vllm: VLLM) -> dict[str, str]:
    """One pass. Returns adapter name -> what happened to it (loaded, kept, unloaded, or the error)."""
    root = config["adapterDir"]
    desired = {a["name"]: a for a in config["adapters"]}
    loaded = vllm.loaded()
    report: dict[str, str] = {}
    for name, adapter in sorted(desired.items()):
        path = os.path.join(root, name, adapter["version"])
        if loaded.get(name) == path:
            report[name] = "kept"
            continue
        try:
            if not os.path.isdir(path):
                size = download(s3, adapter["uri"], path)
                log(f"{name}: downloaded {adapter['uri']} ({size} bytes)")
            vllm.load(name, path, inplace=name in loaded)
            report[name] = "loaded"
            log(f"{name}: loaded from {path}")
        except (OSError, ValueError, S3Error) as err:
            report[name] = f"error: {err}"
            log(f"{name}: not loaded: {err}")
            continue
        for old in os.listdir(os.path.join(root, name)):  # the versions it no longer uses
            if old != adapter["version"]:
                shutil.rmtree(os.path.join(root, name, old), ignore_errors=True)
    for name in sorted(set(loaded) - set(desired)):
        try:
            vllm.unload(name)
            report[name] = "unloaded"
            log(f"{name}: unloaded")
        except OSError as err:
            report[name] = f"error: {err}"
            log(f"{name}: not unloaded: {err}")
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    for name in os.listdir(root) if os.path.isdir(root) else []:  # left by a run that was stopped
        if name not in desired and name not in loaded:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return report


def run(config_path: str, once: bool = False, sleep: Callable[[float], None] = time.sleep) -> int:
    while True:
        config = json.loads(_read(config_path))
        try:
            vllm = VLLM(config["vllm"]["url"], _read(config["vllm"]["keyFile"]))
            report = sync(config, s3_client(config["s3"]), vllm)
            failed = [n for n, r in report.items() if r.startswith("error")]
        except (OSError, ValueError, S3Error) as err:  # vLLM still starting, storage unreachable
            log(f"pass failed: {err}")
            failed = ["*"]
        if once:
            return 1 if failed else 0
        sleep(config.get("intervalSeconds", 30))


def main(argv: list[str]) -> int:
    return run(argv[0], once="--once" in argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
