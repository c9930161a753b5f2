"""The LoRA adapter loader for real against moto's S3 server (hack/install-backup-tools.sh installs it).

The HTTP server below stands in for vLLM's runtime LoRA API only as a recorder: it records each call and answers as
vLLM v0.33.0 does (vllm/entrypoints/openai/models/serving.py: /v1/models lists each loaded adapter with root = its
path and parent = the base model; a second load of a name without load_inplace is a 400; an unknown unload a 404;
every /v1 call needs the Bearer key). The S3 side, the files written and the program are the real ones.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sovereign_suite.adapterloader import program
from sovereign_suite.backup.s3 import Client
from .test_backup_program import ACCESS, SECRET, s3_server  # noqa: F401 (the moto fixture)

pytestmark = pytest.mark.slow
KEY = "vllmKeyForTheLoaderTest0123"
BASE = "albert-small"


class Recorder(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, dict]] = []
    loaded: dict[str, str] = {}

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._answer(401, {"error": "Unauthorized"})
            return False
        return True

    def do_GET(self):
        if not self._authorized():
            return
        cards = [{"id": BASE, "root": "mistralai/x", "parent": None}]
        cards += [{"id": n, "root": p, "parent": BASE} for n, p in sorted(self.loaded.items())]
        self._answer(200, {"object": "list", "data": cards})

    def do_POST(self):
        if not self._authorized():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((self.path, body.get("lora_name"), body))
        if self.path == "/v1/load_lora_adapter":
            if body["lora_name"] in self.loaded and not body.get("load_inplace"):
                return self._answer(400, {"error": "already loaded"})
            if not os.path.exists(os.path.join(body["lora_path"], "adapter_config.json")):
                return self._answer(404, {"error": "not found"})
            self.loaded[body["lora_name"]] = body["lora_path"]
        elif self.path == "/v1/unload_lora_adapter":
            if self.loaded.pop(body["lora_name"], None) is None:
                return self._answer(404, {"error": "not found"})
        self._answer(200, "Success")


@pytest.fixture
def vllm():
    Recorder.calls, Recorder.loaded = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def put_adapter(s3: Client, prefix: str, rank: int) -> None:
    s3.put_bytes(f"{prefix}adapter_config.json", json.dumps({"r": rank, "lora_alpha": 16,
                                                            "target_modules": ["q_proj", "v_proj"]}).encode())
    s3.put_bytes(f"{prefix}adapter_model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)))


def write_config(tmp: Path, endpoint: str, vllm_url: str, adapters: list[dict]) -> Path:
    creds = tmp / "s3"
    creds.mkdir(exist_ok=True)
    (creds / "AWS_ACCESS_KEY_ID").write_text(ACCESS)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(SECRET + "\n")
    (tmp / "VLLM_API_KEY").write_text(KEY)
    config = {"adapterDir": str(tmp / "adapters"), "intervalSeconds": 1,
              "s3": {"endpoint": endpoint, "bucket": "fr-backups", "region": "eu-west-3", "credentialsDir": str(creds)},
              "vllm": {"url": vllm_url, "keyFile": str(tmp / "VLLM_API_KEY")},
              "adapters": [{**a, "version": __import__("hashlib").sha256(a["uri"].encode()).hexdigest()[:16]}
                           for a in adapters]}
    (tmp / "adapters").mkdir(exist_ok=True)
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_loader_syncs_adapters_from_s3_into_vllm(s3_server, vllm, tmp_path):  # noqa: F811
    s3 = s3_server
    put_adapter(s3, "adapters/impots/", 16)
    put_adapter(s3, "adapters/sante/v1/", 32)
    impots = {"name": "impots", "uri": "s3://fr-backups/adapters/impots/", "rank": 16}
    sante = {"name": "sante", "uri": "s3://fr-backups/adapters/sante/v1", "rank": 32}
    cfg = write_config(tmp_path, s3.endpoint, vllm, [impots, sante])

    assert program.run(str(cfg), once=True) == 0
    assert [(p, n) for p, n, _ in Recorder.calls] == [("/v1/load_lora_adapter", "impots"),
                                                     ("/v1/load_lora_adapter", "sante")]
    path = Recorder.loaded["sante"]
    assert path.startswith(str(tmp_path / "adapters" / "sante") + "/")
    assert json.loads(Path(path, "adapter_config.json").read_text())["r"] == 32  # the bytes in S3, on disk
    assert Path(path, "adapter_model.safetensors").read_bytes().endswith(bytes(range(256)))
    assert not list((tmp_path / "adapters" / "sante").glob("*.partial"))

    # a second pass changes nothing
    Recorder.calls.clear()
    assert program.run(str(cfg), once=True) == 0
    assert Recorder.calls == []

    # vLLM restarted (it forgets runtime adapters): loaded again, from the disk copy
    Recorder.loaded.clear()
    assert program.run(str(cfg), once=True) == 0
    assert sorted(n for _, n, _ in Recorder.calls) == ["impots", "sante"]

    # a new version of sante (new URI) is loaded in place from a new folder, the old folder goes;
    # impots is no longer listed: unloaded and deleted
    put_adapter(s3, "adapters/sante/v2/", 32)
    Recorder.calls.clear()
    cfg = write_config(tmp_path, s3.endpoint, vllm, [{**sante, "uri": "s3://fr-backups/adapters/sante/v2/"}])
    assert program.run(str(cfg), once=True) == 0
    assert [(p, n, b.get("load_inplace")) for p, n, b in Recorder.calls] == [
        ("/v1/load_lora_adapter", "sante", True), ("/v1/unload_lora_adapter", "impots", None)]
    assert Recorder.loaded["sante"] != path and not Path(path).exists()
    assert sorted(os.listdir(tmp_path / "adapters")) == ["sante"]
    assert len(os.listdir(tmp_path / "adapters" / "sante")) == 1


def test_loader_reports_a_missing_adapter_and_loads_the_others(s3_server, vllm, tmp_path):  # noqa: F811
    put_adapter(s3_server, "adapters/ok/", 8)
    cfg = write_config(tmp_path, s3_server.endpoint, vllm, [
        {"name": "missing", "uri": "s3://fr-backups/adapters/nothing-here/", "rank": 8},
        {"name": "ok", "uri": "s3://fr-backups/adapters/ok/", "rank": 8},
        {"name": "elsewhere", "uri": "s3://another-bucket/adapters/ok/", "rank": 8}])
    assert program.run(str(cfg), once=True) == 1  # a failed pass
    assert list(Recorder.loaded) == ["ok"]
    assert not (tmp_path / "adapters" / "missing").exists() or not any((tmp_path / "adapters" / "missing").iterdir())


def test_loader_waits_for_vllm(s3_server, tmp_path):  # noqa: F811
    cfg = write_config(tmp_path, s3_server.endpoint, "http://127.0.0.1:9", [])  # nothing listens: vLLM starting
    assert program.run(str(cfg), once=True) == 1


def test_a_key_outside_the_prefix_is_never_written_outside_the_folder(s3_server, tmp_path):  # noqa: F811
    put_adapter(s3_server, "adapters/evil/", 8)
    s3_server.put_bytes("adapters/evil/../../escape.txt", b"x")
    keys = [k for k, _ in s3_server.list("adapters/evil/")]
    assert "adapters/evil/../../escape.txt" in keys  # S3 keys are opaque strings: the server keeps it as written
    with pytest.raises(ValueError, match="outside"):
        program.download(s3_server, "s3://fr-backups/adapters/evil/", str(tmp_path / "dl"))
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "dl").exists()
    assert not (tmp_path / "dl.partial").exists()
