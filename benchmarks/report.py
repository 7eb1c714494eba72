"""Turn a run's results (run.py) into BENCHMARKS.md and the serving charts.

A results file holds one run per model (`{"runs": [...]}`; older files are one run). Within a run a
(workload, level) may have been measured in several rounds, every server back to back in each: a
ratio is then taken round by round and quoted as the median with its range (min–max), the spread a
single round cannot show on a VM that drifts.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from peers import BOTH_DRAFTING, NGRAM_PEER, SAME_FILE  # each pocketlm configuration and its llama-server

# Issue 27's bound on stream smoothness: pocketlm's ITL p99 at most this many times llama-server's.
ITL_P99_BOUND = 1.5


def runs_of(data: dict) -> list[dict]:
    """The runs of a results file: one per model (files written before --models hold one run)."""
    return data["runs"] if "runs" in data else [data]


def chart_path(base: Path, index: int, results: dict) -> Path:
    """The first model's chart is `base`; each other model's gets its name appended."""
    return base if index == 0 else base.with_name(f"{base.stem}-{_model_name(results)}{base.suffix}")


def _model_name(results: dict) -> str:
    return results.get("model_name") or Path(results["model"]).stem


def _workload(cell: dict) -> str:
    return cell.get("workload", "completions")  # runs before the chat workload existed


def _workloads(results: dict) -> list[str]:
    return results["settings"].get("workloads", ["completions"])


def _serving(results: dict) -> list[str]:
    """The workloads measured as a load at levels of concurrency (not the lone prompts by length)."""
    return [w for w in _workloads(results) if w != "prompt-lengths"]


def _levels(results: dict, workload: str) -> list[int]:
    s = results["settings"]
    return {"sampled": s.get("sampled_concurrency", []), "prompt-lengths": [1]}.get(workload, s["concurrency"])


def _cells(results: dict, workload: str = "completions") -> dict[tuple[str, int], list[dict]]:
    """(server, level) -> the measured cells of that workload, one per round, in round order."""
    out: dict[tuple[str, int], list[dict]] = {}
    for c in results["cells"]:
        if ("summary" in c or "prompt_lengths" in c) and _workload(c) == workload:
            out.setdefault((c["server"], c["concurrency"]), []).append(c)
    return out


def _paired(cells: dict, mine: str, peer: str, c: int) -> list[tuple[dict, dict]]:
    """The (mine, peer) cells measured in the same round at level c."""
    theirs = {cell.get("round", 0): cell for cell in cells.get((peer, c), [])}
    return [(a, theirs[a.get("round", 0)]) for a in cells.get((mine, c), []) if a.get("round", 0) in theirs]


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _spread(values: list) -> str:
    """A ratio, or with several rounds the median and the range: `1.02× (0.97–1.06×)`."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}×"
    return f"{statistics.median(values):.2f}× ({min(values):.2f}–{max(values):.2f}×)"


def _summary_median(cells: list[dict], *keys) -> float | None:
    """The median over rounds of one figure of the summary, e.g. ("ttft_ms", "p50")."""
    values = []
    for cell in cells:
        value = cell["summary"]
        for k in keys:
            value = value[k]
        values.append(value)
    return _median(values)


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

    workloads = [w for w in _serving(results) if len(_levels(results, w)) > 1] or _serving(results)[:1]
    if not workloads:  # lone prompts only: nothing to plot against concurrency (the report then shows no chart)
        return
    fig, axes = plt.subplots(len(workloads), 2, figsize=(11, 4.2 * len(workloads)), squeeze=False)
    # One order and one colour per server in every panel (rounds alternate which server a workload meets first).
    servers = sorted(_servers(results), key=lambda s: not s[0].startswith("pocketlm"))
    for (ax_tps, ax_ttft), workload in zip(axes, workloads):
        levels = _levels(results, workload)
        cells = _cells(results, workload)
        for i, (name, label) in enumerate(servers):
            xs = [c for c in levels if (name, c) in cells]
            if not xs:
                continue
            style = dict(marker="o", label=label, color=f"C{i}")
            ax_tps.plot(xs, [_summary_median(cells[name, c], "output_throughput") for c in xs], **style)
            ttft = [(c, _summary_median(cells[name, c], "ttft_ms", "p50")) for c in xs]
            ax_ttft.plot([c for c, t in ttft if t], [t for c, t in ttft if t], **style)
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
    fig.suptitle(f"{_model_name(results)}, {m['cores']}-core {m['cpu']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(results: dict, workload: str = "completions") -> list[str]:
    rounds = results["settings"].get("repeats", 1) > 1
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
        c = f"{c} (round {cell.get('round', 0) + 1})" if rounds else c
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


def _lengths(cell: dict) -> dict[int, dict]:
    """A prompt-lengths cell's figures by prompt length (JSON keeps the lengths as strings)."""
    return {int(n): r for n, r in cell["prompt_lengths"].items()}


def _prompt_table(results: dict) -> list[str]:
    """Every server's time to a first token by prompt length: best of the repetitions, each round."""
    rounds = results["settings"].get("repeats", 1) > 1
    lengths = results["settings"]["prompt_lengths"]
    rows = [
        "| server | " + " | ".join(f"{n} tokens: best TTFT (ms), prompt tok/s" for n in lengths) + " | peak RSS (MB) |",
        "|---|" + "---|" * (len(lengths) + 1),
    ]
    for cell in results["cells"]:
        if _workload(cell) != "prompt-lengths":
            continue
        label = cell["label"] + (f" (round {cell.get('round', 0) + 1})" if rounds else "")
        if "prompt_lengths" not in cell:
            rows.append(f"| {label} | failed to run: {cell['error'].splitlines()[0][:120]} |" + " |" * len(lengths))
            continue
        by_n = _lengths(cell)
        parts = [
            f"{_f(by_n[n]['best_ms'])} of {'/'.join(f'{t:.0f}' for t in by_n[n]['ttft_ms'])}, "
            f"{_f(by_n[n]['prefill_tok_s'])}"
            if n in by_n
            else "—"
            for n in lengths
        ]
        rows.append(f"| {label} | " + " | ".join(parts) + f" | {cell['peak_rss_mb']:.0f} |")
    return rows


def _mine(results: dict) -> list[str]:
    """The pocketlm configurations measured in this run (the default and its variants)."""
    return [n for n, _ in _servers(results) if n.startswith("pocketlm")]


def _tps_ratios(pairs: list[tuple[dict, dict]]) -> list[float | None]:
    return [_ratio(a["summary"]["output_throughput"], b["summary"]["output_throughput"]) for a, b in pairs]


def _stat_ratios(pairs: list[tuple[dict, dict]], key: str, q: str) -> list[float | None]:
    return [_ratio(a["summary"][key][q], b["summary"][key][q]) for a, b in pairs]


def _ttft_ratios(pairs: list[tuple[dict, dict]], n: int) -> list[float | None]:
    """pocketlm's best TTFT for a lone n-token prompt ÷ the peer's, round by round."""
    out = []
    for a, b in pairs:
        x, y = _lengths(a).get(n), _lengths(b).get(n)
        out.append(_ratio(x and x["best_ms"], y and y["best_ms"]))
    return out


def _ratios(results: dict, mine_name: str, workload: str = "completions") -> list[str]:
    cells = _cells(results, workload)
    peers = [(n, label) for n, label in _servers(results, workload) if not n.startswith("pocketlm")]
    rows = [
        "| c | " + " | ".join(f"vs {label}: tok/s ×, TTFT p50 ×, ITL p99 ×" for _, label in peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for c in _levels(results, workload):
        out = []
        for name, _ in peers:
            pairs = _paired(cells, mine_name, name, c)
            if not pairs:
                out.append("—")
                continue
            out.append(
                f"{_spread(_tps_ratios(pairs))}, {_spread(_stat_ratios(pairs, 'ttft_ms', 'p50'))}, "
                f"{_spread(_stat_ratios(pairs, 'itl_ms', 'p99'))}"
            )
        rows.append(f"| {c} | " + " | ".join(out) + " |")
    return rows


def _targets(results: dict, mine: str) -> list[str]:
    """The issue's targets, checked against this run (— where this run lacks the data)."""
    cells = _cells(results)

    def get(server, c, *keys):
        return _summary_median(cells[server, c], *keys) if (server, c) in cells else None

    def ratio(c, peer):
        return _median(_tps_ratios(_paired(cells, mine, peer, c)))

    ready = [c["first_reply_s"] for c in results["cells"] if c["server"] == mine and c.get("first_reply_s") is not None]
    ttft1 = _median(_stat_ratios(_paired(cells, mine, "llama-cpp", 1), "ttft_ms", "p50"))
    checks = [
        ("c=1 output tok/s ≥ 1.0× llama-cpp-python", ratio(1, "llama-cpp"), 1.0, "{:.2f}×", True),
        ("c=1 TTFT p50 no worse than llama-cpp-python (pocketlm ÷ peer)", ttft1, 1.0, "{:.2f}×", False),
        ("c=16 output tok/s ≥ 3× llama-cpp-python", ratio(16, "llama-cpp"), 3.0, "{:.2f}×", True),
        ("c=16 output tok/s ≥ 1.5× transformers serve", ratio(16, "transformers"), 1.5, "{:.2f}×", True),
        ("c=16 output tok/s ≥ 10× Flask app", ratio(16, "flask"), 10.0, "{:.2f}×", True),
        ("c=16 output tok/s ≥ 400", get(mine, 16, "output_throughput"), 400.0, "{:.0f}", True),
        ("c=16 TTFT p99 ≤ 1000 ms", get(mine, 16, "ttft_ms", "p99"), 1000.0, "{:.0f} ms", False),
        # Issue 4's "peak RSS ≤ 500 MB" was replaced by issue 27's "≤ llama-server's in the same run" (its table).
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
        rows.append(f"| {name} | {_f(value, fmt)} | {_met(value, bound, at_least)} |")
    return rows


def _met(value, bound, at_least: bool) -> str:
    return "—" if value is None else ("yes" if (value >= bound if at_least else value <= bound) else "**no**")


def _ratio(a, b):
    return a / b if a is not None and b else None


def _vs_llama_server(results: dict, mine: str, peer: str) -> list[str]:
    """pocketlm ÷ llama-server at each (workload, level) of this run: medians over rounds, tok/s and ITL p99
    with their range."""
    rows = [
        "| workload | c | output tok/s (pocketlm / llama-server) | tok/s × | TTFT p50 × | TTFT p99 × "
        "| TPOT p50 × | ITL p50 × | ITL p99 × | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in _serving(results):
        cells = _cells(results, workload)
        for c in _levels(results, workload):
            pairs = _paired(cells, mine, peer, c)
            if not pairs:
                continue
            a, b = [p[0] for p in pairs], [p[1] for p in pairs]

            def x(key, q, pairs=pairs):
                return _f(_median(_stat_ratios(pairs, key, q)), "{:.2f}×")

            rows.append(
                f"| {workload} | {c} | {_summary_median(a, 'output_throughput'):.1f} / "
                f"{_summary_median(b, 'output_throughput'):.1f} | **{_spread(_tps_ratios(pairs))}** "
                f"| {x('ttft_ms', 'p50')} | {x('ttft_ms', 'p99')} | {x('tpot_ms', 'p50')} "
                f"| {x('itl_ms', 'p50')} | {_spread(_stat_ratios(pairs, 'itl_ms', 'p99'))} "
                f"| {max(c['peak_rss_mb'] for c in a):.0f} / {max(c['peak_rss_mb'] for c in b):.0f} |"
            )
    return rows


def _prompts_vs(results: dict, mine: str, peer: str) -> list[str]:
    """pocketlm ÷ llama-server, time to the first token of a lone prompt by its length."""
    pairs = _paired(_cells(results, "prompt-lengths"), mine, peer, 1)
    if not pairs:
        return []
    rows = [
        "",
        "Time to the first token of a lone prompt of random words (max_tokens 1, best of "
        f"{results['settings'].get('prompt_repeats', 3)} prompts, medians over rounds):",
        "",
        "| prompt tokens | TTFT ms (pocketlm / llama-server) | TTFT × | prompt tok/s (pocketlm / llama-server) |",
        "|---|---|---|---|",
    ]
    for n in results["settings"]["prompt_lengths"]:
        best = [[_lengths(cell).get(n, {}).get("best_ms") for cell in side] for side in zip(*pairs)]
        speed = [[_lengths(cell).get(n, {}).get("prefill_tok_s") for cell in side] for side in zip(*pairs)]
        rows.append(
            f"| {n} | {_f(_median(best[0]))} / {_f(_median(best[1]))} | **{_spread(_ttft_ratios(pairs, n))}** "
            f"| {_f(_median(speed[0]))} / {_f(_median(speed[1]))} |"
        )
    return rows


def _peak_rss_ratio(results: dict, mine: str, peer: str) -> float | None:
    rss = [c["peak_rss_mb"] for c in results["cells"] if c["server"] == mine and "peak_rss_mb" in c]
    rss_peer = [c["peak_rss_mb"] for c in results["cells"] if c["server"] == peer and "peak_rss_mb" in c]
    return _ratio(max(rss), max(rss_peer)) if rss and rss_peer else None


def _targets_17(results: dict, mine: str, peer: str) -> list[str]:
    """Issue 17's targets against llama-server on the same file, same run."""
    comp, chat = _cells(results, "completions"), _cells(results, "chat")
    checks = [
        ("completions c=1 output tok/s ≥ 1.0× llama-server", _tps_ratios(_paired(comp, mine, peer, 1)), 1.0, True),
        ("completions c=16 output tok/s ≥ 1.0× llama-server", _tps_ratios(_paired(comp, mine, peer, 16)), 1.0, True),
        ("chat c=16 output tok/s ≥ 1.0× llama-server", _tps_ratios(_paired(chat, mine, peer, 16)), 1.0, True),
        (
            "chat c=16 TTFT p99 ≤ llama-server's (pocketlm ÷ llama-server)",
            _stat_ratios(_paired(chat, mine, peer, 16), "ttft_ms", "p99"),
            1.0,
            False,
        ),
        (
            "peak RSS ≤ llama-server's (max over levels, pocketlm ÷ llama-server)",
            [_peak_rss_ratio(results, mine, peer)],
            1.0,
            False,
        ),
    ]
    return _checks_table(checks)


def _checks_table(checks: list[tuple[str, list, float, bool]]) -> list[str]:
    """Each target met or not by the median of its round-by-round ratios (— where the run lacks the data)."""
    rows = ["| target | measured (median, range over rounds) | met |", "|---|---|---|"]
    for name, values, bound, at_least in checks:
        rows.append(f"| {name} | {_spread(values)} | {_met(_median(values), bound, at_least)} |")
    return rows


def _targets_27(results: dict, mine: str, peer: str) -> list[str]:
    """Issue 27's "must show": every cell at least llama-server's, smooth streams, lone prompts as fast."""
    comp, chat, sampled = (_cells(results, w) for w in ("completions", "chat", "sampled"))
    prompts = _cells(results, "prompt-lengths")
    checks = [
        ("completions c=1 greedy output tok/s ≥ 1.0×", _tps_ratios(_paired(comp, mine, peer, 1)), 1.0, True),
        ("completions c=1 sampled output tok/s ≥ 1.0×", _tps_ratios(_paired(sampled, mine, peer, 1)), 1.0, True),
    ]
    checks += [
        (f"completions c={c} output tok/s ≥ 1.0×", _tps_ratios(_paired(comp, mine, peer, c)), 1.0, True)
        for c in _levels(results, "completions")
        if c != 1
    ]
    checks += [
        (f"chat c={c} output tok/s ≥ 1.0×", _tps_ratios(_paired(chat, mine, peer, c)), 1.0, True)
        for c in _levels(results, "chat")
    ]
    checks += [
        (
            f"completions c={c} ITL p99 ≤ {ITL_P99_BOUND}× llama-server's",
            _stat_ratios(_paired(comp, mine, peer, c), "itl_ms", "p99"),
            ITL_P99_BOUND,
            False,
        )
        for c in (16, 32)
    ]
    checks += [
        (
            f"TTFT of a lone {n}-token prompt ≤ llama-server's",
            _ttft_ratios(_paired(prompts, mine, peer, 1), n),
            1.0,
            False,
        )
        for n in results["settings"].get("prompt_lengths", [])
    ]
    checks += [
        ("peak RSS ≤ llama-server's (max over the run)", [_peak_rss_ratio(results, mine, peer)], 1.0, False),
        (
            "completions c=1 output tok/s ≥ 1.0× llama-server with its n-gram drafts",
            _tps_ratios(_paired(comp, mine, NGRAM_PEER, 1)),
            1.0,
            True,
        ),
    ]
    return _checks_table(checks)


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


def _provenance(runs: list[dict]) -> str:
    """When and how the runs were made: one command for all, or (a model measured again on its own) each run's."""
    first = runs[0]
    if all(r["command"] == first["command"] for r in runs):
        return f"Run {first['started']} ({sum(r['duration_min'] for r in runs):.0f} min) with `{first['command']}`"
    return "Runs, one per model: " + "; ".join(
        f"{_model_name(r)} {r['started']} ({r['duration_min']:.0f} min) with `{r['command']}`" for r in runs
    )


def write_report(runs: list[dict], path: Path, chart: Path, results_path: Path) -> None:
    """BENCHMARKS.md: the setup once, then each model's comparison (`runs`: one run per model)."""
    first = runs[0]
    m, v = first["machine"], first["versions"]
    busy = [c["cpu_busy_before"] for r in runs for c in r["cells"] if "cpu_busy_before" in c]
    lines = [
        "# pocketlm serving benchmark",
        "",
        _provenance(runs) + f" (`make bench` runs the full default). Raw numbers: `{_rel(results_path, path.parent)}`; "
        "harness: `benchmarks/`."
        + (f" Models, in turn: {', '.join(_model_name(r) for r in runs)}." if runs[1:] else ""),
        "",
        *([f"![output tok/s and p50 TTFT vs concurrency]({_rel(chart, path.parent)})", ""] if _serving(first) else []),
        (
            f"**A reduced run**: servers not run this time: {', '.join(first['not_run'])} "
            f"(`make bench` runs all of them); levels: {', '.join(map(str, first['settings']['concurrency']))}; "
            f"workloads: {', '.join(_workloads(first))}.\n"
            if first.get("not_run")
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
        *_workload_lines(first),
        "- Each server is started fresh for each level, warmed up with one 16-token request, measured, stopped. "
        "At each level all servers run back to back (order rotated between levels and rounds) because this VM's "
        "speed drifts 20–30% within an hour."
        + (
            f" Every (workload, level) ran in {first['settings']['repeats']} rounds: ratios are taken round by round "
            "and quoted as the median (min–max)."
            if first["settings"].get("repeats", 1) > 1
            else ""
        ),
        "- Metrics as vLLM's `bench serve`: TTFT = time to the first streamed text; "
        "ITL = gaps between streamed chunks; "
        "TPOT = (e2e − TTFT) / (tokens − 1); output tok/s = tokens of completed requests / wall time of the level. "
        "Output tokens: the server's own streamed `usage` count; else max_tokens when it reports finish_reason "
        "`length`; else the streamed text re-tokenized with the model's tokenizer (column `counted by`). "
        "The Flask app does not stream: its TTFT is its whole latency, and ITL/TPOT do not exist.",
        "- Peak RSS is VmHWM of the server's process tree; ready = start of the process to the first 200 from its "
        "readiness URL; first reply = start of the process to the end of the 16-token warm-up request.",
    ]
    for i, results in enumerate(runs):
        lines += _run_lines(results, path, chart_path(chart, i, results), extra=i > 0)
    lines += _tasks_section(Path(__file__).parent / "tasks_results.json")
    lines += speech_section(Path(__file__).parent / "speech_results.json")
    lines += ["", "Levers tried and what they moved: `benchmarks/NOTES.md`.", ""]
    path.write_text("\n".join(line for line in lines if line is not None) + _measured_apart(path))


def _workload_lines(results: dict) -> list[str | None]:
    """How each workload is made and sent (the same for every model; token counts by the first model's tokenizer)."""
    s, prompt_tokens = results["settings"], results["prompt_tokens"]
    lines = [
        f"- Workload `completions`: {len(prompt_tokens)} fixed prompts of {min(prompt_tokens)}–{max(prompt_tokens)} "
        "tokens from Hamlet/Othello (the dataset `shakespeare:valid`), cycled in order, `/v1/completions`; "
        f"{s['max_tokens']} new tokens per request, "
        f"EOS ignored; temperature {s['temperature']}; closed loop: c clients each send the next request when the last "
        f"ends; requests per level: {', '.join(f'c={c}: {n}' for c, n in s['requests'].items())}, sent during at most "
        f"{s.get('issue_window_s', s['time_limit_s']):.0f} s per (server, level) "
        "(a slow server finishes the requests it was sent; then "
        f'"done" is below the planned count); requests still running after {s["time_limit_s"]:.0f} s are cut.',
        _chat_line(results),
    ]
    if "sampled" in _workloads(results):
        fields = ", ".join(f"{k} {val}" for k, val in s["sampled"].items())
        lines.append(
            f"- Workload `sampled`: the completions requests as a chat UI sends them: {fields}, no top_k (OpenAI's "
            "fields; each server applies its own defaults to the rest), request i seeded with i; at "
            f"c = {', '.join(map(str, s['sampled_concurrency']))}."
        )
    if "prompt-lengths" in _workloads(results):
        lines.append(
            f"- Workload `prompt-lengths`: one request at a time, prompts of "
            f"{' / '.join(map(str, s['prompt_lengths']))} tokens of words drawn at random from the corpus (new to "
            f"the server: no prompt cache helps), `max_tokens` 1: the request's latency is its time to a first "
            f"token; {s['prompt_repeats']} prompts per length, the best counts."
        )
    return lines


def _run_lines(results: dict, path: Path, chart: Path, extra: bool) -> list[str]:
    """One model's part of the report: its files, commands, ratios, targets and raw results."""
    title = f"{_model_name(results)}: " if extra else ""
    served = results.get("served_file")
    model_file = Path(results["model"]).name
    lines = [
        "",
        f"## {title}Model and commands" if extra else "## Model and commands",
        "",
        *(
            [f"![{_model_name(results)}: output tok/s and p50 TTFT vs concurrency]({_rel(chart, path.parent)})", ""]
            if extra and _serving(results)
            else []
        ),
        f"Model `{_model_name(results)}`: the file `{model_file}` for the llama.cpp-based servers; the same file "
        "dequantized to fp32 safetensors (`benchmarks/hf_weights.py`) for the torch-based ones."
        + (
            f" pocketlm runs it requantized, `{Path(served).name}`, and so does `llama-server`; "
            "the `... on the GGUF file as it is` servers run the file as shipped."
            if served and Path(served).name != model_file
            else " pocketlm and llama-server both run it as it is."
        ),
        "",
    ]
    commands = {}
    for cell in results["cells"]:
        if "command" in cell:
            commands.setdefault(cell["label"], cell["command"])
    lines += [f"- {label}: `{cmd}`" for label, cmd in commands.items()]
    mine = _mine(results)
    servers = {n for n, _ in _servers(results)}
    labels = dict(_servers(results))
    for mine_name, peer in [*SAME_FILE, BOTH_DRAFTING]:
        if mine_name in servers and peer in servers:
            lines += [
                "",
                f"## {title}{labels[mine_name]} ÷ {labels[peer]}, same run",
                "",
                "Each ratio is pocketlm's figure ÷ llama-server's, measured back to back at the same level: "
                "tok/s above 1 = pocketlm faster; TTFT, TPOT, ITL below 1 = pocketlm sooner. A server that "
                "drafts tokens (prompt lookup) sends several at once: its ITL p50 falls near 0 and TPOT "
                "(time per token after the first) is the per-token measure.",
                "",
            ]
            lines += _vs_llama_server(results, mine_name, peer) + _prompts_vs(results, mine_name, peer)
            if (mine_name, peer) == ("pocketlm", "llama-server"):
                lines += ["", f"### {title}Targets (issue 27): {labels[mine_name]} ÷ {labels[peer]}", ""]
                lines += _targets_27(results, mine_name, peer)
            if (mine_name, peer) in SAME_FILE:
                lines += ["", f"### {title}Targets (issue 17): {labels[mine_name]}", ""] + _targets_17(
                    results, mine_name, peer
                )
    for workload in _workloads(results):
        table = _prompt_table(results) if workload == "prompt-lengths" else _table(results, workload)
        lines += ["", f"## {title}Results: {workload}", ""] + table
    if not mine:
        lines += ["", "pocketlm was not measured in this run: no ratios, no targets."]
    for name in mine:
        lines += [
            "",
            f"## {title}{name} vs each peer (completions, same level, same run)",
            "",
            f"tok/s ×: {name}'s output tok/s ÷ the peer's (above 1 = pocketlm faster). "
            f"TTFT p50 ×: {name}'s p50 TTFT ÷ the peer's (below 1 = pocketlm answers sooner). "
            "ITL p99 ×: the same for the 99th percentile of the gaps between streamed chunks (below 1 = smoother).",
            "",
        ]
        lines += _ratios(results, name)
        for workload in _serving(results)[1:]:
            lines += ["", f"Workload {workload}, {name} vs each peer:", ""] + _ratios(results, name, workload)
        lines += ["", f"### {title}Targets (issue 4) for {name}", ""] + _targets(results, name)
    errors = [c for c in results["cells"] if "error" in c]
    if errors:
        lines += ["", f"## {title}Servers that failed", ""]
        lines += [f"- {c['label']} at c={c['concurrency']}: {c['error'].splitlines()[0]}" for c in errors]
    notes = [
        (c["label"], c["concurrency"], e) for c in results["cells"] if "summary" in c for e in c["summary"]["errors"]
    ]
    notes += [
        (c["label"], f"{n} tokens", e)
        for c in results["cells"]
        if "prompt_lengths" in c
        for n, r in c["prompt_lengths"].items()
        for e in r["errors"]
    ]
    if notes:
        lines += ["", f"## {title}Request errors seen", ""] + [f"- {label} c={c}: `{e}`" for label, c, e in notes]
    return lines


MEASURED_APART = "<!-- Measured apart."


def _measured_apart(path: Path) -> str:
    """The hand-kept sections below the marker (measurements made by scripts of their own): carried over as they are."""
    old = path.read_text() if path.exists() else ""
    start = old.find(MEASURED_APART)
    return "\n" + old[start:] if start >= 0 else ""
