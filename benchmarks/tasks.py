"""Throughput of the neighbour tasks on one `pocketlm serve`, over real HTTP on 127.0.0.1.

    python benchmarks/tasks.py                 # translation, speech, then text generation at c=16
    python benchmarks/tasks.py --skip-generation

- translation: POST /translate (LibreTranslate's shape), each request a text of 8 English
  sentences to Portuguese; reported as sentences/s over the run's wall time, at 1 and 4
  concurrent clients.
- speech: POST /v1/audio/speech (wav), each request ~2 sentences; the real-time factor is
  synthesis time / audio duration (below 1: faster than real time), per request (mean) and
  for the whole run (wall time / audio produced), at 1 and 4 concurrent clients.
- text generation: the serving benchmark's load (loadgen, 100-token Shakespeare prompts, 64
  new tokens by default, ignore_eos) at 16 concurrent streams, measured before any task model is loaded
  and again once translation and speech are loaded, so their resident models' cost shows.

    python benchmarks/tasks.py --pt-phonemes    # how much of Portuguese the English voice was trained on

Writes benchmarks/tasks_results.json. Run it on a quiet machine: the numbers are CPU-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import time
import wave
from pathlib import Path

import httpx

from loadgen import run_load
from peers import RunningServer, specs
from prompts import GGUFTokenizer, build_prompts

HERE = Path(__file__).parent


def corpus_text() -> str:
    """The text prompts come from (the dataset shakespeare:valid, fetched once and cached)."""
    from pocketlm import datasets

    return datasets.resolve("shakespeare:valid").read_text(encoding="utf-8")


def english_sentences(n: int) -> list[str]:
    """Plain sentences of 30-160 characters from the corpus (a pure function of the file)."""
    text = re.sub(r"\s+", " ", corpus_text())
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
    found = [s for s in found if 30 <= len(s) <= 160 and "===" not in s and not s.isupper()]
    return found[:n]


async def closed_loop(concurrency: int, bodies: list[dict], send) -> tuple[list, float]:
    """`concurrency` clients sending the bodies in order, each its next when the last ends."""
    results, next_index = [], 0

    async def client_loop(client):
        nonlocal next_index
        while next_index < len(bodies):
            body = bodies[next_index]
            next_index += 1
            results.append(await send(client, body))

    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(limits=limits, timeout=600, trust_env=False) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return results, time.perf_counter() - start


async def bench_translation(url: str, concurrency: int, n_requests: int, sentences: list[str]) -> dict:
    per = 8
    bodies = [
        {"q": " ".join(sentences[(i * per + k) % len(sentences)] for k in range(per)), "source": "en", "target": "pt"}
        for i in range(n_requests)
    ]

    async def send(client, body):
        start = time.perf_counter()
        r = await client.post(f"{url}/translate", json=body)
        r.raise_for_status()
        return time.perf_counter() - start

    latencies, wall = await closed_loop(concurrency, bodies, send)
    return {
        "concurrency": concurrency,
        "requests": n_requests,
        "sentences": n_requests * per,
        "wall_s": wall,
        "sentences_per_s": n_requests * per / wall,
        "mean_latency_ms": 1000 * sum(latencies) / len(latencies),
    }


async def bench_speech(url: str, concurrency: int, n_requests: int, sentences: list[str]) -> dict:
    bodies = [
        {
            "model": "tts-1",
            "voice": "joe",
            "response_format": "wav",
            "input": f"{sentences[2 * i % len(sentences)]} {sentences[(2 * i + 1) % len(sentences)]}",
        }
        for i in range(n_requests)
    ]

    async def send(client, body):
        start = time.perf_counter()
        r = await client.post(f"{url}/v1/audio/speech", json=body)
        r.raise_for_status()
        elapsed = time.perf_counter() - start
        with wave.open(io.BytesIO(r.content)) as w:
            audio_s = w.getnframes() / w.getframerate()
        return elapsed, audio_s

    results, wall = await closed_loop(concurrency, bodies, send)
    audio = sum(a for _, a in results)
    return {
        "concurrency": concurrency,
        "requests": n_requests,
        "audio_s": audio,
        "wall_s": wall,
        "rtf_per_request": sum(e / a for e, a in results) / len(results),  # what one listener waits
        "rtf_aggregate": wall / audio,
    }  # what the server delivers: audio seconds per second of work


async def bench_generation(url: str, prompts: list[str], tokenizer, args) -> dict:
    from loadgen import Target

    summary = await run_load(
        Target(url, "openai", None, {"ignore_eos": True}),
        prompts,
        concurrency=16,
        n_requests=args.generation_requests,
        max_tokens=args.generation_max_tokens,
        time_limit_s=args.generation_time_limit,
        count=tokenizer.count,
    )
    return {
        k: summary[k] for k in ("completed", "failed", "cut", "duration_s", "output_throughput", "request_throughput")
    } | {"tpot_ms_p50": summary["tpot_ms"]["p50"], "ttft_ms_p50": summary["ttft_ms"]["p50"]}


async def run(args, url: str) -> dict:
    sentences = english_sentences(400)
    out: dict = {"translation": [], "speech": [], "generation": {}}
    tokenizer = prompts = None
    if not args.skip_generation:
        from pocketlm.models import resolve

        tokenizer = GGUFTokenizer(resolve(None).path)
        prompts = build_prompts(tokenizer, n=64, n_tokens=100)
        out["generation"]["before_tasks"] = await bench_generation(url, prompts, tokenizer, args)
        print("generation c=16, no task model loaded:", json.dumps(out["generation"]["before_tasks"]))
    # Load both task models first, so load time is not counted as throughput.
    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        (
            await client.post(f"{url}/translate", json={"q": "Warm up.", "source": "en", "target": "pt"})
        ).raise_for_status()
        (
            await client.post(
                f"{url}/v1/audio/speech", json={"input": "Warm up.", "voice": "joe", "response_format": "wav"}
            )
        ).raise_for_status()
    for c in (1, 4):
        row = await bench_translation(url, c, args.translation_requests, sentences)
        out["translation"].append(row)
        print(
            f"translation c={c}: {row['sentences_per_s']:.1f} sentences/s, "
            f"mean latency {row['mean_latency_ms']:.0f} ms / 8 sentences"
        )
    for c in (1, 4):
        row = await bench_speech(url, c, args.speech_requests, sentences)
        out["speech"].append(row)
        print(
            f"speech c={c}: real-time factor {row['rtf_per_request']:.3f} per request, "
            f"{row['rtf_aggregate']:.3f} aggregate "
            f"({row['audio_s']:.0f} s of audio in {row['wall_s']:.1f} s)"
        )
    if not args.skip_generation:
        out["generation"]["with_tasks_loaded"] = await bench_generation(url, prompts, tokenizer, args)
        print("generation c=16, translation and speech loaded:", json.dumps(out["generation"]["with_tasks_loaded"]))
    return out


def pt_phoneme_coverage(n_sentences: int = 150) -> dict:
    """Share of the phoneme symbols of Portuguese text (espeak-ng pt-br) that English text (en-us) also produces.

    The Joe voice learned only the symbols its English training text produced; the others it
    renders from untrained embeddings. The Portuguese text is the corpus translated by the
    translation task, the English text is the corpus itself.
    """
    from collections import Counter

    from pocketlm.tasks import speech, translation

    speaker = speech.speaker()
    english = corpus_text()[:30_000]
    seen = set(speaker.phonemes(english, "joe"))
    sentences = english_sentences(n_sentences)
    portuguese = " ".join(translation.translator().translate_many(sentences, "en", "pt"))
    counts = Counter(speaker.phonemes(portuguese, "joe-pt-br"))
    total = sum(counts.values())
    unseen = {p: c for p, c in counts.most_common() if p not in seen}
    return {
        "sentences": len(sentences),
        "pt_phoneme_tokens": total,
        "covered_share": 1 - sum(unseen.values()) / total,
        "unseen": unseen,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--translation-requests", type=int, default=24)
    ap.add_argument("--speech-requests", type=int, default=12)
    ap.add_argument("--generation-requests", type=int, default=48)
    ap.add_argument("--generation-max-tokens", type=int, default=64)
    ap.add_argument(
        "--generation-time-limit", type=float, default=600.0, help="seconds; requests still running are cut"
    )
    ap.add_argument("--skip-generation", action="store_true", help="only the task models")
    ap.add_argument(
        "--pt-phonemes", action="store_true", help="only the Portuguese phoneme coverage of the voice (no server)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="the server's --threads (llama.cpp); 1 keeps a busy machine from stalling its thread barriers",
    )
    ap.add_argument("--out", type=Path, default=HERE / "tasks_results.json")
    args = ap.parse_args(argv)
    if args.pt_phonemes:
        print(json.dumps(pt_phoneme_coverage(), ensure_ascii=False, indent=2))
        return

    from pocketlm.models import resolve

    extra = {"pocketlm": ["--threads", str(args.threads)]} if args.threads else None
    spec = specs(resolve(None).path, None, extra, model="smollm2-135m-instruct")["pocketlm"]
    import os

    load_before = os.getloadavg()[0]  # other work on the machine makes every number here smaller
    with RunningServer(spec, Path("/tmp/pocketlm-bench-logs")) as server:
        results = asyncio.run(run(args, server.base_url))
        results["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()}
        results["server"] = spec.command(server.port)
        results["peak_rss_mb"] = server.peak_rss_mb()
    print(f"server peak RSS: {results['peak_rss_mb']:.0f} MB")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
