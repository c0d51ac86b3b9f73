"""Build a randomly initialised Qwen3 model of a real size with the real Qwen3 tokenizer (benchmarks only).

    python bench/random_qwen3.py OUT_DIR [--size 0.6b|tiny] [--tokenizer ../shared/tokenizers/qwen3]

No model hub is reachable, so a GPU throughput figure for a realistic model uses Qwen3-0.6B's
published shape (28 layers, hidden 1024, 16 query / 8 key-value heads of 128, MLP 3072, vocabulary
151,936, tied embeddings) with random weights: tokens/s of training does not depend on the values
of the weights. The tokenizer is the real one from ``../shared/tokenizers/qwen3``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SIZES = {
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, vocab_size=151_936),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=151_936),
}


def build(out_dir: Path, size: str, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    torch.manual_seed(0)
    config = Qwen3Config(**SIZES[size], max_position_embeddings=40_960, tie_word_embeddings=True, rope_theta=1e6,
                         bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), torch_dtype="bfloat16")
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    params = sum(p.numel() for p in model.parameters())
    (out_dir / "random_qwen3.json").write_text(json.dumps({"size": size, "parameters": params}))
    print(f"{out_dir}: Qwen3 {size} shape, {params / 1e6:.0f} M parameters, random weights, real Qwen3 tokenizer")
    return out_dir


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.6b")
    ap.add_argument("--tokenizer", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "qwen3")
    a = ap.parse_args()
    build(a.out_dir, a.size, a.tokenizer)
