#!/usr/bin/env python3
"""Records llama.cpp's greedy tokens on the GGUFs that `m1 quantize` makes from the tiny
generated Hugging Face models of cli/tests/quantize.rs.

The Rust test writes those GGUFs (deterministically) to target/tmp/quantize/gguf/ and
checks its own engine against this fixture, including each file's sha256: when the
converter's output changes, regenerate:

    cargo test -p m1-cli --test quantize
    .cache/llama-avx2/bin/python scripts/llama_quantize_reference.py   (scripts/llama_builds.sh)

Output: cli/tests/fixtures/quantize_reference.json (small, committed).
"""

import argparse
import hashlib
import sys
from pathlib import Path

from reference_common import compact_json, llama_build

ROOT = Path(__file__).resolve().parent.parent

N_CTX = 256
N_THREADS = 2
N_GREEDY = 16

PROMPTS = {
    "chatml": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhich coronary artery is most likely occluded?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "plain": "The patient is a 30-year-old woman with fever and cough",
    "code": "def fibonacci(n):\n    return",
}


def greedy_with_gaps(llm, tokens, n):
    """Greedy decode by explicit argmax; per step the gap between the best and second-best
    logit (how decisive the pick is)."""
    import numpy as np

    def last_logits():
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)

    llm.reset()
    llm.eval(tokens)
    out, gaps = [], []
    for i in range(n):
        logits = last_logits()
        order = np.argsort(-logits, kind="stable")[:2]
        out.append(int(order[0]))
        gaps.append(round(float(logits[order[0]] - logits[order[1]]), 4))
        if i + 1 < n:
            llm.eval([int(order[0])])
    return out, gaps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=str(ROOT / "target" / "tmp" / "quantize" / "gguf"))
    ap.add_argument("--out", default=str(ROOT / "cli" / "tests" / "fixtures" / "quantize_reference.json"))
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    isa, _ = llama_build()
    files = sorted(Path(args.dir).glob("*.gguf"))
    if not files:
        print(f"no GGUFs in {args.dir}: run `cargo test -p m1-cli --test quantize` first", file=sys.stderr)
        sys.exit(1)
    result = {
        "generator": "scripts/llama_quantize_reference.py",
        "llama_cpp_python": llama_cpp.__version__,
        "build": isa,
        "settings": {"n_ctx": N_CTX, "n_threads": N_THREADS, "n_greedy": N_GREEDY,
                     "tokenize": "add_bos=False, special=True"},
        "models": {},
    }
    for path in files:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        llm = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=N_THREADS, n_batch=N_CTX, seed=42, verbose=False)
        model = {"sha256": sha, "n_vocab": llm.n_vocab(), "prompts": {}}
        for key, text in PROMPTS.items():
            ids = [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)]
            gen, gaps = greedy_with_gaps(llm, ids, N_GREEDY)
            model["prompts"][key] = {"text": text, "ids": ids, "greedy": gen, "gap": gaps}
            print(f"{path.name} {key}: {len(ids)} prompt tokens, greedy {gen}, smallest gap {min(gaps)}", file=sys.stderr)
        result["models"][path.name] = model
        del llm
    Path(args.out).write_text(compact_json(result) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
