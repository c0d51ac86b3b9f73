"""Build a tiny local Qwen3-style model + tokenizer, offline, for the demo and the tests.

No model hub is reachable, so the demo project, every job and the test suite use this: a
2-layer ``Qwen3ForCausalLM`` with random (seeded) weights and a byte-level BPE tokenizer trained
here with ``tokenizers`` on a small built-in corpus, carrying Qwen3's special tokens and TRL's
qwen3 chat template. Deterministic: the same call builds the same files.

Heavy imports (torch, transformers) happen inside the functions: this module is imported by the
web process only for the path constant.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]

_CORPUS = """\
You are a helpful assistant. You may call one or more functions to assist with the user query.
What is the weather in Paris today? Let me check the weather for Paris.
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
{"temperature": 18, "condition": "cloudy"} It is 18 degrees and cloudy in Paris.
Book a flight from JFK to SEA on 2024-05-20 in economy for user mia_li_3668.
I need the reservation id to cancel your booking. Could you tell me the reservation number?
Sorry, none of the available tools can do that. I can only help with flights and weather.
Calculate the area of a triangle with a base of 10 units and height of 5 units.
The function returned an error: timeout. Let me try again. The result is 25 square units.
# Tools\n\nYou may call one or more functions to assist with the user query.
You are provided with function signatures within <tools></tools> XML tags:
For each function call, return a json object with function name and arguments within
<tool_call></tool_call> XML tags: {"name": <function-name>, "arguments": <args-json-object>}
"type": "function", "function": {"name": "search", "description": "Search", "parameters":
{"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
user assistant system tool 0123456789 ,.;:!?'"()[]{}<>/\\|-_=+*&^%$#@~`
the of and to in is it you that he was for on are with as his they be at one have this from
"""


def _corpus_lines() -> list[str]:
    lines = _CORPUS.splitlines()
    # Repeat with variations so BPE learns frequent merges; deterministic.
    out = []
    for i in range(40):
        for line in lines:
            out.append(line if i % 2 == 0 else line.lower())
    out.extend(chr(c) for c in range(32, 127))
    return out


def qwen3_chat_template() -> str:
    """TRL's shipped qwen3 template (identical to the published Qwen3 one)."""
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("trl is not installed; it ships the qwen3 chat template")
    path = Path(list(spec.submodule_search_locations)[0]) / "chat_templates" / "qwen3.jinja"
    return path.read_text()


def build_tokenizer(vocab_size: int = 1024):
    # Here, not at the top: seed_demo and the tests import this module; transformers costs ~0.6 s.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus_lines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:2] + SPECIAL_TOKENS[2:3],
    )
    fast.chat_template = qwen3_chat_template()
    fast.model_max_length = 32768
    return fast


def build_tiny_model(out_dir: Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny Qwen3 model + tokenizer into ``out_dir`` (skipped when already there)."""
    out_dir = Path(out_dir)
    marker = out_dir / "studio_tiny_model.json"
    if marker.exists() and (out_dir / "config.json").exists():
        return out_dir
    import torch  # heavy (~1.1 s): only when the model is built, not when it is cached
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    marker.write_text(json.dumps({"built_by": "trajectory-studio", "hidden_size": hidden_size, "layers": layers}))
    return out_dir


if __name__ == "__main__":  # pragma: no cover - convenience
    import sys

    print(build_tiny_model(Path(sys.argv[1] if len(sys.argv) > 1 else "var/models/tiny-qwen3")))
