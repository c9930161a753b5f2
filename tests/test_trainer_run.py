"""The LoRA trainer for real (issue 25): the exact program the training Job runs, as a process, with torch,
transformers and peft from its own venv (hack/install-trainer-venv.sh, a prerequisite of `make test`), against
moto's S3 server (hack/install-backup-tools.sh) standing in for the country's object storage.

A tiny Llama (hidden size 64, built from a config with a tokenizer trained locally by `tokenizers`:
finetune/tiny_model.py) and a JSONL dataset go up to the bucket; the trainer reads both from there, trains, and the
test reads back what it wrote: the result (termination-message file and result.json), the metrics it served, and
the adapter, which peft loads onto the base model to generate, and which vLLM's rules (api/lora_rules.py) accept.
Failures (a missing dataset, a malformed JSONL line, a rank vLLM cannot serve) end in phase Failed with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from sovereign_suite.api.lora_rules import adapter_config_problems
from sovereign_suite.backup.s3 import Client

from .s3_server import free_port as _free_port, moto_bucket

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ACCESS, SECRET = "AKIDFINETUNETEST", "finetune-test-secret-key"
BUCKET, REGION = "fr-albert", "eu-west-3"
TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
STEPS = 40
# A dataset the model can learn: a few facts in one template, repeated; the held-out records share the pattern.
CAPITALS = [("france", "paris"), ("germany", "berlin"), ("italy", "rome"), ("spain", "madrid"),
            ("sweden", "stockholm"), ("luxembourg", "luxembourg"), ("austria", "vienna"), ("portugal", "lisbon")]
TEXTS = [f"q: capital of {c}? a: the capital of {c} is {k}." for c, k in CAPITALS] * 8



def _installed(script: str, what: str) -> str:
    found = subprocess.run([str(ROOT / "hack" / script), "--print"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail(f"{what} is missing: run hack/{script}")
    return found.stdout.strip()


@pytest.fixture(scope="module")
def trainer_python() -> str:
    return _installed("install-trainer-venv.sh", "the trainer's venv")


def _env() -> dict[str, str]:
    # the trainer venv has torch, not the operator's dependencies: the package comes from this checkout
    return {**os.environ, "PYTHONPATH": str(ROOT / "operator"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def s3():
    with moto_bucket(BUCKET, REGION, ACCESS, SECRET) as client:
        yield client


@pytest.fixture(scope="module")
def uploaded(s3, trainer_python, tmp_path_factory):
    """The tiny base model and the dataset, in the bucket; the model's local copy for the loading check."""
    work = tmp_path_factory.mktemp("finetune")
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    model_dir = work / "tiny-llama"
    subprocess.run([trainer_python, "-m", "sovereign_suite.finetune.tiny_model", str(model_dir), str(corpus)],
                   env=_env(), check=True, capture_output=True, text=True, timeout=300)
    for f in sorted(model_dir.iterdir()):
        s3.put_file(f"models/tiny-llama/{f.name}", str(f))
    s3.put_bytes("datasets/capitals.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in TEXTS).encode())
    s3.put_bytes("datasets/broken.jsonl", b'{"text": "fine"}\n\n{"text": "cut here\n{"text": "fine"}\n')
    creds = work / "credentials"  # as the Job mounts the country's storage Secret
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text(ACCESS)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(SECRET)
    return {"work": work, "model_dir": model_dir, "creds": creds}


def _args(s3: Client, uploaded, result_file: Path, output: str, **over) -> list[str]:
    flags = {"base-model": f"s3://{BUCKET}/models/tiny-llama/", "dataset": f"s3://{BUCKET}/datasets/capitals.jsonl",
             "output": output, "s3-endpoint": s3.endpoint, "s3-region": REGION,
             "credentials-dir": str(uploaded["creds"]), "rank": "8", "alpha": "16", "dropout": "0.0",
             "target-modules": TARGETS, "learning-rate": "0.01", "batch-size": "8", "seq-len": "64",
             "steps": str(STEPS), "eval-fraction": "0.2", "seed": "0", "threads": "1", "metrics-port": "0",
             "result-file": str(result_file)}
    flags.update({k.replace("_", "-"): str(v) for k, v in over.items()})
    return [a for k, v in flags.items() for a in (f"--{k}", v)]


def _run(trainer_python: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([trainer_python, "-m", "sovereign_suite.finetune.trainer", *args], env=_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(s3, uploaded, trainer_python):
    """One successful run; its metrics scraped after the result is written, while it lingers."""
    result_file = uploaded["work"] / "termination-log"
    port = _free_port()
    args = _args(s3, uploaded, result_file, f"s3://{BUCKET}/adapters/capitals/", metrics_port=port,
                 metrics_linger_seconds=30)
    started = time.monotonic()
    proc = subprocess.Popen([trainer_python, "-m", "sovereign_suite.finetune.trainer", *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (result_file.exists() and result_file.read_text()):
            assert proc.poll() is None, f"the trainer exited before writing its result: {proc.communicate()}"
            assert time.monotonic() - started < 240, "no result after 240 s"
            time.sleep(0.2)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        proc.terminate()  # ends the linger; the result is already written
        out, err = proc.communicate(timeout=30)
    return {"result": json.loads(result_file.read_text()), "metrics": metrics, "stderr": err}


def test_training_succeeds_and_beats_the_base_model(trained):
    r = trained["result"]
    assert r["phase"] == "Succeeded", (r, trained["stderr"][-3000:])
    assert set(r) == {"phase", "reason", "step", "totalSteps", "loss", "baseEvalLoss", "evalLoss",
                      "tokensPerSecond", "durationSeconds", "adapterUri"}
    assert r["step"] == r["totalSteps"] == STEPS
    # a random model predicts about uniformly (ln of the vocabulary, 384 tokens: 5.95); the adapter learned the pattern
    assert 5.5 < r["baseEvalLoss"] < 6.5, r
    assert r["evalLoss"] < r["baseEvalLoss"] - 0.5, r
    assert 0 < r["loss"] < r["baseEvalLoss"], r
    assert r["tokensPerSecond"] > 0 and r["durationSeconds"] > 0
    assert r["adapterUri"] == f"s3://{BUCKET}/adapters/capitals/"


def test_result_json_in_the_bucket_is_the_termination_message(s3, trained):
    assert json.loads(s3.get("adapters/capitals/result.json")) == trained["result"]


def test_metrics_served_during_the_run(trained):
    values = dict(re.findall(r"^(sovereign_finetune_\w+) (\S+)$", trained["metrics"], re.M))
    assert float(values["sovereign_finetune_step"]) == STEPS
    assert float(values["sovereign_finetune_total_steps"]) == STEPS
    assert float(values["sovereign_finetune_succeeded"]) == 1
    assert float(values["sovereign_finetune_tokens_per_second"]) > 0
    assert abs(float(values["sovereign_finetune_eval_loss"]) - trained["result"]["evalLoss"]) < 1e-5
    assert abs(float(values["sovereign_finetune_loss"]) - trained["result"]["loss"]) < 1e-5


LOAD_AND_GENERATE = r"""
import json, sys, torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
base_dir, adapter_dir = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(base_dir)
base = AutoModelForCausalLM.from_pretrained(base_dir)
prompt = tok("q: capital of france? a:", return_tensors="pt")
with torch.no_grad():
    plain = base.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
model = PeftModel.from_pretrained(base, adapter_dir)
with torch.no_grad():
    adapted = model.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
weights = load_file(f"{adapter_dir}/adapter_model.safetensors")
n = prompt["input_ids"].shape[1]
print(json.dumps({"prompt_tokens": n, "plain": plain[0, n:].tolist(), "adapted": adapted[0, n:].tolist(),
                  "text": tok.decode(adapted[0, n:]), "tensors": sorted(weights),
                  "lora_B_nonzero": any(bool(t.abs().sum() > 0) for k, t in weights.items() if "lora_B" in k)}))
"""


def test_adapter_loads_with_peft_generates_and_vllm_accepts_it(s3, trained, uploaded, trainer_python, tmp_path):
    assert trained["result"]["phase"] == "Succeeded"
    names = sorted(k.rsplit("/", 1)[1] for k, _ in s3.list("adapters/capitals/"))
    assert names == ["adapter_config.json", "adapter_model.safetensors", "result.json"]
    for name in names:
        (tmp_path / name).write_bytes(s3.get(f"adapters/capitals/{name}"))
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert adapter_config_problems(config) == []
    assert config["r"] == 8 and config["lora_alpha"] == 16 and set(config["target_modules"]) == set(TARGETS.split(","))
    assert config["peft_type"] == "LORA" and not config.get("use_dora") and not config.get("modules_to_save")
    out = subprocess.run([trainer_python, "-c", LOAD_AND_GENERATE, str(uploaded["model_dir"]), str(tmp_path)],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    gen = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(gen["adapted"]) >= 1 and gen["lora_B_nonzero"]  # lora_B starts at zero: non-zero means trained
    assert gen["adapted"] != gen["plain"], gen  # the adapter changes what the model says...
    assert gen["text"].startswith(" the capital of"), gen  # ...into the dataset's answer template
    # PEFT's key layout, which vLLM's LoRA loader parses: base_model.model.<module path>.lora_A/B.weight
    assert all(re.fullmatch(r"base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight", k)
               for k in gen["tensors"]), gen["tensors"]
    assert len(gen["tensors"]) == 2 * 7 * 2  # 2 layers x 7 target modules x (A, B)


def test_missing_dataset_fails_with_its_uri(s3, uploaded, trainer_python, tmp_path):
    out = _run(trainer_python, _args(s3, uploaded, tmp_path / "r.json", f"s3://{BUCKET}/adapters/missing/",
                                     dataset=f"s3://{BUCKET}/datasets/nope.jsonl"))
    assert out.returncode == 1
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["phase"] == "Failed" and r["step"] == 0 and r["adapterUri"] == ""
    assert r["reason"] == f"the dataset s3://{BUCKET}/datasets/nope.jsonl does not exist"
    assert json.loads(s3.get("adapters/missing/result.json")) == r
    assert "Traceback" not in out.stderr


def test_malformed_jsonl_line_fails_naming_the_line(s3, uploaded, trainer_python, tmp_path):
    out = _run(trainer_python, _args(s3, uploaded, tmp_path / "r.json", f"s3://{BUCKET}/adapters/broken/",
                                     dataset=f"s3://{BUCKET}/datasets/broken.jsonl"))
    assert out.returncode == 1
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["phase"] == "Failed"
    assert r["reason"].startswith("dataset line 3: not valid JSON"), r
    assert [k for k, _ in s3.list("adapters/broken/")] == ["adapters/broken/result.json"]  # no adapter


def test_rank_vllm_cannot_serve_fails_before_training(s3, uploaded, trainer_python, tmp_path):
    out = _run(trainer_python, _args(s3, uploaded, tmp_path / "r.json", f"s3://{BUCKET}/adapters/rank/", rank=1024))
    r = json.loads((tmp_path / "r.json").read_text())
    assert out.returncode == 1 and r["phase"] == "Failed" and r["step"] == 0
    assert "would not be served by vLLM: r=1024 is outside 1..512" in r["reason"], r


def test_operator_side_of_the_trainer_imports_no_torch(trainer_python):
    """In the venv that HAS torch: the trainer's entry point and pure parts do not import it until they train."""
    probe = ("import sys; import sovereign_suite.finetune.trainer, sovereign_suite.finetune.tiny_model; "
             "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([trainer_python, "-c", probe], env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_target_modules_of_another_architecture_fail_with_peft_reason(s3, uploaded, trainer_python, tmp_path):
    out = _run(trainer_python, _args(s3, uploaded, tmp_path / "r.json", f"s3://{BUCKET}/adapters/nomod/",
                                     target_modules="c_attn,c_proj", steps=2))
    r = json.loads((tmp_path / "r.json").read_text())
    assert out.returncode == 1 and r["phase"] == "Failed", (r, out.stderr[-2000:])
    # GPT-2's module names on a Llama: peft finds none of them
    assert r["reason"].startswith("LoRA cannot be applied:") and "c_attn" in r["reason"], r
    assert r["baseEvalLoss"] > 0 and r["step"] == 0  # the base model was read and measured, nothing trained
