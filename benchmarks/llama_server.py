"""Build llama.cpp's own HTTP server (`llama-server`) once, from the llama.cpp pocketlm runs.

    python benchmarks/llama_server.py     # build if missing, print the binary's path

The source is the llama.cpp that the pinned llama-cpp-python sdist vendors (`vendor/llama.cpp`),
so both servers run the same kernels. No web UI, no OpenSSL, no curl: the benchmark only needs
the HTTP API on loopback. The build (~8 min on 2 idle cores) lands in
`$POCKETLM_CACHE/llama-server/<version>/` with its shared libraries beside it, and is reused.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from pocketlm import llama_library
from pocketlm.files import atomic_path, cache_dir

# pocketlm's own llama.cpp build switches, plus the server (CMake takes the last -D of a name); no web UI.
CMAKE_FLAGS = [
    *llama_library.CMAKE_FLAGS,
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
]


def version() -> str:
    """The llama-cpp-python version installed here: the llama.cpp both servers share."""
    return metadata.version("llama-cpp-python")


def binary(ver: str | None = None) -> Path:
    """Where the built server lives (it may not exist yet)."""
    return cache_dir("llama-server", ver or version()) / "llama-server"


def ensure(ver: str | None = None, jobs: int = 2) -> Path:
    """The path of a built `llama-server` for `ver`, building it first when missing."""
    ver = ver or version()
    exe = binary(ver)
    if exe.exists():
        return exe
    # The work tree survives an interrupted build (ninja resumes it); it is removed once installed.
    work = cache_dir("llama-server", f"{ver}.build")
    work.mkdir(parents=True, exist_ok=True)
    src = llama_library.vendored_source(ver, work)
    build = work / "build"
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", "Ninja", *CMAKE_FLAGS], check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", f"-j{jobs}"], check=True)
    # The server links libllama/libggml*; they travel with it (peers.py sets LD_LIBRARY_PATH).
    with atomic_path(exe.parent, directory=True) as staging:
        for f in (build / "bin").iterdir():
            if f.name == "llama-server" or ".so" in f.name:
                shutil.copy2(f, staging / f.name, follow_symlinks=True)
    shutil.rmtree(work, ignore_errors=True)
    return exe


if __name__ == "__main__":
    print(ensure())
