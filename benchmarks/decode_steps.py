"""The backend's prompt reading and decoding step alone, by how many cells a row attends to and how many rows a
pass holds: what pocketlm's kernels cost against llama.cpp's.

    python benchmarks/decode_steps.py                            # pocketlm's kernel and llama.cpp's, 3 rounds
    python benchmarks/decode_steps.py --library DIR --library DIR2 --positions 450 --rounds 5
    python benchmarks/decode_steps.py --model gemma3-270m --rows 2,4,8,16

pocketlm's llama.cpp (`pocketlm.llama_library`) differs from llama-server's in libggml-cpu only
(assets/llama-cpp-kernels.patch: flash attention, quantized products). Each library here runs in a process of its
own (LLAMA_CPP_LIB_PATH), the libraries alternating round by round, on the file `pocketlm serve` runs for
`--model`, keys and values f16: a lone prompt of P tokens read from an empty cache (median of 5 reads: a time to
first token without HTTP), then 128 one-row steps from there (median ms a step) and 64 passes of each of `--rows`
rows (one slot: a stream and its draft); and 16 streams at 450 cells stepping together (median of 45 steps).
"llama.cpp" is llama-server's libggml-cpu (benchmarks/llama_server.py: the same source and switches, no patch)
beside copies of pocketlm's other libraries, so the kernels are all that differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llama_server import binary

# A child process loads the library its parent named in LLAMA_CPP_LIB_PATH (pocketlm.llama_library keeps it)
from pocketlm import llama_library
from pocketlm.backends.base import Chunk
from pocketlm.backends.llamacpp import LlamaCppBackend
from pocketlm.models import DEFAULT_MODEL
from run import served_file

STREAMS, STREAMS_AT = 16, 450
PREFILLS = 5  # times each lone prompt is read (its cache cleared in between)


def steps(model: str, positions: list[int], rows: list[int]) -> dict[str, float]:
    """Median ms in this process's library: a lone prompt of each length read (all its rows in passes of 512), one
    row stepping on from there, passes of several rows there, then 16 rows at 450 cells."""
    backend = LlamaCppBackend(served_file(model), slots=STREAMS, n_ctx=1024, kv_type="f16")
    text = backend.tokenize("To be, or not to be, that is the question: " * 120)

    def timed(chunks: list[Chunk]) -> float:
        start = time.perf_counter()
        backend.forward(chunks)
        return (time.perf_counter() - start) * 1e3

    out = {}
    for p in positions:
        prefills = []
        for _ in range(PREFILLS):
            backend.clear_slot(0)
            prefills.append(timed([Chunk(0, text[:p], 0, 1)]))
        out[f"prompt of {p}"] = statistics.median(prefills)
        out[f"1 row at {p}"] = statistics.median(timed([Chunk(0, [text[p]], p + i, 1)]) for i in range(128))
        for n in rows:
            drafted = []
            for _ in range(64):  # the rows are forgotten after each pass, as a rejected draft's are
                backend.clear_slot(0, p)
                drafted.append(timed([Chunk(0, text[p : p + n], p, n)]))
            out[f"{n} rows at {p}"] = statistics.median(drafted)
    for s in range(STREAMS):
        backend.clear_slot(s)
        backend.forward([Chunk(s, text[:STREAMS_AT], 0, 1)])
    rows = [timed([Chunk(s, [text[STREAMS_AT]], STREAMS_AT + i, 1) for s in range(STREAMS)]) for i in range(45)]
    out[f"{STREAMS} rows at {STREAMS_AT}"] = statistics.median(rows)
    return out


def pocketlm_library() -> Path:
    """The build of pocketlm's kernel this process loaded (native or portable: pocketlm.llama_library chose it)."""
    if not llama_library.ONE_PATH_ATTENTION:
        sys.exit("pocketlm's attention kernel is not built for this CPU: run `make install` first")
    return Path(os.environ["LLAMA_CPP_LIB_PATH"])


def stock_library(into: Path) -> Path:
    """pocketlm's library directory with llama-server's unpatched libggml-cpu in place of its own."""
    server = binary().parent
    if not (server / "libggml-cpu.so").exists():
        sys.exit("llama-server is not built: run `make llama-server` (or benchmarks/llama_server.py) first")
    shutil.copytree(pocketlm_library(), into)
    for f in server.glob("libggml-cpu.so*"):
        shutil.copy2(f, into / f.name, follow_symlinks=True)
    return into


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", action="append", type=Path, help="a libllama directory (repeat; default: both)")
    ap.add_argument(
        "--positions",
        default="100,450,850",
        help="lone prompts' lengths, the cells a row then attends to (at most 896)",
    )
    ap.add_argument("--rows", default="4", help="rows of one slot's passes timed at each position (drafts: 4 is 1 + 3)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a model alias or GGUF (default: the embedded one)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    positions = [int(p) for p in args.positions.split(",")]
    rows = [int(n) for n in args.rows.split(",")]
    if not all(1 <= p <= 1024 - 128 for p in positions):
        ap.error(f"--positions {args.positions}: each between 1 and 896 (a slot holds 1,024 cells, 128 steps follow)")
    if not all(1 <= n <= 64 for n in rows):
        ap.error(f"--rows {args.rows}: each between 1 and 64")
    if args.child:
        print(json.dumps(steps(args.model, positions, rows)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.library:
            libraries = {str(d): d for d in args.library}
        else:
            libraries = {"pocketlm": pocketlm_library(), "llama.cpp": stock_library(Path(tmp) / "stock")}
        runs: dict[str, list[dict]] = {name: [] for name in libraries}
        for r in range(args.rounds):
            for name, lib in libraries.items():
                env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(lib)}
                child = [sys.executable, __file__, "--child", "--positions", args.positions, "--rows", args.rows]
                child += ["--model", args.model]
                done = subprocess.run(child, env=env, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"the run on {lib} failed:\n{done.stderr[-2000:]}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    cells = list(next(iter(runs.values()))[0])
    print("| median ms, by round | " + " | ".join(cells) + " |")
    print("|---" * (len(cells) + 1) + "|")
    for name, rounds in runs.items():
        print(f"| {name} | " + " | ".join(" / ".join(f"{run[c]:.1f}" for run in rounds) for c in cells) + " |")


if __name__ == "__main__":
    main()
