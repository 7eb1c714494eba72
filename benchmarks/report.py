"""Turn a run's results (run.py) into BENCHMARKS.md and the serving chart."""

from __future__ import annotations

import json
import os
from pathlib import Path

from peers import BOTH_DRAFTING, SAME_FILE  # each pocketlm configuration and the llama-server on its file


def _workload(cell: dict) -> str:
    return cell.get("workload", "completions")  # runs before the chat workload existed


def _workloads(results: dict) -> list[str]:
    return results["settings"].get("workloads", ["completions"])


def _cells(results: dict, workload: str = "completions") -> dict[tuple[str, int], dict]:
    return {(c["server"], c["concurrency"]): c for c in results["cells"] if "summary" in c and _workload(c) == workload}


def _servers(results: dict, workload: str | None = None) -> list[tuple[str, str]]:
    seen = {}
    for c in results["cells"]:
        if workload is None or _workload(c) == workload:
            seen.setdefault(c["server"], c["label"])
    return list(seen.items())


def _f(value, fmt="{:.0f}", scale=1.0) -> str:
    return "—" if value is None else fmt.format(value * scale)


def write_chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = results["settings"]["concurrency"]
    workloads = _workloads(results)
    fig, axes = plt.subplots(len(workloads), 2, figsize=(11, 4.2 * len(workloads)), squeeze=False)
    for (ax_tps, ax_ttft), workload in zip(axes, workloads):
        cells = _cells(results, workload)
        for name, label in _servers(results, workload):
            xs = [c for c in levels if (name, c) in cells]
            if not xs:
                continue
            ax_tps.plot(xs, [cells[name, c]["summary"]["output_throughput"] for c in xs], marker="o", label=label)
            ttft = [(c, cells[name, c]["summary"]["ttft_ms"]["p50"]) for c in xs]
            ax_ttft.plot([c for c, t in ttft if t], [t for c, t in ttft if t], marker="o", label=label)
        for ax, title in (
            (ax_tps, "output tokens/s (higher is better)"),
            (ax_ttft, "p50 time to first token, ms (lower is better)"),
        ):
            ax.set_xscale("log", base=2)
            ax.set_xticks(levels, [str(c) for c in levels])
            ax.set_xlabel("concurrent clients")
            ax.set_title(f"{workload}: {title}", fontsize=10)
            ax.grid(alpha=0.3)
        ax_ttft.set_yscale("log")
        ax_tps.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"{Path(results['model']).stem}, {m['cores']}-core {m['cpu']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(results: dict, workload: str = "completions") -> list[str]:
    rows = [
        "| c | server | done / failed / cut | req/s | output tok/s | TTFT mean / p50 / p99 (ms) | ITL p50 / p99 (ms) "
        "| TPOT mean / p50 / p99 (ms) | E2E p50 / p99 (s) | tokens/req | counted by | peak RSS (MB) "
        "| ready / first reply (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in results["cells"]:
        if _workload(cell) != workload:
            continue
        c, label = cell["concurrency"], cell["label"]
        if "summary" not in cell:
            rows.append(f"| {c} | {label} | failed to run: {cell['error'].splitlines()[0][:120]} |" + " |" * 10)
            continue
        s = cell["summary"]
        t, i, p, e = s["ttft_ms"], s["itl_ms"], s["tpot_ms"], s["e2e_ms"]
        rows.append(
            f"| {c} | {label} | {s['completed']} / {s['failed']} / {s['cut']} | {s['request_throughput']:.2f} "
            f"| **{s['output_throughput']:.1f}** | {_f(t['mean'])} / {_f(t['p50'])} / {_f(t['p99'])} "
            f"| {_f(i['p50'], '{:.1f}')} / {_f(i['p99'], '{:.1f}')} "
            f"| {_f(p['mean'], '{:.1f}')} / {_f(p['p50'], '{:.1f}')} / {_f(p['p99'], '{:.1f}')} "
            f"| {_f(e['p50'], '{:.2f}', 1e-3)} / {_f(e['p99'], '{:.2f}', 1e-3)} | {s['mean_output_tokens']:.1f} "
            f"| {s['token_source']} | {cell['peak_rss_mb']:.0f} "
            f"| {cell['ready_s']:.1f} / {_f(cell.get('first_reply_s'), '{:.1f}')} |"
        )
    return rows


def _mine(results: dict) -> list[str]:
    """The pocketlm configurations measured in this run (the default and its variants)."""
    return [n for n, _ in _servers(results) if n.startswith("pocketlm")]


def _ratios(results: dict, mine_name: str, workload: str = "completions") -> list[str]:
    cells = _cells(results, workload)
    peers = [(n, label) for n, label in _servers(results, workload) if not n.startswith("pocketlm")]
    rows = [
        "| c | " + " | ".join(f"vs {label}: tok/s ×, TTFT p50 ×" for _, label in peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for c in results["settings"]["concurrency"]:
        mine = cells.get((mine_name, c))
        out = []
        for name, _ in peers:
            other = cells.get((name, c))
            if not mine or not other:
                out.append("—")
                continue
            a, b = mine["summary"], other["summary"]
            tps = a["output_throughput"] / b["output_throughput"] if b["output_throughput"] else None
            ttft = (a["ttft_ms"]["p50"] / b["ttft_ms"]["p50"]) if a["ttft_ms"]["p50"] and b["ttft_ms"]["p50"] else None
            out.append(f"{_f(tps, '{:.2f}')}×, {_f(ttft, '{:.2f}')}×")
        rows.append(f"| {c} | " + " | ".join(out) + " |")
    return rows


def _targets(results: dict, mine: str) -> list[str]:
    """The issue's targets, checked against this run (— where this run lacks the data)."""
    cells = _cells(results)

    def get(server, c, *keys):
        cell = cells.get((server, c))
        if cell is None:
            return None
        value = cell
        for k in keys:
            value = value[k]
        return value

    def ratio(c, peer):
        a, b = get(mine, c, "summary", "output_throughput"), get(peer, c, "summary", "output_throughput")
        return a / b if a is not None and b else None

    rss = [c["peak_rss_mb"] for c in results["cells"] if c["server"] == mine and "peak_rss_mb" in c]
    ready = [c["first_reply_s"] for c in results["cells"] if c["server"] == mine and c.get("first_reply_s") is not None]
    ttft1, ttft1_peer = get(mine, 1, "summary", "ttft_ms", "p50"), get("llama-cpp", 1, "summary", "ttft_ms", "p50")
    checks = [
        ("c=1 output tok/s ≥ 1.0× llama-cpp-python", ratio(1, "llama-cpp"), 1.0, "{:.2f}×", True),
        (
            "c=1 TTFT p50 no worse than llama-cpp-python (pocketlm ÷ peer)",
            ttft1 / ttft1_peer if ttft1 and ttft1_peer else None,
            1.0,
            "{:.2f}×",
            False,
        ),
        ("c=16 output tok/s ≥ 3× llama-cpp-python", ratio(16, "llama-cpp"), 3.0, "{:.2f}×", True),
        ("c=16 output tok/s ≥ 1.5× transformers serve", ratio(16, "transformers"), 1.5, "{:.2f}×", True),
        ("c=16 output tok/s ≥ 10× Flask app", ratio(16, "flask"), 10.0, "{:.2f}×", True),
        ("c=16 output tok/s ≥ 400", get(mine, 16, "summary", "output_throughput"), 400.0, "{:.0f}", True),
        ("c=16 TTFT p99 ≤ 1000 ms", get(mine, 16, "summary", "ttft_ms", "p99"), 1000.0, "{:.0f} ms", False),
        ("peak RSS ≤ 500 MB (max over levels)", max(rss) if rss else None, 500.0, "{:.0f} MB", False),
        (
            "ready to serve ≤ 3 s after start: first reply (max over starts)",
            max(ready) if ready else None,
            3.0,
            "{:.1f} s",
            False,
        ),
    ]
    rows = ["| target | measured | met |", "|---|---|---|"]
    for name, value, bound, fmt, at_least in checks:
        met = "—" if value is None else ("yes" if (value >= bound if at_least else value <= bound) else "**no**")
        rows.append(f"| {name} | {_f(value, fmt)} | {met} |")
    return rows


def _ratio(a, b):
    return a / b if a is not None and b else None


def _vs_llama_server(results: dict, mine: str, peer: str) -> list[str]:
    """pocketlm ÷ llama-server at each (workload, level) of this run: the issue-17 ratios."""
    rows = [
        "| workload | c | output tok/s (pocketlm / llama-server) | tok/s × | TTFT p50 × | TTFT p99 × "
        "| TPOT p50 × | ITL p50 × | ITL p99 × | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in _workloads(results):
        cells = _cells(results, workload)
        for c in results["settings"]["concurrency"]:
            a, b = cells.get((mine, c)), cells.get((peer, c))
            if not a or not b:
                continue
            sa, sb = a["summary"], b["summary"]

            def x(k, q, sa=sa, sb=sb):
                return _f(_ratio(sa[k][q], sb[k][q]), "{:.2f}×")

            rows.append(
                f"| {workload} | {c} | {sa['output_throughput']:.1f} / {sb['output_throughput']:.1f} "
                f"| **{_f(_ratio(sa['output_throughput'], sb['output_throughput']), '{:.2f}×')}** "
                f"| {x('ttft_ms', 'p50')} | {x('ttft_ms', 'p99')} | {x('tpot_ms', 'p50')} "
                f"| {x('itl_ms', 'p50')} | {x('itl_ms', 'p99')} "
                f"| {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} |"
            )
    return rows


def _targets_17(results: dict, mine: str, peer: str) -> list[str]:
    """Issue 17's targets against llama-server on the same file, same run."""
    comp, chat = _cells(results, "completions"), _cells(results, "chat")

    def tps(cells, c):
        a, b = cells.get((mine, c)), cells.get((peer, c))
        return _ratio(a and a["summary"]["output_throughput"], b and b["summary"]["output_throughput"])

    a, b = chat.get((mine, 16)), chat.get((peer, 16))
    p99 = (a["summary"]["ttft_ms"]["p99"], b["summary"]["ttft_ms"]["p99"]) if a and b else None
    rss = [c["peak_rss_mb"] for c in results["cells"] if c["server"] == mine and "peak_rss_mb" in c]
    rss_peer = [c["peak_rss_mb"] for c in results["cells"] if c["server"] == peer and "peak_rss_mb" in c]
    checks = [
        ("completions c=1 output tok/s ≥ 1.0× llama-server", tps(comp, 1), 1.0, "{:.2f}×", True),
        ("completions c=16 output tok/s ≥ 1.0× llama-server", tps(comp, 16), 1.0, "{:.2f}×", True),
        ("chat c=16 output tok/s ≥ 1.0× llama-server", tps(chat, 16), 1.0, "{:.2f}×", True),
        (
            "chat c=16 TTFT p99 ≤ llama-server's (pocketlm ÷ llama-server)",
            _ratio(*p99) if p99 else None,
            1.0,
            "{:.2f}×",
            False,
        ),
        (
            "peak RSS ≤ llama-server's (max over levels, pocketlm ÷ llama-server)",
            _ratio(max(rss), max(rss_peer)) if rss and rss_peer else None,
            1.0,
            "{:.2f}×",
            False,
        ),
    ]
    rows = ["| target | measured | met |", "|---|---|---|"]
    for name, value, bound, fmt, at_least in checks:
        met = "—" if value is None else ("yes" if (value >= bound if at_least else value <= bound) else "**no**")
        rows.append(f"| {name} | {_f(value, fmt)} | {met} |")
    return rows


def _rel(target: Path, start: Path) -> str:
    return os.path.relpath(target, start)


def _busy_warning(busy: list[float]) -> list[str]:
    """A run on a busy machine measures the other work as much as the servers: say so up front."""
    if not busy or max(busy) < 0.2:
        return []
    return [
        f"> **Warning: the machine was busy**: up to {max(busy):.0%} of the CPU was in use by other work just "
        "before a measurement. These numbers measure contention, not the servers; rerun on a quiet machine.",
        "",
    ]


def _chat_line(results: dict) -> str | None:
    if "chat" not in _workloads(results):
        return None
    s, t = results["settings"], results["chat_tokens"]
    return (
        f"- Workload `chat`: every request carries the same {t['system']}-token system prompt and its own user turn "
        f"of {min(t['user'])}–{max(t['user'])} tokens (a different line of the play each), `/v1/chat/completions` "
        f"with the model's chat template, {s['chat_max_tokens']} new tokens, EOS ignored, same closed loop. "
        "The warm-up request is a chat request, so each server starts with the system prompt cached in one slot."
    )


def _tasks_section(results_path: Path) -> list[str]:
    """The neighbour tasks' figures from their own run (benchmarks/tasks.py), when there is one."""
    if not results_path.exists():
        return []
    t = json.loads(results_path.read_text())
    lines = [
        "",
        "## Neighbour tasks (`python benchmarks/tasks.py`, its own run)",
        "",
        f"Server: `{t['server']}`; load average before / after: {t['load_average_1min']['before']:.2f} / "
        f"{t['load_average_1min']['after']:.2f} on {t['load_average_1min']['cpus']} CPUs; peak RSS with every "
        f"task model loaded: {t['peak_rss_mb']:.0f} MB.",
        "",
        "| task | concurrent requests | requests | output | wall (s) | rate |",
        "|---|---|---|---|---|---|",
    ]
    for r in t.get("translation", []):
        lines.append(
            f"| translation EN→PT (LibreTranslate `/translate`) | {r['concurrency']} | {r['requests']} | "
            f"{r['sentences']} sentences | {r['wall_s']:.2f} | {r['sentences_per_s']:.1f} sentences/s |"
        )
    for r in t.get("speech", []):
        lines.append(
            f"| speech (`/v1/audio/speech`, wav) | {r['concurrency']} | {r['requests']} | {r['audio_s']:.1f} s of "
            f"audio | {r['wall_s']:.2f} | real-time factor {r['rtf_aggregate']:.3f} (per request "
            f"{r['rtf_per_request']:.3f}) |"
        )
    g = t.get("generation")
    if g:
        before, after = g["before_tasks"], g["with_tasks_loaded"]
        ratio = after["output_throughput"] / before["output_throughput"] if before["output_throughput"] else None
        lines += [
            "",
            "Text generation at 16 concurrent streams on the same server, before any task model is loaded "
            "and again with translation and speech loaded:",
            "",
            "| | output tok/s | TTFT p50 (ms) | TPOT p50 (ms) | done / failed |",
            "|---|---|---|---|---|",
            f"| before | {before['output_throughput']:.1f} | {before['ttft_ms_p50']:.0f} | "
            f"{before['tpot_ms_p50']:.1f} | "
            f"{before['completed']} / {before['failed']} |",
            f"| task models loaded | {after['output_throughput']:.1f} | {after['ttft_ms_p50']:.0f} | "
            f"{after['tpot_ms_p50']:.1f} | {after['completed']} / {after['failed']} |",
            "",
            f"With the task models loaded: {_f(ratio, '{:.2f}')}× the throughput before.",
        ]
    return lines


def speech_section(results_path: Path) -> list[str]:
    """Speech recognition and embeddings from their own run (benchmarks/speech_and_embeddings.py), when there is
    one."""
    if not results_path.exists():
        return []
    t = json.loads(results_path.read_text())
    load = t["load_average_1min"]
    lines = [
        "",
        "## Speech recognition and embeddings",
        "",
        "From their own run, `python benchmarks/speech_and_embeddings.py`. Whisper base (int8, CTranslate2) hears "
        "the project's own sentences (`benchmarks/data/speech_en.txt`, "
        "`speech_pt.txt`, written for this benchmark) spoken by pocketlm's voices, told the language; word error "
        "rate after lower-casing and dropping punctuation, and the words said that were heard right (a "
        "hallucinated repetition swamps the first, not the second). Language detected: how often Whisper's own "
        "detection names the language spoken.",
        "",
        "| voice | language | sentences | words | word error rate | words heard right | sentences heard exactly | "
        "language detected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in t["wer"]:
        lines.append(
            f"| `{r['voice']}` | {r['language']} | {r['sentences']} | {r['words']} | {r['wer']:.1%} | "
            f"{r['words_heard_right']:.1%} | {r['sentences_heard_exactly']} | {r['language_detected']:.0%} |"
        )
    if t.get("transcription"):
        lines += [
            "",
            f"Server: `{t['server']}`; load average before / after: {load['before']:.2f} / {load['after']:.2f} on "
            f"{load['cpus']} CPUs; peak RSS with Whisper and MiniLM loaded: {t['peak_rss_mb']:.0f} MB.",
            "",
            "| route | concurrent requests | requests | input | wall (s) | rate |",
            "|---|---|---|---|---|---|",
        ]
        for r in t["transcription"]:
            lines.append(
                f"| `/v1/audio/transcriptions` (wav, two sentences of `joe`) | {r['concurrency']} | {r['requests']} | "
                f"{r['audio_s']:.1f} s of audio | {r['wall_s']:.2f} | real-time factor {r['rtf_aggregate']:.3f} "
                f"(per request {r['rtf_per_request']:.3f}) |"
            )
        for r in t["embeddings"]:
            lines.append(
                f"| `/v1/embeddings` (all-minilm-l6-v2), {r['inputs_per_request']} per request | {r['concurrency']} | "
                f"{r['inputs'] // r['inputs_per_request']} | {r['inputs']} sentences | {r['wall_s']:.2f} | "
                f"{r['embeddings_per_s']:.1f} embeddings/s |"
            )
    return lines


def write_report(results: dict, path: Path, chart: Path, results_path: Path) -> None:
    m, v, s = results["machine"], results["versions"], results["settings"]
    prompt_tokens = results["prompt_tokens"]
    commands = {}
    for cell in results["cells"]:
        if "command" in cell:
            commands.setdefault(cell["label"], cell["command"])
    errors = [c for c in results["cells"] if "error" in c]
    busy = [c["cpu_busy_before"] for c in results["cells"] if "cpu_busy_before" in c]
    lines = [
        "# pocketlm serving benchmark",
        "",
        f"Run {results['started']} ({results['duration_min']:.0f} min) with `{results['command']}` "
        f"(`make bench` runs the full default). Raw numbers: `{_rel(results_path, path.parent)}`; "
        "harness: `benchmarks/`.",
        "",
        f"![output tok/s and p50 TTFT vs concurrency]({_rel(chart, path.parent)})",
        "",
        (
            f"**A reduced run**: servers not run this time: {', '.join(results['not_run'])} "
            f"(`make bench` runs all of them); levels: {', '.join(map(str, results['settings']['concurrency']))}; "
            f"workloads: {', '.join(_workloads(results))}.\n"
            if results.get("not_run")
            else None
        ),
        *_busy_warning(busy),
        "## Setup",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd']) or 'no AVX2'}), {m['mem_gib']} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}. CPU busy with other work just before each measurement: "
        f"{min(busy):.0%}–{max(busy):.0%} (the load generator itself runs on the same cores)."
        if busy
        else "",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"- Model: `{Path(results['model']).name}` (SmolLM2-135M-Instruct) for the llama.cpp-based servers; the same "
        "file dequantized to fp32 safetensors (`benchmarks/hf_weights.py`) for the torch-based ones."
        + (
            f" pocketlm runs it requantized, `{Path(results['served_file']).name}`, and so does `llama-server`; "
            "`llama-server on the GGUF file as it is` runs the shipped file."
            if results.get("served_file")
            else ""
        ),
        f"- Workload `completions`: {len(prompt_tokens)} fixed prompts of {min(prompt_tokens)}–{max(prompt_tokens)} "
        "tokens from Hamlet/Othello (the dataset `shakespeare:valid`), cycled in order, `/v1/completions`; "
        f"{s['max_tokens']} new tokens per request, "
        f"EOS ignored; temperature {s['temperature']}; closed loop: c clients each send the next request when the last "
        f"ends; requests per level: {', '.join(f'c={c}: {n}' for c, n in s['requests'].items())}, sent during at most "
        f"{s.get('issue_window_s', s['time_limit_s']):.0f} s per (server, level) "
        "(a slow server finishes the requests it was sent; then "
        f'"done" is below the planned count); requests still running after {s["time_limit_s"]:.0f} s are cut.',
        _chat_line(results),
        "- Each server is started fresh for each level, warmed up with one 16-token request, measured, stopped. "
        "At each level all servers run back to back (order rotated between levels) because this VM's speed drifts "
        "20–30% within an hour.",
        "- Metrics as vLLM's `bench serve`: TTFT = time to the first streamed text; "
        "ITL = gaps between streamed chunks; "
        "TPOT = (e2e − TTFT) / (tokens − 1); output tok/s = tokens of completed requests / wall time of the level. "
        "Output tokens: the server's own streamed `usage` count; else max_tokens when it reports finish_reason "
        "`length`; else the streamed text re-tokenized with the model's tokenizer (column `counted by`). "
        "The Flask app does not stream: its TTFT is its whole latency, and ITL/TPOT do not exist.",
        "- Peak RSS is VmHWM of the server's process tree; ready = start of the process to the first 200 from its "
        "readiness URL; first reply = start of the process to the end of the 16-token warm-up request.",
        "",
        "## Commands",
        "",
    ]
    lines += [f"- {label}: `{cmd}`" for label, cmd in commands.items()]
    mine = _mine(results)
    servers = {n for n, _ in _servers(results)}
    labels = dict(_servers(results))
    for mine_name, peer in [*SAME_FILE, BOTH_DRAFTING]:
        if mine_name in servers and peer in servers:
            lines += [
                "",
                f"## {labels[mine_name]} ÷ {labels[peer]}, same run",
                "",
                "Each ratio is pocketlm's figure ÷ llama-server's, measured back to back at the same level: "
                "tok/s above 1 = pocketlm faster; TTFT, TPOT, ITL below 1 = pocketlm sooner. A server that "
                "drafts tokens (prompt lookup) sends several at once: its ITL p50 falls near 0 and TPOT "
                "(time per token after the first) is the per-token measure.",
                "",
            ]
            lines += _vs_llama_server(results, mine_name, peer)
            if (mine_name, peer) in SAME_FILE:
                lines += ["", f"### Targets (issue 17): {labels[mine_name]}", ""] + _targets_17(
                    results, mine_name, peer
                )
    for workload in _workloads(results):
        lines += ["", f"## Results: {workload}", ""] + _table(results, workload)
    if not mine:
        lines += ["", "pocketlm was not measured in this run: no ratios, no targets."]
    for name in mine:
        lines += [
            "",
            f"## {name} vs each peer (completions, same level, same run)",
            "",
            f"tok/s ×: {name}'s output tok/s ÷ the peer's (above 1 = pocketlm faster). "
            f"TTFT p50 ×: {name}'s p50 TTFT ÷ the peer's (below 1 = pocketlm answers sooner).",
            "",
        ]
        lines += _ratios(results, name)
        if "chat" in _workloads(results):
            lines += ["", f"Chat workload, {name} vs each peer:", ""] + _ratios(results, name, "chat")
        lines += ["", f"### Targets (issue 4) for {name}", ""] + _targets(results, name)
    if errors:
        lines += ["", "## Servers that failed", ""]
        lines += [f"- {c['label']} at c={c['concurrency']}: {c['error'].splitlines()[0]}" for c in errors]
    notes = [
        (c["label"], c["concurrency"], e) for c in results["cells"] if "summary" in c for e in c["summary"]["errors"]
    ]
    if notes:
        lines += ["", "## Request errors seen", ""] + [f"- {label} c={c}: `{e}`" for label, c, e in notes]
    lines += _tasks_section(Path(__file__).parent / "tasks_results.json")
    lines += speech_section(Path(__file__).parent / "speech_results.json")
    lines += ["", "Levers tried and what they moved: `benchmarks/NOTES.md`.", ""]
    path.write_text("\n".join(line for line in lines if line is not None) + _measured_apart(path))


MEASURED_APART = "<!-- Measured apart."


def _measured_apart(path: Path) -> str:
    """The hand-kept sections below the marker (measurements made by scripts of their own): carried over as they are."""
    old = path.read_text() if path.exists() else ""
    start = old.find(MEASURED_APART)
    return "\n" + old[start:] if start >= 0 else ""
