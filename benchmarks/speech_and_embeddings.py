"""Speech recognition and embeddings: how well Whisper base hears pocketlm's voices, and how fast both run.

    python benchmarks/speech_and_embeddings.py             # everything below; writes speech_results.json
    python benchmarks/speech_and_embeddings.py --wer-only  # only the word error rates (no server)
    python benchmarks/speech_and_embeddings.py --rescore   # score the saved transcripts again

- word error rate (WER): the sentences of benchmarks/data/speech_en.txt and speech_pt.txt (50
  each, written for this benchmark, so no recognizer was trained on them) are spoken by the joe
  voice (English) and the joe-pt-br voice (Brazilian Portuguese), and Whisper base writes down what
  it hears, told the language. WER = (substituted + deleted + inserted words) / words said, after
  lower-casing and dropping punctuation; and the words said that were heard right (the hits of
  the same alignment), which, unlike WER, a hallucinated repetition does not swamp. Also: how
  often Whisper's own language detection names the language spoken (what picks the answer's voice
  in the page's Talk mode).
- real-time factor of POST /v1/audio/transcriptions over HTTP on 127.0.0.1, at 1 and 4 concurrent
  requests: seconds of work per second of audio, per request (what one speaker waits) and for the
  whole run (wall time / audio heard; below 1 the server keeps up with that many speakers).
- embeddings per second of POST /v1/embeddings (all-minilm-l6-v2), one sentence per request and 32
  per request, at 1 and 4 concurrent requests.

Run it on a quiet machine: the numbers are CPU-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
import unicodedata
from pathlib import Path

import httpx

from peers import RunningServer, specs
from tasks import closed_loop

HERE = Path(__file__).parent
LANGUAGES = {"en": "joe", "pt": "joe-pt-br"}  # language -> the voice that speaks it


def sentences(language: str) -> list[str]:
    """The benchmark's sentences in ``language`` (en or pt)."""
    lines = (HERE / "data" / f"speech_{language}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (letters with their accents, digits, inner apostrophes kept)."""
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    return re.findall(r"[\w']+", text.replace("-", " "))


def alignment(said: str, heard: str) -> tuple[int, int]:
    """(errors, hits) of the cheapest alignment of the words said with the words heard (Levenshtein): errors are
    substitutions + deletions + insertions, hits the words said that were heard as they were."""
    ref, hyp = words(said), words(heard)
    # each cell: (errors, -hits), so that among alignments of equal cost the one with the most hits wins
    row = [(j, 0) for j in range(len(hyp) + 1)]
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], (i, 0)
        for j, h in enumerate(hyp, 1):
            match = (previous[0] + (r != h), previous[1] - (r == h))
            previous, row[j] = row[j], min((row[j][0] + 1, row[j][1]), (row[j - 1][0] + 1, row[j - 1][1]), match)
    return row[-1][0], -row[-1][1]


def word_errors(said: str, heard: str) -> int:
    return alignment(said, heard)[0]


def word_error_rate(said: list[str], heard: list[str]) -> float:
    """Errors over every sentence / words said in all."""
    return sum(word_errors(s, h) for s, h in zip(said, heard)) / sum(len(words(s)) for s in said)


def scores(said: list[str], heard: list[str]) -> dict:
    """The word error rate, and the share of words said that were heard right: WER alone counts every word a
    hallucinated loop adds, so a recognizer that gets half the words and then repeats one is near 100%."""
    aligned = [alignment(s, h) for s, h in zip(said, heard)]
    n = sum(len(words(s)) for s in said)
    return {
        "sentences": len(said),
        "words": n,
        "wer": sum(e for e, _ in aligned) / n,
        "words_heard_right": sum(hit for _, hit in aligned) / n,
        "sentences_heard_exactly": sum(e == 0 for e, _ in aligned),
    }


def measure_wer(language: str, limit: int | None = None) -> dict:
    """Speak every sentence with the language's voice, let Whisper hear it; the WER and each transcript."""
    from pocketlm.tasks import speech, transcription

    speaker, recognizer = speech.speaker(), transcription.recognizer()
    said = sentences(language)[:limit]
    heard, detected, audio_s, work_s = [], [], 0.0, 0.0
    for sentence in said:
        samples = speaker.synthesize(sentence, LANGUAGES[language])
        audio = transcription.decode(speech.encode(samples, speaker.sample_rate, "wav"))
        start = time.perf_counter()
        options = transcription.Options("transcribe", language, None, 0.0, False)
        _, segments = recognizer.listen(audio, options)
        heard.append(transcription.text_of(list(segments)))
        work_s += time.perf_counter() - start
        audio_s += len(audio) / transcription.SAMPLE_RATE
        detected.append(recognizer.model.detect_language(audio)[0])
    return {
        "language": language,
        "voice": LANGUAGES[language],
        **scores(said, heard),
        "language_detected": sum(d == language for d in detected) / len(said),
        "detected_as": {d: detected.count(d) for d in sorted(set(detected))},
        "audio_s": audio_s,
        "rtf_in_process": work_s / audio_s,
        "transcripts": [{"said": s, "heard": h} for s, h in zip(said, heard)],
    }


def clips(n: int) -> list[tuple[bytes, float]]:
    """``n`` WAV clips of two English sentences each, in the joe voice, with their lengths in seconds."""
    from pocketlm.tasks import speech

    speaker, said = speech.speaker(), sentences("en")
    out = []
    for i in range(n):
        samples = speaker.synthesize(f"{said[2 * i % len(said)]} {said[(2 * i + 1) % len(said)]}", "joe")
        out.append((speech.encode(samples, speaker.sample_rate, "wav"), len(samples) / speaker.sample_rate))
    return out


async def bench_transcription(url: str, concurrency: int, audio: list[tuple[bytes, float]]) -> dict:
    async def send(client, clip):
        data, seconds = clip
        start = time.perf_counter()
        r = await client.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("clip.wav", data, "audio/wav")},
            data={"model": "whisper-1", "language": "en"},
        )
        r.raise_for_status()
        return time.perf_counter() - start, seconds

    results, wall = await closed_loop(concurrency, audio, send)
    heard = sum(s for _, s in results)
    return {
        "concurrency": concurrency,
        "requests": len(audio),
        "audio_s": heard,
        "wall_s": wall,
        "rtf_per_request": sum(e / s for e, s in results) / len(results),
        "rtf_aggregate": wall / heard,
    }


async def bench_embeddings(url: str, concurrency: int, per_request: int, n_inputs: int) -> dict:
    said = sentences("en") + sentences("pt")
    texts = [said[i % len(said)] for i in range(n_inputs)]
    bodies = [{"input": texts[i : i + per_request]} for i in range(0, n_inputs, per_request)]

    async def send(client, body):
        r = await client.post(f"{url}/v1/embeddings", json=body)
        r.raise_for_status()
        return len(r.json()["data"])

    done, wall = await closed_loop(concurrency, bodies, send)
    return {
        "concurrency": concurrency,
        "inputs_per_request": per_request,
        "inputs": sum(done),
        "wall_s": wall,
        "embeddings_per_s": sum(done) / wall,
    }


async def serve_and_measure(url: str, args) -> dict:
    out: dict = {"transcription": [], "embeddings": []}
    audio = clips(args.transcription_requests)
    warm = clips(1)
    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:  # load both models first
        files = {"file": ("warm.wav", warm[0][0], "audio/wav")}
        (await client.post(f"{url}/v1/audio/transcriptions", files=files)).raise_for_status()
        (await client.post(f"{url}/v1/embeddings", json={"input": "Warm up."})).raise_for_status()
    for c in (1, 4):
        row = await bench_transcription(url, c, audio)
        out["transcription"].append(row)
        print(
            f"transcription c={c}: real-time factor {row['rtf_per_request']:.3f} per request, "
            f"{row['rtf_aggregate']:.3f} aggregate ({row['audio_s']:.0f} s of audio in {row['wall_s']:.1f} s)"
        )
    for per_request in (1, 32):
        for c in (1, 4):
            n = args.embedding_inputs if per_request > 1 else args.embedding_inputs // 4
            row = await bench_embeddings(url, c, per_request, n)
            out["embeddings"].append(row)
            print(f"embeddings c={c}, {per_request} per request: {row['embeddings_per_s']:.1f} embeddings/s")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wer-only", action="store_true", help="only the word error rates, in this process")
    ap.add_argument("--sentences", type=int, default=None, help="fewer sentences per language (a quick look)")
    ap.add_argument("--transcription-requests", type=int, default=12)
    ap.add_argument("--embedding-inputs", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=HERE / "speech_results.json")
    ap.add_argument("--rescore", action="store_true", help="score the transcripts already in --out again, only")
    args = ap.parse_args(argv)
    if args.rescore:
        results = json.loads(args.out.read_text())
        for row in results["wer"]:
            row |= scores([t["said"] for t in row["transcripts"]], [t["heard"] for t in row["transcripts"]])
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        return

    load_before = os.getloadavg()[0]
    results: dict = {"wer": []}
    for language in LANGUAGES:
        row = measure_wer(language, args.sentences)
        results["wer"].append(row)
        print(
            f"{row['voice']}: WER {row['wer']:.1%} over {row['words']} words, {row['words_heard_right']:.1%} heard "
            f"right; {row['sentences_heard_exactly']} of "
            f"{row['sentences']} sentences exact; language detected {row['language_detected']:.0%} "
            f"({row['detected_as']})"
        )
    if not args.wer_only:
        from pocketlm.models import resolve

        spec = specs(resolve(None).path, None, None, model="smollm2-135m-instruct")["pocketlm"]
        with RunningServer(spec, Path("/tmp/pocketlm-bench-logs")) as server:
            results |= asyncio.run(serve_and_measure(server.base_url, args))
            results["server"] = spec.command(server.port)
            results["peak_rss_mb"] = server.peak_rss_mb()
    results["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()}
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
