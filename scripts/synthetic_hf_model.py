#!/usr/bin/env python3
"""Writes a large Qwen2-shaped Hugging Face folder with random bf16 weights, to measure
`m1 quantize` speed and peak memory at real tensor sizes (Qwen2.5-7B's: hidden 3584,
152064-token embedding and output, 18944-wide MLP) without downloading the model.

    .cache/venv/bin/python scripts/synthetic_hf_model.py --layers 2 --out /tmp/qwen2-synth
    /usr/bin/time -v target/release/m1 quantize --input /tmp/qwen2-synth \\
        --output /tmp/synth-q4_k_m.gguf --type q4_k_m

The tokenizer files are copied from a folder the engine's tests generate
(target/tmp/quantize/hf/qwen2-tiny, after `cargo test -p m1-cli --test quantize`);
ids past its vocabulary become [PAD] tokens. 2 layers is about 3.2 GB of bf16 in two shards.
"""

import argparse
import json
import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HIDDEN, FF, VOCAB, HEADS, KV_HEADS = 3584, 18944, 152064, 28, 4


def tensors(layers):
    kv = KV_HEADS * (HIDDEN // HEADS)
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
            (p + "self_attn.q_proj.bias", (HIDDEN,)),
            (p + "self_attn.k_proj.weight", (kv, HIDDEN)),
            (p + "self_attn.k_proj.bias", (kv,)),
            (p + "self_attn.v_proj.weight", (kv, HIDDEN)),
            (p + "self_attn.v_proj.bias", (kv,)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
            (p + "mlp.gate_proj.weight", (FF, HIDDEN)),
            (p + "mlp.up_proj.weight", (FF, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, FF)),
        ]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def write_shard(path, items, rng):
    header, offset = {}, 0
    for name, shape in items:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in items:
            left = int(np.prod(shape))
            while left:
                n = min(left, 1 << 24)
                x = (rng.standard_normal(n, dtype=np.float32) * 0.02).view(np.uint32)
                f.write((x >> 16).astype(np.uint16).tobytes())
                left -= n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/qwen2-synth")
    ap.add_argument("--tokenizer-from", default=str(ROOT / "target/tmp/quantize/hf/qwen2-tiny"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copy(Path(args.tokenizer_from) / name, out / name)
    config = json.loads((Path(args.tokenizer_from) / "config.json").read_text())
    config.update(hidden_size=HIDDEN, intermediate_size=FF, num_hidden_layers=args.layers,
                  num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, vocab_size=VOCAB,
                  max_position_embeddings=32768, tie_word_embeddings=False, torch_dtype="bfloat16")
    (out / "config.json").write_text(json.dumps(config, indent=2))
    items = tensors(args.layers)
    half = len(items) // 2
    rng = np.random.default_rng(0)
    weight_map = {}
    for i, part in enumerate([items[:half], items[half:]]):
        name = f"model-{i + 1:05d}-of-00002.safetensors"
        write_shard(out / name, part, rng)
        weight_map.update({n: name for n, _ in part})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    total = sum(int(np.prod(s)) * 2 for _, s in items)
    print(f"wrote {out}: {len(items)} tensors, {total / 1e9:.2f} GB of bf16")


if __name__ == "__main__":
    main()
