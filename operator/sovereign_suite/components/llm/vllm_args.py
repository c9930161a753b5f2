"""vLLM's command line for one model: the flags the operator owns (``extraArgs`` may not repeat them, nor
their aliases or prefixes, as vLLM's argparse would read them) and the flags a model family's upstream requires."""

from __future__ import annotations

from ...api.models import LLMModel
from ...api.validation import InputError, Problem
from . import adapters as lora
from .secret_files import VLLM_KEY_CONFIG

VLLM_PORT = 8000

# Flags the operator sets from the model's fields; extraArgs may not repeat them (nor their aliases).
OWNED_FLAGS = {
    "--model": "modelId",
    "--served-model-name": "servedName",
    "--tensor-parallel-size": "gpusPerReplica",
    "-tp": "gpusPerReplica",
    "--port": None,
    "--api-key": None,  # the operator's generated key, from the --config file (secret_files.py)
    "--config": None,  # vLLM takes one options file: the operator's, which holds the key
    "--gpu-memory-utilization": "gpuMemoryUtilization",
    "--max-model-len": "maxModelLen",
}
# Flags a model family's upstream requires. Mistral's model cards (e.g. mistralai/Mistral-Small-3.2-24B-Instruct-2506)
# ask vLLM for its own tokenizer, config and weights format.
FAMILY_FLAGS = {
    "mistral": ["--tokenizer-mode", "mistral", "--config-format", "mistral", "--load-format", "mistral"],
    "generic": [],
}


def model_family(model: LLMModel) -> str:
    """``family``, or with ``auto`` the family of the publisher in ``modelId`` (mistralai/ -> mistral)."""
    if model.family != "auto":
        return model.family
    return "mistral" if model.model_id.lower().startswith("mistralai/") else "generic"


def owned_flag_of(arg: str) -> str | None:
    """The owned flag an argument would set, if any. vLLM parses with argparse, which accepts ``--flag=value``,
    ``_`` for ``-`` in long flags (vLLM's own normalization), and any unambiguous prefix of a long flag
    (``--tensor-parallel=4`` is ``--tensor-parallel-size=4``); a single-dash flag also takes its value glued on
    (``-tp4``) and may be shortened (``-t``). So: any flag that is a prefix of an owned one, or that starts
    with an owned single-dash flag, is refused."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    flag = arg.split("=", 1)[0]
    if flag.startswith("--"):
        flag = "--" + flag[2:].replace("_", "-")
        return next((owned for owned in OWNED_FLAGS if owned.startswith("--") and owned.startswith(flag)), None)
    return next(
        (owned for owned in OWNED_FLAGS
         if not owned.startswith("--") and (owned.startswith(flag) or flag.startswith(owned))),
        None,
    )


def check_extra_args(model: LLMModel, path: str) -> None:
    problems = []
    for index, arg in enumerate(model.extra_args):
        owned = owned_flag_of(arg)
        if owned is None:
            continue
        field = OWNED_FLAGS[owned]
        hint = f"; set the model's {field} instead" if field else ""
        flag = arg.split("=", 1)[0]
        what = owned if flag.replace("_", "-") == owned else f"{flag} (read as {owned})"
        problems.append(Problem(path, f"{what} is set by the operator{hint}"))
    if problems:
        raise InputError(problems)


def vllm_args(model: LLMModel, path: str, adapters: list[lora.ServedAdapter] | None = None) -> list[str]:
    """The arguments of the image's ``vllm serve`` entrypoint. The model is the positional argument: vLLM
    deprecates ``--model`` with ``vllm serve`` (a warning today, "will be removed in a future version").
    ``adapters``: the LoRA adapters the model serves (their flags: components/llm/adapters.py)."""
    check_extra_args(model, path)
    if adapters:
        problems = lora.lora_flag_problems(model, path)
        if problems:
            raise InputError(problems)
    args = [
        model.model_id,
        "--served-model-name", model.served,
        "--tensor-parallel-size", str(model.gpus_per_replica),
        "--port", str(VLLM_PORT),
        "--gpu-memory-utilization", str(model.gpu_memory_utilization),
    ]
    if model.max_model_len is not None:
        args += ["--max-model-len", str(model.max_model_len)]
    args += lora.lora_args(adapters or [])
    given = {a.split("=", 1)[0] for a in model.extra_args}
    family = FAMILY_FLAGS[model_family(model)]
    for flag, value in zip(family[::2], family[1::2]):
        if flag not in given:  # extraArgs may say otherwise (e.g. a community conversion in HF format)
            args += [flag, value]
    return args + list(model.extra_args) + ["--config", VLLM_KEY_CONFIG]
