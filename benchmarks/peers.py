"""The servers under test: how to start each one, know it is ready, load it, and stop it.

Every server runs as a child process on a free loopback port, in its own session so that
stopping it stops everything it spawned. Each gets 2 compute threads (the machine's cores)
and the same weights: the GGUF for the llama.cpp-based ones, that GGUF dequantized to a
safetensors directory for the torch-based ones (hf_weights.py).

How "ignore EOS" reaches each server (so every request produces max_tokens tokens):
- pocketlm: `ignore_eos: true` (vLLM's extension field);
- llama-cpp-python: `min_tokens: max_tokens` (its request model has no `ignore_eos`);
- transformers serve: it rejects unknown fields (422), so `generation_config` carries
  `eos_token_id: -1`, which its continuous-batching scheduler reads as "no EOS";
- the Flask app: our `ignore_eos` field, implemented with `min_new_tokens`;
- llama-server: `ignore_eos: true` (its own field, on both completion endpoints).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loadgen import Target

THREADS = 2
BIN = Path(sys.executable).parent


@dataclass
class PeerSpec:
    name: str
    label: str  # how tables and charts name it
    argv: Callable[[int], list[str]]  # port -> command line
    ready_path: str  # GET answers 200 once the model is loaded
    api: str  # "openai" | "generate"
    extra: Callable[[int], dict]  # max_tokens -> body fields that make the server ignore EOS
    env: dict = field(default_factory=dict)
    model: str | None = None  # the request's "model" field

    def command(self, port: int) -> str:
        """The command line as a person would type it (for BENCHMARKS.md)."""
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        argv = [Path(a).name if a == sys.executable or Path(a).parent == BIN else a for a in self.argv(port)]
        return (env + " " if env else "") + " ".join(argv)


# llama.cpp's own server as a user would run it for 16 concurrent clients: 16 slots sharing a
# 16,384-token context (1,024 each, pocketlm's default), the machine's 2 threads for decode and batch.
LLAMA_SERVER_SLOTS, LLAMA_SERVER_CTX = 16, 16384
KV_VARIANT = "pocketlm-kv-q8_0"
NGRAM_PEER = "llama-server-ngram"
NO_DRAFTS = "pocketlm-no-drafts"
# Which llama-server runs the same file as each pocketlm configuration: the pairs of the ratio tables and of
# issue 17's targets. pocketlm drafts by prompt lookup by default and llama-server does not: BOTH_DRAFTING is
# the pair where both do (a ratio table, no targets).
SAME_FILE = [
    ("pocketlm", "llama-server"),
    (KV_VARIANT, "llama-server"),
    ("pocketlm-file", "llama-server-file"),
    (NO_DRAFTS, "llama-server"),
]
BOTH_DRAFTING = ("pocketlm", NGRAM_PEER)


def specs(
    gguf: Path,
    hf_dir: Path | None,
    extra_args: dict[str, list[str]] | None = None,
    model: str | None = None,
    served: Path | None = None,
    llama_server: Path | None = None,
) -> dict[str, PeerSpec]:
    """The servers (pocketlm by default and on the GGUF file as it is, and the peers).

    `model`: what pocketlm is asked to serve (the embedded alias, which runs as q8_0 by default);
    None: the GGUF file. `served`: the file pocketlm then runs (the requantized q8_0), which
    llama-server runs too; `gguf` is the file as shipped. `llama_server`: its binary.
    `extra_args[name]` are flags appended to that server's command line.
    """
    extra_args = extra_args or {}
    torch_env = {"OMP_NUM_THREADS": str(THREADS), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def pocketlm(name: str, label: str, served: str, *flags: str) -> PeerSpec:
        return PeerSpec(
            name,
            label,
            lambda port: [
                sys.executable,
                "-m",
                "pocketlm",
                "serve",
                "--model",
                served,
                *flags,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args.get(name, ()),
            ],
            "/ready",
            "openai",
            lambda n: {"ignore_eos": True},
        )

    def llama_cpp_server(name: str, label: str, file: Path, *flags: str) -> PeerSpec:
        exe = llama_server or Path("llama-server")
        return PeerSpec(
            name,
            label,
            lambda port: [
                str(exe),
                "-m",
                str(file),
                "-t",
                str(THREADS),
                "-tb",
                str(THREADS),
                "-np",
                str(LLAMA_SERVER_SLOTS),
                "-c",
                str(LLAMA_SERVER_CTX),
                *flags,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args.get(name, ()),
            ],
            "/health",
            "openai",
            lambda n: {"ignore_eos": True},
            env={"LD_LIBRARY_PATH": str(exe.parent)},
        )

    peers = [
        pocketlm("pocketlm", "pocketlm", model or str(gguf)),
        # The same weights exactly as the file has them (the embedded one: Q4_1), the quantization
        # lever of NOTES.md; the default runs the embedded model requantized to q8_0.
        pocketlm("pocketlm-file", "pocketlm on the GGUF file as it is", str(gguf)),
        # The KV-cache lever: q8_0 values, less memory than the default's f16 values (benchmarks/NOTES.md).
        pocketlm(KV_VARIANT, "pocketlm --kv-type q8_0", model or str(gguf), "--kv-type", "q8_0"),
        # Prompt-lookup drafting off: what the drafts bring, in the same run.
        pocketlm(NO_DRAFTS, "pocketlm --draft-tokens 0", model or str(gguf), "--draft-tokens", "0"),
        PeerSpec(
            "llama-cpp",
            "llama-cpp-python server",
            # interrupt_requests defaults to True: a new request ends the stream in progress,
            # which would turn concurrency into truncated answers. Off, it queues requests.
            lambda port: [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--n_threads",
                str(THREADS),
                "--n_threads_batch",
                str(THREADS),
                "--interrupt_requests",
                "False",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args.get("llama-cpp", ()),
            ],
            "/v1/models",
            "openai",
            lambda n: {"min_tokens": n},
        ),
        PeerSpec(
            "transformers",
            "transformers serve --continuous-batching",
            # The positional model is preloaded before the port opens and pins every request to it;
            # requests must then omit "model" (or repeat the same string).
            lambda port: [
                str(BIN / "transformers"),
                "serve",
                str(hf_dir),
                "--continuous-batching",
                "--device",
                "cpu",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args.get("transformers", ()),
            ],
            "/health",
            "openai",
            lambda n: {"generation_config": json.dumps({"eos_token_id": -1, "max_new_tokens": n})},
            env=torch_env,
        ),
        PeerSpec(
            "flask",
            "Flask + generate (seeds)",
            lambda port: [
                sys.executable,
                str(Path(__file__).with_name("flask_app.py")),
                "--model",
                str(hf_dir),
                "--threads",
                str(THREADS),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args.get("flask", ()),
            ],
            "/health",
            "generate",
            lambda n: {"ignore_eos": True},
            env=torch_env,
        ),
        llama_cpp_server("llama-server", "llama-server (pocketlm's file)", served or gguf),
        llama_cpp_server("llama-server-file", "llama-server on the GGUF file as it is", gguf),
        # llama-server's own prompt-lookup drafting (off by default), set like pocketlm's: the last 3 tokens
        # looked up in the text so far, up to 3 drafted (--draft-tokens).
        llama_cpp_server(
            NGRAM_PEER,
            "llama-server --spec-type ngram-simple (n=3, m=3)",
            served or gguf,
            "--spec-type",
            "ngram-simple",
            "--spec-ngram-simple-size-n",
            "3",
            "--spec-ngram-simple-size-m",
            "3",
        ),
    ]
    return {p.name: p for p in peers}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(RuntimeError):
    pass


class RunningServer:
    """A started peer: `with RunningServer(spec, log_dir) as srv: ...` stops it on the way out."""

    def __init__(self, spec: PeerSpec, log_dir: Path, ready_timeout_s: float = 180.0):
        self.spec = spec
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{spec.name}-{self.port}.log"
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen | None = None
        self.ready_s: float | None = None  # start -> readiness URL answers 200
        self.started_at: float | None = None  # time.perf_counter() at process start

    def target(self, max_tokens: int) -> Target:
        return Target(self.base_url, self.spec.api, self.spec.model, self.spec.extra(max_tokens))

    def __enter__(self) -> RunningServer:
        env = {**os.environ, **self.spec.env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with open(self.log_path, "wb") as log:
            self.started_at = start = time.perf_counter()
            self.proc = subprocess.Popen(
                self.spec.argv(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready(start)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def _wait_ready(self, start: float) -> None:
        url = self.base_url + self.spec.ready_path
        deadline = start + self.ready_timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise ServerFailed(
                        f"{self.spec.name} exited with code {self.proc.returncode} before it was ready; "
                        f"last log lines:\n{self.log_tail()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        self.ready_s = time.perf_counter() - start
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                time.sleep(0.1)
        raise ServerFailed(
            f"{self.spec.name} not ready after {self.ready_timeout_s:.0f} s ({url}); last log lines:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 15) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the server and every process it started, in MB."""
        return sum(_vm_hwm_kb(pid) for pid in _process_tree(self.proc.pid)) / 1024

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group (workers, a server that ignored SIGTERM)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)


def _process_tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass  # the thread or process ended meanwhile
    return pids


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
