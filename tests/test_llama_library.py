"""Which llama.cpp library loads, and what pocketlm's build of its kernels promises: a row's logits do not depend
on what else its pass holds, with f16 keys and values (llama.cpp as shipped: they did), whichever product kernel
its pass's row count takes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pocketlm.backends.base import Chunk
from pocketlm.backends.llamacpp import LlamaCppBackend, _kv_types
from pocketlm.llama_library import ONE_PATH_ATTENTION, built_dir, cmake_flags, cpu_fits
from pocketlm.models.options import ModelOptions
from pocketlm.models.prepare import prepare

needs_kernel = pytest.mark.skipif(not ONE_PATH_ATTENTION, reason="pocketlm's attention kernel (make install, x86 AVX2)")


def _loaded(env=None) -> str:
    code = "import os; from pocketlm.llama_library import ONE_PATH_ATTENTION as one; print(one)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


def test_make_install_built_the_kernel_and_it_is_the_one_loaded():
    if not cpu_fits():
        assert not ONE_PATH_ATTENTION  # llama-cpp-python's own library, and q8_0 keys
        return
    assert (built_dir() / "libllama.so").exists() and (built_dir() / "libggml-cpu.so").exists()
    assert ONE_PATH_ATTENTION and os.environ["LLAMA_CPP_LIB_PATH"] == str(built_dir())
    assert _loaded() == "True"  # a child process (a server a test starts) inherits the choice


def test_cmake_args_override_pocketlms_switches(tmp_path, monkeypatch):
    """The Docker image builds both libraries portably with one CMAKE_ARGS; CMake itself says which -D won."""
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_NATIVE=OFF  -DGGML_AVX2=ON")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.14)\nproject(p NONE)\n"
        'message(STATUS "native=${GGML_NATIVE} avx2=${GGML_AVX2}")\n'
    )
    out = subprocess.run(
        ["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b"), *cmake_flags()], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "native=OFF avx2=ON" in out.stdout


def test_a_native_build_is_kept_per_cpu_and_a_portable_one_is_not(monkeypatch):
    """A native build carried to a CPU with other instructions must not be found there (it could die on SIGILL)."""
    import pocketlm.llama_library as lib

    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    here, portable = lib.built_dir(), lib.built_dir(native=False)
    assert here == lib.built_dir(native=True) != portable  # GGML_NATIVE=ON is pocketlm's default
    monkeypatch.setattr(lib, "cpu_features", lambda: {"sse2", "avx2", "fma", "f16c"})  # a CPU without AVX-512
    assert lib.built_dir() != here and lib.built_dir(native=False) == portable
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_NATIVE=OFF -DGGML_AVX2=ON")  # the Docker image's build
    assert lib.built_dir() == portable


def test_a_library_the_user_names_is_kept():
    import llama_cpp

    own = str(Path(llama_cpp.__file__).parent / "lib")
    assert _loaded({**os.environ, "LLAMA_CPP_LIB_PATH": own}) == "False"


def test_auto_stores_f16_keys_on_the_kernel_and_q8_0_keys_without():
    assert _kv_types("auto", 64, one_path=True) == ("f16", "f16")
    assert _kv_types("auto", 64, one_path=False) == ("q8_0", "f16")
    assert _kv_types("auto", 80, one_path=False) == ("f16", "f16")  # q8_0 needs heads a multiple of 32 wide
    assert _kv_types("q8_0/f16", 64, one_path=True) == ("q8_0", "f16")  # an explicit choice stays


@pytest.fixture(scope="module")
def f16_backend():
    backend = LlamaCppBackend(prepare(ModelOptions()).path, slots=16, n_ctx=1024, kv_type="f16")
    yield backend
    backend.close()


@needs_kernel
def test_a_row_past_512_cells_is_the_same_alone_beside_others_and_with_drafts(f16_backend):
    """Alone, one row of one sequence past 512 cells took llama.cpp's split kernel; beside others, its one-row
    kernel; with drafted rows, the one-row kernel over several rows."""
    be = f16_backend
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(100, 40000, 700)]
    for slot in range(16):
        prompt = ids[slot : slot + 600]
        be.clear_slot(slot)
        be.forward([Chunk(slot, prompt[:512], 0, 1)])
        be.forward([Chunk(slot, prompt[512:], 512, 1)])
    nxt = ids[650:656]
    alone = be.forward([Chunk(0, nxt[:1], 600, 1)])[0].copy()
    be.clear_slot(0, 600)
    beside = be.forward([Chunk(s, nxt[:1], 600, 1) for s in range(16)])[0].copy()
    for s in range(16):
        be.clear_slot(s, 600)
    drafted = []
    # Attention: up to 4 rows of a sequence skip the tiled kernel's packing, more take its GEMMs. The q8_0 weight
    # products: 1-16 rows stream the weights once (8 rows at a time: 9 is 8 + 1), more take llama.cpp's tiles.
    for rows in (2, 3, 4, 6, 9, 17):
        drafted.append(be.forward([Chunk(0, nxt[:rows], 600, rows)]).copy())
        be.clear_slot(0, 600)
    assert np.array_equal(alone, beside) and all(np.array_equal(alone, rows[0]) for rows in drafted)
    # every row of a few, each on its own chains, as the GEMMs compute it
    assert all(np.array_equal(rows, drafted[-1][: len(rows)]) for rows in drafted[:-1])


@needs_kernel
def test_a_prompt_reads_the_same_in_any_chunks(f16_backend):
    """The tiled kernel from 64 rows, the one-row kernel under: a prompt's last row differed by how the engine's
    step budget cut the prompt."""
    be = f16_backend
    ids = [int(t) for t in np.random.default_rng(1).integers(100, 40000, 300)]
    last = {}
    for size in (300, 64, 7):
        be.clear_slot(0)
        for start in range(0, len(ids), size):
            part = ids[start : start + size]
            row = be.forward([Chunk(0, part, start, 1)])[-1].copy()
        last[size] = row
    assert np.array_equal(last[300], last[64]) and np.array_equal(last[300], last[7])
