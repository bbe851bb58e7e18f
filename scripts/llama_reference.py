#!/usr/bin/env python3
"""Records llama.cpp reference token ids for the engine's tests.

For each test model: the tokenization (special tokens parsed) of a set of prompts and of
tricky texts, and the first N greedy tokens after each prompt, with llama.cpp's top 5 and
its own batch-vs-incremental noise at every step. Also the greedy tokens of llama.cpp's
other numerical configurations (the prompt token by token, flash attention, another x86
kernel set): llama.cpp's own runs disagree with each other where two logits are nearly
tied, and the tests need to know where. Output: engine/tests/fixtures/llama_cpp_reference.json
(small, committed), so CI never has to build llama.cpp.

Setup (two pinned builds of llama.cpp, ~9 min each on 2 cores):
    scripts/llama_builds.sh
Run (the AVX2 build writes the reference; the AVX-512 build adds its runs):
    .cache/llama-avx2/bin/python scripts/llama_reference.py [--models DIR] [--out FILE]
    .cache/llama-avx512/bin/python scripts/llama_reference.py --runs-only
"""

import argparse
import json
import os
import sys
from pathlib import Path

from reference_common import compact_json, llama_build

ROOT = Path(__file__).resolve().parent.parent

MODELS = [
    "qwen2.5-coder-0.5b-instruct.gguf",
    "smollm2-135m-instruct-q4_1.gguf",
]

# Greedy, deterministic settings. n_threads is fixed so a rerun on another machine takes
# the same code paths in ggml as far as possible.
N_CTX = 512
N_THREADS = 2
N_GREEDY = 32

# llama.cpp's knobs that move its logits by more than its near-ties: how the prompt is
# evaluated (one batch, or one token at a time as generation does) and flash attention.
# "batch" is llama.cpp's default and the reference the tests check step by step.
CONFIGS = {
    "batch": dict(n_batch=N_CTX),
    "token": dict(n_batch=1, n_ubatch=1),
    "flash": dict(n_batch=N_CTX, flash_attn=True),
}

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def chatml(user, system=QWEN_SYSTEM, assistant_prefix=""):
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n"
        f"<|im_start|>assistant\n{assistant_prefix}"
    )


M1_QUESTION = (
    "A 45-year-old man presents with crushing substernal chest pain radiating to the left "
    "arm for the past 30 minutes. ECG shows ST-segment elevation in leads II, III and aVF. "
    "Which coronary artery is most likely occluded?\n"
    "A. Left anterior descending artery\n"
    "B. Left circumflex artery\n"
    "C. Right coronary artery\n"
    "D. Left main coronary artery\n"
    "Return your final response within \\boxed{}."
)

PROMPTS = {
    "chatml_capital": chatml("What is the capital of France? Answer in one sentence."),
    "chatml_code": chatml("Write a Python function that returns the n-th Fibonacci number."),
    "m1_medical_mcq": chatml(M1_QUESTION, assistant_prefix="<|im_start|>think\n"),
    "plain_story": "The quick brown fox jumps over the lazy dog. Once upon a time, in a small village,",
    "plain_list": "Three common symptoms of iron-deficiency anemia are:\n1.",
    "code_python": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
}

TRICKY = {
    "accents": "Café naïve résumé — Ünïcödé façade, déjà vu, São Paulo, Zürich",
    "decomposed": "e\u0301 vs \u00e9, n\u0303 vs \u00f1",
    "cjk": "你好，世界！日本語のテキストです。한국어 텍스트",
    "emoji": "Hello 👋🏽 world 🌍🚀 family 👨‍👩‍👧 flag 🇫🇷 ❤️",
    "digits": "12345678 3.14159 1,000,000 2024-11-24 007 0x1F 1e-6 99.9%",
    "whitespace_runs": "a  b   c    d\t\te \t f      g",
    "newlines3": "\n\n\n",
    "crlf_indent": "line1\r\nline2\n\n  indented\n\t\ttabbed   \n",
    "specials_mid": "Hello<|im_end|>world<|im_start|>user\nhi<|endoftext|>bye",
    "special_adjacent": "<|im_start|><|im_start|>x<|im_end|>\n<|im_end|>",
    "tool_call": "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
    "contractions": "I'm sure you'll see they've done it; don't WE'LL IT'S o'clock",
    "leading_spaces": "   leading and trailing spaces   ",
    "empty": "",
    "single_space": " ",
    "arabic_hindi": "مرحبا بالعالم — नमस्ते दुनिया",
    "math_code": "x^2 + y_1 = {\\boxed{42}} // if (a<=b && c!=d) { return -1; }",
    "medical": "Pt c/o SOB, BP 140/90 mmHg, HbA1c 7.2%, Na+ 135 mEq/L; Rx: metoprolol 25mg PO BID.",
    "mixed_scripts": "Ελληνικά кириллица עברית ไทย",
    "long_word": "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "punct_runs": "Wait... what?!?! ---> ((nested)) [[x]] \"quoted\" 'single' `tick`",
}


def greedy(llm, tokens, n):
    """First n greedy tokens through llama.cpp's own sampler (temp 0, top_k 1)."""
    out = []
    for tok in llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(tok))
        if len(out) == n:
            break
    return out


def greedy_margins(llm, tokens, n):
    """The same decode by explicit argmax, recording at each step the top 5 tokens with
    their distance below the best logit: where a runner-up is within llama.cpp's own
    numerical noise (below), a correct implementation may legitimately pick it.

    Also returns llama.cpp's self-noise for this prompt: the largest logit difference
    between evaluating prompt + generated tokens token by token (as generation does) and
    in one batch. ggml quantizes activations per matmul, so last-bit float differences in
    its own batched and single-token kernels become whole quantization steps."""
    import numpy as np

    def last_logits():
        # Without logits_all, llama.cpp keeps only the last position's logits.
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)

    llm.reset()
    llm.eval(tokens)
    out, top = [], []
    for i in range(n):
        logits = last_logits()
        order = np.argsort(-logits, kind="stable")[:5]
        out.append(int(order[0]))
        top.append([[int(t), round(float(logits[order[0]] - logits[t]), 5)] for t in order])
        if i + 1 < n:
            llm.eval([int(order[0])])
    incremental = last_logits()
    llm.reset()
    llm.eval(tokens + out[:-1])
    self_noise = float(np.abs(last_logits() - incremental).max())
    return out, top, round(self_noise, 5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("M1_TEST_MODELS", str(ROOT / ".cache" / "models")))
    ap.add_argument("--out", default=str(ROOT / "engine" / "tests" / "fixtures" / "llama_cpp_reference.json"))
    ap.add_argument("--runs-only", action="store_true", help="add this build's greedy runs to an existing fixture")
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    isa, info = llama_build()
    if args.runs_only:
        result = json.loads(Path(args.out).read_text(encoding="utf-8"))
    else:
        result = {
            "generator": "scripts/llama_reference.py",
            "llama_cpp_python": llama_cpp.__version__,
            "reference_build": isa,
            "settings": {
                "n_ctx": N_CTX,
                "n_threads": N_THREADS,
                "n_greedy": N_GREEDY,
                "temp": 0.0,
                "top_k": 1,
                "repeat_penalty": 1.0,
                "tokenize": "add_bos=True, special=True",
                "runs": {name: {k: v for k, v in kw.items()} for name, kw in CONFIGS.items()},
            },
            "builds": {},
            "models": {},
        }
    result["builds"][isa] = info
    for name in MODELS:
        path = Path(args.models) / name
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            sys.exit(1)
        for config, kw in CONFIGS.items():
            llm = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=N_THREADS, seed=42, verbose=False, **kw)
            tok = lambda text, llm=llm: [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)]
            reference = not args.runs_only and config == "batch"
            if reference:
                result["models"][name] = {"n_vocab": llm.n_vocab(), "bos": llm.token_bos(), "eos": llm.token_eos(), "prompts": {}, "tricky": {}}
            model = result["models"][name]
            for key, text in PROMPTS.items():
                ids = tok(text)
                gen = greedy(llm, ids, N_GREEDY)
                if reference:
                    gen2, top, self_noise = greedy_margins(llm, ids, N_GREEDY)
                    if gen2 != gen:
                        print(f"{name} {key}: sampler and argmax disagree: {gen} vs {gen2}", file=sys.stderr)
                    model["prompts"][key] = {"text": text, "ids": ids, "greedy": gen, "top5": top, "self_noise": self_noise, "runs": {}}
                case = model["prompts"][key]
                assert case["ids"] == ids, f"{name} {key}: this build tokenizes differently"
                case["runs"][f"{isa}/{config}"] = gen
                print(f"{name} {key} {isa}/{config}: greedy {llm.detokenize(gen)[:60]!r}", file=sys.stderr)
            if reference:
                for key, text in TRICKY.items():
                    model["tricky"][key] = {"text": text, "ids": tok(text)}
            del llm

    Path(args.out).write_text(compact_json(result) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
