"""How long each `pocketlm inspect` view takes (BENCHMARKS.md), and the pictures of docs/inspect.md.

    python benchmarks/inspect_views.py [--model smollm2-135m-instruct] [--tokens 64] [--runs 3]
        [--threads 1] [--images docs/images]

Times each view on a text of exactly --tokens tokens (the model already loaded,
as on a server after its first inspect request): the computation alone, then
with its picture. The median of --runs is printed. With --images, the pictures
of the last run are written there (what docs/inspect.md shows). One torch thread by
default: on a shared 2-core machine, torch's multi-threaded regions stall on each other.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from pocketlm.engine.params import SamplingParams
from pocketlm.inspection import attention, load, model_positions, next_token, pictures, sinusoidal
from pocketlm.inspection.interactive import bertviz_html
from pocketlm.inspection.tokens import compare, named_tokenizer

TEXT = (
    "Learners want to see what the model sees: the tokens of a sentence, where each token sits, which earlier "
    "tokens every head looks at, and how the next word is chosen. The capital of France is Paris, and the "
    "capital of Brazil is Brasília; a ação começa 🙂. "
) * 4


def text_of(tokenizer, n: int) -> str:
    """The first ``n`` tokens of TEXT, as text that tokenizes back to ``n`` tokens."""
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    for k in range(n, 0, -1):  # cut where decoding and re-encoding agree (not inside a character)
        text = tokenizer.decode(ids[:k])
        if len(tokenizer(text)["input_ids"]) == n:
            return text
    raise SystemExit(f"could not make a text of {n} tokens")


def timed(runs: int, fn):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    subject = load(args.model)
    print(f"loaded {subject.name} for inspection (torch, eager attention) in {time.perf_counter() - start:.1f} s")
    text = text_of(subject.tokenizer, args.tokens)
    prompt = text_of(subject.tokenizer, args.tokens)
    params = SamplingParams(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.1, seed=1)
    tokenizers = {subject.name: subject.tokenizer, "gpt2": named_tokenizer("gpt2"), "bert": named_tokenizer("bert")}
    views = {
        "tokens (3 tokenizers)": (lambda: compare(text, tokenizers), pictures.tokens_png),
        "positions (64 x 128)": (
            lambda: (sinusoidal(64, 128), model_positions(subject, 64)),
            lambda r: pictures.positions_png(*r),
        ),
        "attention (all layers x heads)": (lambda: attention(subject, text), pictures.attention_grid_png),
        "attention, one head": (
            lambda: attention(subject, text, layers=[3], heads=[2]),
            lambda a: pictures.attention_head_png(a, 3, 2),
        ),
        "attention, bertviz head_view": (lambda: attention(subject, text), lambda a: bertviz_html(a, "head")),
        "next token + logit lens": (lambda: next_token(subject, prompt, params), pictures.next_png),
    }
    print(f"\n{args.tokens} tokens, median of {args.runs} runs\n")
    print("| view | computation | with its picture |\n| --- | ---: | ---: |")
    outputs = {}
    for name, (compute, draw) in views.items():
        seconds, result = timed(args.runs, compute)
        total, outputs[name] = timed(args.runs, lambda draw=draw, compute=compute: draw(compute()))
        print(f"| {name} | {seconds:.2f} s | {total:.2f} s |")
    if args.images:
        # docs/inspect.md's pictures: the seed's sentence for tokens, a short text for attention (readable labels)
        short = "The capital of France is Paris, and the capital of Brazil is"
        amap = attention(subject, short, layers=list(range(0, subject.n_layers, 3)))
        written = [
            pictures.write_png(
                pictures.tokens_png(compare("I read a good novel. Uma ação 🙂", tokenizers)),
                args.images / "inspect-tokens.png",
            ),
            pictures.write_png(outputs["positions (64 x 128)"], args.images / "inspect-positions.png"),
            pictures.write_png(pictures.attention_grid_png(amap), args.images / "inspect-attention-grid.png"),
            pictures.write_png(pictures.attention_head_png(amap, 3, 2), args.images / "inspect-attention-head.png"),
            pictures.write_png(
                pictures.next_png(next_token(subject, "The capital of France is", params)),
                args.images / "inspect-next.png",
            ),
        ]
        for path in written:
            print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
