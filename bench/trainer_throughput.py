"""The LoRA trainer's CPU throughput on the tiny model (docs/performance.md, "Fine-tuning").

    python bench/trainer_throughput.py [--rounds N] [--steps N] [--threads 1,2]   (one entry per thread count)

Runs the trainer program exactly as tests/test_trainer_run.py does (a process of the trainer's venv,
hack/install-trainer-venv.sh; the dataset and base model in moto's S3 server, hack/install-backup-tools.sh): a
Llama with hidden size 64 and 2 layers, LoRA r=8 on the 7 projection modules, batch 8, sequence length 64. Reports,
per torch thread count, the trainer's own tokensPerSecond (training tokens, padding excluded, over the training
loop's time) and durationSeconds (the whole process: S3 reads, torch import, base eval, training, adapter eval,
writing), median of the rounds, and the process's wall time. Writes bench/results/trainer_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from sovereign_suite.backup.s3 import Client, Credentials

ROOT = Path(__file__).resolve().parents[1]
CAPITALS = [("france", "paris"), ("germany", "berlin"), ("italy", "rome"), ("spain", "madrid"),
            ("sweden", "stockholm"), ("luxembourg", "luxembourg"), ("austria", "vienna"), ("portugal", "lisbon")]
TEXTS = [f"q: capital of {c}? a: the capital of {c} is {k}." for c, k in CAPITALS] * 8


def _tool(script: str) -> str:
    return subprocess.run([str(ROOT / "hack" / script), "--print"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", default="1")
    args = ap.parse_args()
    python, moto = _tool("install-trainer-venv.sh"), _tool("install-backup-tools.sh")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    port = _port()
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(endpoint + "/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        s3 = Client(endpoint, "bench", "us-east-1", Credentials("AK", "SK"))
        s3._request("PUT")
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            (work / "corpus.txt").write_text("\n".join(TEXTS))
            subprocess.run([python, "-m", "sovereign_suite.finetune.tiny_model", str(work / "m"),
                            str(work / "corpus.txt")], env=env, check=True, capture_output=True)
            for f in (work / "m").iterdir():
                s3.put_file(f"m/{f.name}", str(f))
            s3.put_bytes("d.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in TEXTS).encode())
            results = {}
            for threads in [int(t) for t in args.threads.split(",")]:
                runs = []
                for r in range(args.rounds):
                    out = work / f"r-{threads}-{r}.json"
                    t0 = time.monotonic()
                    subprocess.run([python, "-m", "sovereign_suite.finetune.trainer", "--base-model", "s3://bench/m/",
                                    "--dataset", "s3://bench/d.jsonl", "--output", f"s3://bench/o-{threads}-{r}/",
                                    "--s3-endpoint", endpoint, "--rank", "8", "--alpha", "16",
                                    "--target-modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                                    "--learning-rate", "0.01", "--batch-size", "8", "--seq-len", "64",
                                    "--steps", str(args.steps), "--eval-fraction", "0.2", "--threads", str(threads),
                                    "--metrics-port", "0", "--result-file", str(out)],
                                   env={**env, "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"},
                                   check=True, capture_output=True)
                    res = json.loads(out.read_text())
                    runs.append({**res, "wallSeconds": time.monotonic() - t0})
                results[f"threads={threads}"] = {
                    "tokensPerSecond": statistics.median(r["tokensPerSecond"] for r in runs),
                    "durationSeconds": statistics.median(r["durationSeconds"] for r in runs),
                    "wallSeconds": statistics.median(r["wallSeconds"] for r in runs),
                    "runs": [{k: round(r[k], 2) for k in ("tokensPerSecond", "durationSeconds", "wallSeconds",
                                                           "baseEvalLoss", "evalLoss")} for r in runs]}
                print(threads, json.dumps(results[f"threads={threads}"]))
    finally:
        server.terminate()
        server.wait(10)
    path = ROOT / "bench" / "results" / "trainer_throughput.json"
    report = json.loads(path.read_text()) if path.exists() else {"results": {}}
    for key, value in results.items():  # one entry per thread count: runs with other counts are kept
        report["results"][key] = {**value, "steps": args.steps, "rounds": args.rounds, "cpus": os.cpu_count(),
                                  "loadavgAfter": [round(x, 1) for x in os.getloadavg()],
                                  "date": time.strftime("%Y-%m-%d")}
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
