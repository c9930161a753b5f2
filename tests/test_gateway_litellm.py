"""The gateway's per-key access to adapters in a real LiteLLM 1.77.7: the rendered ConfigMap, the two init steps
and ``litellm --config`` run in the real node's LiteLLM stand-in image (devcluster/realnode/standins.py: Debian's
python3 and ``litellm[proxy]==1.77.7`` from PyPI, the pinned release), entered with chroot (no container engine).

vLLM's side is a small HTTP server that answers chat completions and records the model name and key it is sent
(vLLM itself needs a GPU). What this proves: LiteLLM loads the custom_auth module the operator renders, its public
readiness route passes without a key, each key reaches its models only (401 unknown key, 403 another model, in the
body or the path), and the gateway sends the adapter's name and vLLM's key to the base model's server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from sovereign_suite.devcluster.realnode.build import build
from sovereign_suite.devcluster.realnode.standins import LITELLM
from . import golden_refresh
from .processes import free_port as _free_port

pytestmark = pytest.mark.slow
KEYS = {"LITELLM_MASTER_KEY": "masterKey0123", "VLLM_API_KEY": "vllmKey0123",
        "consumers/impots-courriers.dgfip": "dgfipKey0123", "consumers/sante-resume.dgs": "dgsKey0123",
        "consumers/sante-resume.ars-idf": "arsKey0123"}


class Backend(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((body["model"], self.headers.get("Authorization", "")))
        out = json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": body["model"],
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "ok"}}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    if os.getuid() != 0:
        pytest.fail("chroot needs root (as the real node's tests do)")
    root = tmp_path_factory.mktemp("litellm") / "rootfs"
    root.mkdir()
    with tarfile.open(build(LITELLM)) as oci:  # cached by key; built from Debian and PyPI when missing
        index = json.load(oci.extractfile("index.json"))
        manifest = json.load(oci.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=oci.extractfile("blobs/sha256/" + layer["digest"].split(":")[1])) as t:
                t.extractall(root, filter="tar")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    docs = [d for d in yaml.safe_load_all(golden_refresh.golden_path("llm-adapters").read_text()) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "llm-gateway")["data"]
    pod = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "llm-gateway")
    pod = pod["spec"]["template"]["spec"]
    for d in ("etc/litellm", "run/litellm", "run/secrets/llm-gateway/consumers"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name, text in cm.items():  # the vLLM Service's address is the stand-in backend's here
        (root / "etc/litellm" / name).write_text(
            text.replace("http://vllm-small:8000/v1", f"http://127.0.0.1:{backend.server_address[1]}/v1"))
    for name, value in KEYS.items():
        (root / "run/secrets/llm-gateway" / name).write_text(value)
    for init in pod["initContainers"]:
        subprocess.run(["chroot", str(root), *init["command"]], check=True, capture_output=True)
    port = _free_port()
    c = pod["containers"][0]
    args = [a if a != "4000" else str(port) for a in c["args"]]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **{e["name"]: e["value"] for e in c["env"]}}
    log = open(root.parent / "litellm.log", "w")
    proc = subprocess.Popen([shutil.which("chroot") or "/usr/sbin/chroot", str(root), "litellm", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            urllib.request.urlopen(url + "/health/readiness", timeout=5).read()  # no key: a public route
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("LiteLLM did not start: " + (root.parent / "litellm.log").read_text()[-3000:])
            time.sleep(1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        backend.shutdown()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def call(url: str, key: str, model: str, path: str = "/v1/chat/completions") -> int:
    req = urllib.request.Request(url + path, method="POST", headers={"Authorization": f"Bearer {key}",
                                                                      "Content-Type": "application/json"},
                                 data=json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
                                 .encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_each_key_calls_its_models_only(gateway):
    allowed = {"sk-masterKey0123": {"albert-small"}, "sk-dgfipKey0123": {"impots-courriers"},
               "sk-dgsKey0123": {"sante-resume"}, "sk-arsKey0123": {"sante-resume"}}
    for key, models in allowed.items():
        for model in ("albert-small", "impots-courriers", "sante-resume"):
            assert call(gateway, key, model) == (200 if model in models else 403), (key, model)
    for key in ("sk-vllmKey0123", "sk-nothing", "dgsKey0123"):  # vLLM's key, an unknown key, no sk- prefix
        assert call(gateway, key, "sante-resume") == 401
    # the model in the path wins over the body's in LiteLLM: it is checked too
    assert call(gateway, "sk-dgsKey0123", "sante-resume", "/openai/deployments/impots-courriers/chat/completions") \
        == 403
    # what vLLM receives: the adapter's name (its lora_name) and vLLM's own key
    assert ("sante-resume", "Bearer vllmKey0123") in Backend.seen
    assert {m for m, _ in Backend.seen} == {"albert-small", "impots-courriers", "sante-resume"}
