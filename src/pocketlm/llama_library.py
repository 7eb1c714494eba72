"""The llama.cpp library (through llama-cpp-python's ctypes bindings), initialised once.

Both the llama.cpp backend (inference) and ``pocketlm.models`` (requantizing
GGUF files) call into llama.cpp; this module loads it, keeps its chatter off the
terminal and starts its backend, so each of them just imports ``C`` from here.

Which library: pocketlm's build of llama.cpp's CPU kernels when ``make install`` made one
(``python -m pocketlm.llama_library``), else llama-cpp-python's own. llama.cpp computes a row of
flash attention on one of three kernels, chosen by what else the pass holds (64 rows of a sequence or
fewer, a lone row or several), and they round differently: with f16 keys a seeded text changed when
other requests ran beside it or when it drafted. Keys stored as q8_0 take one kernel, the slowest
for long prompts. pocketlm's build is ``libggml-cpu`` from the same llama.cpp source with one patch
(``assets/llama-cpp-kernels.patch``): f16 keys and values always take the tiled kernel, and a few
rows take it without its packing, several cells' FMA chains at once, so decoding costs no more than
on llama.cpp's own kernels (less past a few hundred cells); a tile's mask is converted only when the
tile is not skipped. Its quantized products convert a block's scale with one instruction instead of a
table lookup; a q8_0 product of 1-16 rows (a few streams, a stream and its draft) reads the weights
once, row after row (a pass of 2 rows costs ~1.2x one row's, where it cost ~1.9x); a prompt's many
rows take one instruction less a cell. The numbers are llama.cpp's own, bit for bit.
``ONE_PATH_ATTENTION`` says whether that build is the one loaded; the backend then stores keys as f16
(``backends/llamacpp.py``). Measured: benchmarks/NOTES.md, "one path", "four chains", "mask bits" and
"few-row products".
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata, resources
from pathlib import Path

from pocketlm.files import atomic_path, cache_dir
from pocketlm.settings import cores

PATCH = resources.files("pocketlm") / "assets" / "llama-cpp-kernels.patch"
# How pocketlm builds llama.cpp (here one library; benchmarks/llama_server.py adds the server to them).
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
    "-DGGML_NATIVE=ON",
]


def built_dir(native: bool | None = None) -> Path:
    """Where pocketlm's build for the installed llama-cpp-python and this patch lives (it may not exist).

    A native build (``GGML_NATIVE``, the default: ``native`` None reads the build flags) uses every instruction of
    the CPU it was built on, so it is kept per CPU: a cache carried to a CPU without AVX-512 (a shared home
    directory, a restored CI cache) then holds no build for it, instead of one that dies on an illegal
    instruction. A portable build (the Docker image's) is kept under the patch's digest alone."""
    digest = hashlib.sha256(PATCH.read_bytes())
    if _native(cmake_flags()) if native is None else native:
        digest.update(" ".join(sorted(cpu_features())).encode())
    return cache_dir("llama-library", f"{metadata.version('llama-cpp-python')}-{digest.hexdigest()[:12]}")


def cpu_features() -> set[str]:
    """The CPU's feature flags as Linux lists them (``/proc/cpuinfo``); empty where it does not."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("flags", "Features"):  # x86 / ARM
                return set(value.split())
    except OSError:
        pass
    return set()


def cpu_fits() -> bool:
    """The patch's few-row kernels need AVX2, F16C and FMA; without them decoding on the tiled kernel costs
    about twice as much, so elsewhere llama-cpp-python's library (and q8_0 keys) stay."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return {"avx2", "f16c", "fma"} <= cpu_features()


def build(jobs: int | None = None) -> Path:
    """Build pocketlm's ``libggml-cpu`` (about a minute) beside copies of llama-cpp-python's other libraries, once;
    return the directory."""
    dst = built_dir()
    if (dst / "libllama.so").exists():
        return dst
    work = cache_dir("llama-library", f"{dst.name}.build")
    shutil.rmtree(work, ignore_errors=True)  # a fresh source each time: the patch applies once
    work.mkdir(parents=True)
    src = vendored_source(metadata.version("llama-cpp-python"), work)
    subprocess.run(["patch", "-p1", "-s", "-d", str(src), "-i", str(PATCH)], check=True)
    build = work / "build"
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), *cmake_flags()], check=True, stdout=subprocess.DEVNULL)
    target = ["--target", "ggml-cpu", "--parallel", str(jobs or cores())]
    subprocess.run(["cmake", "--build", str(build), *target], check=True)
    [built] = {p.resolve() for p in build.rglob("libggml-cpu.so*")}
    installed = Path(metadata.distribution("llama-cpp-python").locate_file("llama_cpp")) / "lib"
    with atomic_path(dst, directory=True) as staging:
        for f in installed.iterdir():
            shutil.copy2(built if f.name.startswith("libggml-cpu.so") else f, staging / f.name, follow_symlinks=True)
    shutil.rmtree(work, ignore_errors=True)
    return dst


def cmake_flags() -> list[str]:
    """pocketlm's switches, then ``CMAKE_ARGS`` (which llama-cpp-python's own build reads): CMake keeps the last
    ``-D`` of a name, so one variable makes both libraries alike (the Docker image's portable x86 build)."""
    return [*CMAKE_FLAGS, *shlex.split(os.environ.get("CMAKE_ARGS", ""))]


def _native(flags: list[str]) -> bool:
    """Whether the last ``-DGGML_NATIVE`` of the flags (the one CMake keeps) asks for the build CPU's instructions."""
    values = [f.partition("=")[2] for f in flags if f.partition("=")[0] in ("-DGGML_NATIVE", "-DGGML_NATIVE:BOOL")]
    return bool(values) and values[-1].upper() in ("ON", "1", "TRUE", "YES", "Y")


def vendored_source(version: str, work: Path) -> Path:
    """The llama.cpp that llama-cpp-python ``version`` vendors: its sdist (pip, from PyPI, not built) unpacked in
    ``work``."""
    unpacked = list(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
    if unpacked:
        return unpacked[0]
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", str(work)]
    subprocess.run([*pip, f"llama-cpp-python=={version}"], check=True)
    # Python before 3.11.4 (Debian bookworm's 3.11.2) has no extraction filters
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(next(work.glob("llama_cpp_python-*.tar.gz"))) as tar:
        tar.extractall(work, **safe)
    return next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))


def _choose() -> bool:
    """Point llama-cpp-python at pocketlm's build before it loads, unless LLAMA_CPP_LIB_PATH already names a
    library (the user's choice, or this choice inherited by a child process); whether the build is the one."""
    built = [d for d in (built_dir(native=True), built_dir(native=False)) if (d / "libllama.so").exists()]
    if "LLAMA_CPP_LIB_PATH" not in os.environ and built and cpu_fits():
        os.environ["LLAMA_CPP_LIB_PATH"] = str(built[0])
    return Path(os.environ.get("LLAMA_CPP_LIB_PATH", "")).resolve() in {d.resolve() for d in built}


ONE_PATH_ATTENTION = _choose()

import llama_cpp as C  # noqa: E402  (after the library's directory is chosen: it loads on import)

_LOG_ERROR = 4  # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error


@C.llama_log_callback
def _quiet_log(level, text, user_data):
    """Errors reach users through exceptions; POCKETLM_DEBUG=1 shows llama.cpp's own error lines too."""
    if level == _LOG_ERROR and os.environ.get("POCKETLM_DEBUG"):
        print(text.decode("utf-8", "replace"), end="")


C.llama_log_set(_quiet_log, ctypes.c_void_p())
C.llama_backend_init()

__all__ = ["C", "ONE_PATH_ATTENTION"]

if __name__ == "__main__":  # `make install`: build once, where this CPU can use it
    print(build() if cpu_fits() else "this CPU lacks AVX2/F16C/FMA: llama-cpp-python's own library stays")
