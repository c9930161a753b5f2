"""What vLLM accepts from a LoRA adapter, at the vLLM version this project pins (api/image_pins.py: vllm-openai
v0.33.0). Shared by the FineTune validation (a rank vLLM cannot serve is refused before any GPU is spent) and by
the check of an adapter the trainer wrote (tests/test_trainer_run.py).

Sources, vllm-project/vllm:
- vllm/config/lora.py: ``MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]``; ``--max-lora-rank``
  takes one of these values and every adapter served must have ``r`` no larger than it.
- vllm/lora/peft_helper.py (``PEFTHelper._validate_features`` and ``from_dict``): ``r``, ``lora_alpha`` and
  ``target_modules`` are required; ``modules_to_save`` must be empty; ``use_dora`` must be false.
"""

from __future__ import annotations

from typing import Any

# vllm/config/lora.py, MaxLoRARanks: the values --max-lora-rank accepts.
MAX_LORA_RANK_VALUES: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)

# vllm/lora/peft_helper.py, PEFTHelper: fields with no default.
REQUIRED_ADAPTER_FIELDS: tuple[str, ...] = ("r", "lora_alpha", "target_modules")


def max_lora_rank_flag(ranks: list[int] | tuple[int, ...]) -> int:
    """The smallest --max-lora-rank value that serves every rank given (vLLM sizes its LoRA buffers by it)."""
    highest = max(ranks, default=1)
    for value in MAX_LORA_RANK_VALUES:
        if value >= highest:
            return value
    raise ValueError(f"rank {highest} is above vLLM's largest --max-lora-rank ({MAX_LORA_RANK_VALUES[-1]})")


def adapter_config_problems(config: dict[str, Any]) -> list[str]:
    """Why vLLM would refuse this ``adapter_config.json`` (PEFT's format); empty when it would load it."""
    problems = [f"{name} is missing" for name in REQUIRED_ADAPTER_FIELDS if name not in config]
    rank = config.get("r")
    if isinstance(rank, int) and not isinstance(rank, bool):
        if not 1 <= rank <= MAX_LORA_RANK_VALUES[-1]:
            problems.append(f"r={rank} is outside 1..{MAX_LORA_RANK_VALUES[-1]}")
    elif "r" in config:
        problems.append(f"r must be an integer, not {rank!r}")
    if config.get("modules_to_save"):
        problems.append("modules_to_save must be empty (vLLM only supports modules_to_save being None)")
    if config.get("use_dora"):
        problems.append("use_dora must be false (vLLM does not support DoRA)")
    return problems
