"""The trainer's pure parts, in the operator's venv (no torch): JSONL parsing, the held-out split, the result
contract (shape and the 4096-byte termination message limit), argument checks, S3 URIs, and that the operator
never imports torch, transformers or peft (they are the `trainer` extra, not operator dependencies)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sovereign_suite.finetune import dataset, result, storage, trainer

ROOT = Path(__file__).resolve().parents[1]


def test_jsonl_text_and_prompt_completion_records():
    data = b'{"text": "a b c"}\n\n  \n{"prompt": "q: x? ", "completion": "a: y", "id": 3}\n'
    assert dataset.parse_jsonl(data) == ["a b c", "q: x? a: y"]


@pytest.mark.parametrize("data, reason", [
    (b'{"text": "ok"}\n{"text": "cut\n', "dataset line 2: not valid JSON (Unterminated string"),
    (b'{"text": "ok"}\n[1, 2]\n', "dataset line 2: a JSON object is expected, not list"),
    (b'{"text": ""}\n', "dataset line 1: 'text' must be a non-empty string"),
    (b'{"text": 3}\n', "dataset line 1: 'text' must be a non-empty string"),
    (b'\n{"prompt": "only"}\n', "dataset line 2: needs a string field 'text', or 'prompt' and 'completion'"),
    (b"\n\n", "the dataset has no record"),
    (b'{"text": "\xff"}', "the dataset is not UTF-8 (byte 10)"),
])
def test_jsonl_refusals_name_the_line(data, reason):
    with pytest.raises(dataset.DatasetError) as err:
        dataset.parse_jsonl(data)
    assert str(err.value).startswith(reason)


def test_split_is_deterministic_disjoint_and_complete():
    records = [f"r{i}" for i in range(50)]
    a = dataset.split(records, 0.2, seed=7)
    assert a == dataset.split(records, 0.2, seed=7)
    assert len(a.eval) == 10 and len(a.train) == 40
    assert sorted(a.train + a.eval) == sorted(records)
    assert dataset.split(records, 0.2, seed=8).eval != a.eval  # the seed chooses the held-out records
    assert a.train == [r for r in records if r in a.train]  # file order kept on each side


@pytest.mark.parametrize("n, fraction, evals", [(2, 0.01, 1), (2, 0.99, 1), (10, 0.5, 5), (3, 0.1, 1)])
def test_split_keeps_one_record_on_each_side(n, fraction, evals):
    s = dataset.split([f"r{i}" for i in range(n)], fraction, seed=0)
    assert len(s.eval) == evals and len(s.train) == n - evals


@pytest.mark.parametrize("records, fraction, reason", [
    (["a"], 0.1, "the dataset has 1 record; at least 2"),
    (["a", "b"], 0, "evalFraction must be between 0 and 1"),
    (["a", "b"], 1, "evalFraction must be between 0 and 1"),
])
def test_split_refusals(records, fraction, reason):
    with pytest.raises(dataset.DatasetError, match=reason):
        dataset.split(records, fraction, seed=0)


def test_result_shape_is_the_operator_contract():
    r = result.Result(phase="Succeeded", reason="ok", step=3, totalSteps=3, loss=1.25, baseEvalLoss=2.0,
                      evalLoss=1.5, tokensPerSecond=100.0, durationSeconds=4.5, adapterUri="s3://b/a/")
    obj = json.loads(r.to_json())
    assert obj == {"phase": "Succeeded", "reason": "ok", "step": 3, "totalSteps": 3, "loss": 1.25,
                   "baseEvalLoss": 2.0, "evalLoss": 1.5, "tokensPerSecond": 100.0, "durationSeconds": 4.5,
                   "adapterUri": "s3://b/a/"}
    assert result.parse(r.to_json()) == r


@pytest.mark.parametrize("reason", ["x" * 100_000, "é" * 100_000, "\u2603\n" * 5000])
def test_result_fits_the_termination_message_whatever_the_reason(reason):
    text = result.Result(reason=reason, adapterUri="s3://b/" + "k" * 5000).to_json()
    assert len(text.encode()) < result.TERMINATION_MESSAGE_LIMIT
    parsed = result.parse(text)
    assert parsed.phase == "Failed" and parsed.reason.endswith("...") and parsed.reason[:10] == reason[:10]


def test_result_non_finite_loss_and_bad_phase():
    assert json.loads(result.Result(loss=float("nan"), evalLoss=float("inf")).to_json())["loss"] == -1.0
    with pytest.raises(ValueError):
        result.Result(phase="Running").to_json()
    with pytest.raises(ValueError):
        result.parse('{"phase": "Done"}')


def _args(*extra: str):
    return trainer.parser().parse_args(["--base-model", "s3://b/m/", "--dataset", "s3://b/d.jsonl", "--output",
                                        "s3://b/o/", "--s3-endpoint", "http://127.0.0.1:1", *extra])


def test_argument_checks_name_the_flag():
    assert trainer.check_arguments(_args()) == []
    problems = trainer.check_arguments(_args("--steps", "0", "--dropout", "1", "--learning-rate", "0",
                                             "--target-modules", ",", "--rank", "600"))
    assert problems == ["--steps must be at least 1, not 0", "--dropout must be in [0, 1), not 1.0",
                        "--learning-rate must be positive, not 0.0", "--target-modules names no module",
                        "the adapter would not be served by vLLM: r=600 is outside 1..512"]


def test_s3_uris():
    u = storage.parse_uri("s3://fr-albert/adapters/x", "--output")
    assert (u.bucket, u.key, str(u.child("result.json"))) == ("fr-albert", "adapters/x",
                                                             "s3://fr-albert/adapters/x/result.json")
    assert str(storage.parse_uri("s3://b/p/", "x").child("a")) == "s3://b/p/a"
    for bad in ("https://b/k", "s3:///k", "s3://b/../k", "/data/x.jsonl"):
        with pytest.raises(storage.StorageError):
            storage.parse_uri(bad, "--dataset")


def test_credentials_from_files_then_environment(tmp_path, monkeypatch):
    (tmp_path / "AWS_ACCESS_KEY_ID").write_text("AK\n")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("SK\n")
    assert storage.credentials(str(tmp_path)) == storage.Credentials("AK", "SK")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(storage.StorageError, match="no storage credentials"):
        storage.credentials(None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "EA")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ES")
    assert storage.credentials(None) == storage.Credentials("EA", "ES")


def test_importing_the_operator_never_imports_torch():
    """Every module of the operator, the trainer's entry point included, imported in a fresh interpreter of the
    operator's venv: none of torch, transformers, peft, tokenizers, safetensors ends up loaded (lora_train, the
    torch half of the trainer, is the one module meant to import them)."""
    probe = r"""
import importlib, pkgutil, sys
import sovereign_suite
failed = []
for m in pkgutil.walk_packages(sovereign_suite.__path__, "sovereign_suite."):
    if m.name == "sovereign_suite.finetune.lora_train":
        continue
    try:
        importlib.import_module(m.name)
    except ImportError as err:
        failed.append(f"{m.name}: {err}")
heavy = sorted(n for n in ("torch", "transformers", "peft", "tokenizers", "safetensors") if n in sys.modules)
print(failed, heavy)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={"PYTHONPATH": str(ROOT / "operator"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[] []"


def test_trainer_extra_is_not_a_runtime_dependency():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = {"torch", "transformers", "peft", "tokenizers", "safetensors"}
    assert not {d.split("=")[0].split("[")[0] for d in project["dependencies"]} & heavy
    assert {d.split("==")[0] for d in project["optional-dependencies"]["trainer"]} == heavy
