"""A tiny base model built from a config, for the tests and the benchmark (no weights can be downloaded here).

A Llama architecture (transformers' ``LlamaForCausalLM``; the family most open models served by the suite
share) with hidden size 64, 2 layers, 4 heads, randomly initialised from a seed, and a byte-level BPE tokenizer
trained locally with ``tokenizers`` on the corpus given. Saved with ``save_pretrained`` as any Hugging Face model
directory (``config.json``, ``model.safetensors``, ``tokenizer.json``...): the trainer reads it exactly as it reads
a served model's weights.

    python -m sovereign_suite.finetune.tiny_model OUT_DIR CORPUS.txt [--seed N]

Needs the ``trainer`` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def build_tokenizer(texts: list[str], vocab_size: int = 384):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


def build_model(tokenizer, seed: int = 0, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                max_positions: int = 256):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def save_tiny_model(out_dir: Path, texts: list[str], seed: int = 0) -> Path:
    tokenizer = build_tokenizer(texts)
    model = build_model(tokenizer, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("corpus", type=Path, help="text file, one training text a line, for the tokenizer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    texts = [line for line in args.corpus.read_text().splitlines() if line.strip()]
    save_tiny_model(args.out_dir, texts, seed=args.seed)
    print(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
