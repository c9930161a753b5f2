"""The LoRA trainer a FineTune's training Job runs: ``python -m sovereign_suite.finetune.trainer [flags]``.

What one run does, all inside the country (one S3-compatible endpoint, ``--s3-endpoint``):

1. reads the JSONL dataset (``--dataset s3://bucket/key``; format in dataset.py) and splits off a held-out eval
   set, deterministically (``--eval-fraction``, ``--seed``);
2. reads the base model (``--base-model``: an ``s3://bucket/prefix/`` holding a Hugging Face model directory, or
   a local directory such as the served model's volume);
3. computes the base model's eval loss, trains a LoRA adapter (peft) for ``--steps`` optimizer steps
   (``--rank --alpha --dropout --target-modules --learning-rate --batch-size --seq-len``), computes the
   adapter's eval loss;
4. checks the written ``adapter_config.json`` against what vLLM serves (api/lora_rules.py), then writes
   ``adapter_config.json`` + ``adapter_model.safetensors`` (PEFT's checkpoint format, what vLLM's
   ``--lora-modules`` and ``/v1/load_lora_adapter`` read) and ``result.json`` under ``--output s3://bucket/prefix/``.

The contract with the operator: the result is one JSON object (result.py), written to ``result.json`` in the
output prefix and to ``--result-file`` (default ``/dev/termination-log``: the operator reads it from the pod's
``status.containerStatuses[].state.terminated.message``, no API access from the pod), under 4096 bytes::

    {"phase": "Succeeded"|"Failed", "reason": str, "step": int, "totalSteps": int, "loss": float,
     "baseEvalLoss": float, "evalLoss": float, "tokensPerSecond": float, "durationSeconds": float,
     "adapterUri": str}

Exit code 0 when Succeeded, 1 when Failed (the Job fails; the reason says why: a missing dataset, a bad JSONL
line with its number, an adapter vLLM would refuse...). The promotion gate (evalLoss against baseEvalLoss or a
threshold) is the operator's decision, not the trainer's: the trainer reports both losses.

While it runs it serves Prometheus metrics on ``--metrics-port`` (progress.py; 0 disables), and keeps serving the
final values ``--metrics-linger-seconds`` after the result is written, so a scrape interval catches short runs.

Credentials: ``--credentials-dir`` with the files ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (a mounted
Secret), else those environment variables. torch, transformers and peft (the ``trainer`` extra) are imported only
once the inputs are read: the operator imports none of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..api.lora_rules import adapter_config_problems
from . import dataset, storage
from .progress import Progress
from .result import Result

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class TrainerError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sovereign_suite.finetune.trainer",
                                description="Train a LoRA adapter on a JSONL dataset in the country's storage.")
    p.add_argument("--base-model", required=True, help="s3://bucket/prefix/ or a local model directory")
    p.add_argument("--dataset", required=True, help="s3://bucket/key of the JSONL dataset")
    p.add_argument("--output", required=True, help="s3://bucket/prefix/ for the adapter and result.json")
    p.add_argument("--s3-endpoint", required=True, help="the country's S3-compatible endpoint, http(s)://host[:port]")
    p.add_argument("--s3-region", default="us-east-1")
    p.add_argument("--credentials-dir", default=None)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--target-modules", default="q_proj,v_proj", help="comma-separated module names")
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eval-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--metrics-port", type=int, default=9400)
    p.add_argument("--metrics-linger-seconds", type=float, default=0.0)
    p.add_argument("--result-file", default="/dev/termination-log")
    return p


def check_arguments(args: argparse.Namespace) -> list[str]:
    """Hyper-parameters the trainer refuses before reading anything (each message names the flag)."""
    problems = []
    for flag in ("steps", "batch_size", "seq_len"):
        if getattr(args, flag) < 1:
            problems.append(f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}")
    if not 0 <= args.dropout < 1:
        problems.append(f"--dropout must be in [0, 1), not {args.dropout}")
    if not args.learning_rate > 0:
        problems.append(f"--learning-rate must be positive, not {args.learning_rate}")
    targets = [t for t in args.target_modules.split(",") if t.strip()]
    if not targets:
        problems.append("--target-modules names no module")
    # the adapter this run would write, checked before any minute is spent training it
    planned = {"r": args.rank, "lora_alpha": args.alpha, "target_modules": targets}
    problems += [f"the adapter would not be served by vLLM: {p}" for p in adapter_config_problems(planned)]
    return problems


def _write_result(path: str, result: Result) -> None:
    try:
        Path(path).write_text(result.to_json())
    except OSError as err:
        print(f"cannot write the result to {path}: {err}", file=sys.stderr)


def train(args: argparse.Namespace, progress: Progress, result: Result, work: Path) -> storage.S3Uri:
    problems = check_arguments(args)
    if problems:
        raise TrainerError("; ".join(problems))
    creds = storage.credentials(args.credentials_dir)
    data_uri = storage.parse_uri(args.dataset, "--dataset")
    out_uri = storage.parse_uri(args.output, "--output")
    data_client = storage.client_for(args.s3_endpoint, args.s3_region, creds, data_uri)
    records = dataset.parse_jsonl(storage.get_object(data_client, data_uri, "the dataset"))
    parts = dataset.split(records, args.eval_fraction, args.seed)

    if args.base_model.startswith("s3://"):
        model_uri = storage.parse_uri(args.base_model, "--base-model")
        model_dir = work / "base"
        storage.download_prefix(storage.client_for(args.s3_endpoint, args.s3_region, creds, model_uri),
                                model_uri, model_dir, "the base model")
    else:
        model_dir = Path(args.base_model)
        if not (model_dir / "config.json").is_file():
            raise TrainerError(f"--base-model {model_dir} is not a model directory (no config.json)")

    import torch  # the trainer extra, from here on only

    from . import lora_train
    if args.threads:
        torch.set_num_threads(args.threads)
    hyper = lora_train.Hyper(rank=args.rank, alpha=args.alpha, dropout=args.dropout,
                             target_modules=tuple(t.strip() for t in args.target_modules.split(",") if t.strip()),
                             learning_rate=args.learning_rate, batch_size=args.batch_size, seq_len=args.seq_len,
                             steps=args.steps, seed=args.seed)

    def on_base_eval(loss: float) -> None:
        result.baseEvalLoss = loss
        progress.base_eval_loss.set(loss)

    def on_step(stats) -> None:
        result.step, result.loss, result.tokensPerSecond = stats.step, stats.loss, stats.tokens_per_second
        progress.step.set(stats.step)
        progress.loss.set(stats.loss)
        progress.tokens_per_second.set(stats.tokens_per_second)

    adapter_dir = work / "adapter"
    try:
        _, adapted, _ = lora_train.run(model_dir, parts.train, parts.eval, hyper, adapter_dir, on_base_eval, on_step)
    except lora_train.TrainingError as err:
        raise TrainerError(str(err)) from None
    result.evalLoss = adapted
    progress.eval_loss.set(adapted)

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    problems = adapter_config_problems(config)
    if problems:
        raise TrainerError("the written adapter would not be served by vLLM: " + "; ".join(problems))
    missing = [n for n in ADAPTER_FILES if not (adapter_dir / n).is_file()]
    if missing:
        raise TrainerError(f"the adapter directory lacks {', '.join(missing)}")
    storage.upload_dir(storage.client_for(args.s3_endpoint, args.s3_region, creds, out_uri), adapter_dir, out_uri,
                       list(ADAPTER_FILES))
    return out_uri


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parser().parse_args(argv)
    progress = Progress()
    result = Result(totalSteps=args.steps)
    progress.total_steps.set(args.steps)
    out_uri = None
    try:
        progress.serve(args.metrics_port)
        with tempfile.TemporaryDirectory(prefix="finetune-") as work:
            out_uri = train(args, progress, result, Path(work))
        result.phase, result.adapterUri = "Succeeded", str(out_uri)
        result.reason = (f"trained {result.step} steps: eval loss {result.evalLoss:.4f} "
                         f"(base model {result.baseEvalLoss:.4f})")
    except (TrainerError, dataset.DatasetError, storage.StorageError) as err:
        result.phase, result.reason = "Failed", str(err)
    except Exception as err:  # noqa: BLE001 - any other failure still ends in a result the operator can read
        traceback.print_exc()
        result.phase, result.reason = "Failed", f"{type(err).__name__}: {err}"
    result.durationSeconds = time.monotonic() - started
    progress.duration_seconds.set(result.durationSeconds)
    progress.succeeded.set(1 if result.phase == "Succeeded" else 0)
    _upload_result(args, result)
    _write_result(args.result_file, result)
    print(result.to_json())
    if args.metrics_linger_seconds > 0:
        time.sleep(args.metrics_linger_seconds)
    progress.close()
    return 0 if result.phase == "Succeeded" else 1


def _upload_result(args: argparse.Namespace, result: Result) -> None:
    """result.json beside the adapter, on failure too (the bucket then says why there is no adapter)."""
    try:
        out_uri = storage.parse_uri(args.output, "--output")
        client = storage.client_for(args.s3_endpoint, args.s3_region, storage.credentials(args.credentials_dir),
                                    out_uri)
        client.put_bytes(out_uri.child("result.json").key, result.to_json().encode(), "application/json")
    except (storage.StorageError, storage.S3Error, OSError) as err:
        print(f"cannot write result.json under {args.output}: {err}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
