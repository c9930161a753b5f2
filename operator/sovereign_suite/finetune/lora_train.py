"""The torch half of the trainer: load the base model, measure eval loss, train a LoRA adapter, save it.

Imported only by ``trainer.py`` at run time, inside the trainer's environment (the ``trainer`` extra: torch,
transformers, peft, safetensors). The operator never imports this module (tests/test_finetune_units.py checks it).

Loss is the mean token cross-entropy of causal language modelling over every non-padding token (labels are the
inputs, padding masked with -100, transformers' convention), the same on the base model and with the adapter,
so ``evalLoss < baseEvalLoss`` means the adapter predicts the held-out records better.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer


@dataclass(frozen=True)
class Hyper:
    rank: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]
    learning_rate: float
    batch_size: int
    seq_len: int
    steps: int
    seed: int


class TrainingError(Exception):
    pass


def lora_config(h: Hyper) -> LoraConfig:
    # bias "none", no modules_to_save, no DoRA: what vLLM serves (api/lora_rules.py)
    return LoraConfig(r=h.rank, lora_alpha=h.alpha, lora_dropout=h.dropout, target_modules=list(h.target_modules),
                      bias="none", task_type="CAUSAL_LM")


def load_base(model_dir: Path):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:  # many base models ship none; padding is masked out of the loss anyway
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return tokenizer, model


def batches(tokenizer, texts: list[str], batch_size: int, seq_len: int) -> list[dict[str, torch.Tensor]]:
    eos = tokenizer.eos_token or ""
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer([t + eos for t in texts[i:i + batch_size]], truncation=True, max_length=seq_len,
                        padding=True, return_tensors="pt")
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    return out


def _predicted_tokens(batch: dict[str, torch.Tensor]) -> int:
    # the model shifts labels by one: the first token of each row is never predicted
    return int((batch["labels"][:, 1:] != -100).sum())


@torch.no_grad()
def eval_loss(model, eval_batches) -> float:
    model.eval()
    total, count = 0.0, 0
    for b in eval_batches:
        n = _predicted_tokens(b)
        if n:
            total += float(model(**b).loss) * n  # the model's loss is the mean over the batch's tokens
            count += n
    if not count:
        raise TrainingError("the eval split has no token to predict (records shorter than two tokens)")
    return total / count


@dataclass
class TrainStats:
    step: int = 0
    loss: float = math.nan
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def train(model, train_batches, h: Hyper, on_step: Callable[[TrainStats], None]) -> TrainStats:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=h.learning_rate)
    rng = random.Random(h.seed)
    order: list[int] = []
    stats = TrainStats()
    model.train()
    start = time.monotonic()
    while stats.step < h.steps:
        if not order:  # a new epoch, in a seeded order
            order = list(range(len(train_batches)))
            rng.shuffle(order)
        batch = train_batches[order.pop()]
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stats.step += 1
        stats.loss = float(loss.detach())
        stats.tokens += _predicted_tokens(batch)
        stats.seconds = time.monotonic() - start
        if not math.isfinite(stats.loss):
            raise TrainingError(f"the loss diverged at step {stats.step} ({stats.loss}): lower the learning rate")
        on_step(stats)
    return stats


def run(model_dir: Path, train_texts: list[str], eval_texts: list[str], h: Hyper, out_dir: Path,
        on_base_eval: Callable[[float], None], on_step: Callable[[TrainStats], None]) -> tuple[float, float, TrainStats]:
    """(base eval loss, adapter eval loss, training stats); the adapter saved in ``out_dir`` (PEFT's format)."""
    torch.manual_seed(h.seed)
    tokenizer, model = load_base(model_dir)
    train_b = batches(tokenizer, train_texts, h.batch_size, h.seq_len)
    eval_b = batches(tokenizer, eval_texts, h.batch_size, h.seq_len)
    base = eval_loss(model, eval_b)
    on_base_eval(base)
    try:
        model = get_peft_model(model, lora_config(h))
    except ValueError as err:  # e.g. a target module the architecture does not have
        raise TrainingError(f"LoRA cannot be applied: {err}") from None
    stats = train(model, train_b, h, on_step)
    adapted = eval_loss(model, eval_b)
    # safetensors, PEFT's default: adapter_config.json + adapter_model.safetensors
    model.save_pretrained(out_dir, safe_serialization=True)
    return base, adapted, stats
