#!/usr/bin/env bash
# The LoRA trainer's environment (operator/sovereign_suite/finetune/trainer.py) for tests/test_trainer_run.py and
# bench/trainer_throughput.py: a venv of its own, never the operator's (torch and transformers are not operator
# dependencies), like the Synapse and moto venvs.
#
#   - pins: hack/trainer-requirements.txt, the whole closure, installed with --no-deps (nothing resolved at
#     install time, nothing newer slips in);
#   - wheels cached by key in $CACHE/wheels/trainer-<key>/ (about 2.9 GiB: torch's PyPI wheel is the CUDA build and
#     imports its CUDA libraries even on CPU, see docs/llm-finetuning.md), the venv in $CACHE/trainer-venv-<key>/
#     (about 5.6 GiB); <key> covers the pins and the Python version. A second run is offline and instant.
#   - an interrupted install is redone, never half used (.complete is written last).
#
#   hack/install-trainer-venv.sh            install what is missing (quiet; idempotent)
#   hack/install-trainer-venv.sh --print    print the venv's python (exit 1 when not installed)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
lock="$here/trainer-requirements.txt"
CACHE="${SOVEREIGN_SUITE_CACHE:-$HOME/.cache/sovereign-suite}"
PYTHON="${PYTHON:-python3}"
pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( (cat "$lock"; echo "$pyver") | sha256sum | cut -c1-12)"
wheels="$CACHE/wheels/trainer-$key"
venv="$CACHE/trainer-venv-$key"
log() { echo "[install-trainer-venv] $*" >&2; }

if [[ "${1:-}" == "--print" ]]; then [[ -e "$venv/.complete" ]] && echo "$venv/bin/python"; exit $?; fi
[[ -e "$venv/.complete" ]] && exit 0

if [[ ! -e "$wheels/.complete" ]]; then
  log "downloading the trainer's wheels (torch, transformers, peft...; about 2.9 GiB) into $wheels"
  rm -rf "$wheels"; mkdir -p "$wheels"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -r "$lock" -d "$wheels"
  touch "$wheels/.complete"
fi
log "installing them into $venv"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install --quiet --no-index --find-links "$wheels" --no-deps -r "$lock"
"$venv/bin/python" -c 'import torch, transformers, peft, tokenizers, safetensors, prometheus_client'
touch "$venv/.complete"
