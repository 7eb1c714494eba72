"""Faults survived: killed writers and servers, damaged cache entries, a full disk.

Every cache entry records its files' sizes and SHA-256 when written
(pocketlm.files.cached); these tests damage entries the ways a crash or a bad
disk does and check the entry is made again, never loaded, and that a full
disk is one clear error with nothing half-written left that looks complete.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from api_server import Server, sse_events
from pocketlm import files
from pocketlm.errors import DiskFull
from pocketlm.models import conversions
from tiny_models import tiny_model_dir


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Names in a cache directory other than entries, their records and lock files."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


# ---------------------------------------------------------------- files.cached, alone


def test_an_entry_is_made_once_and_recorded(tmp_path):
    made = []

    def make(scratch: Path) -> None:
        made.append(scratch)
        scratch.write_bytes(b"weights" * 100)

    entry = files.cached(tmp_path / "model.bin", make)
    assert files.cached(tmp_path / "model.bin", make) == entry and len(made) == 1
    record = json.loads((tmp_path / "model.bin.integrity.json").read_text())["files"]
    assert record == {"": {"size": 700, "sha256": sha256(entry)}}


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete_record", "extra_file", "missing_file"])
def test_a_damaged_directory_entry_is_made_again(tmp_path, damage):
    def make(scratch: Path) -> None:
        (scratch / "config.json").write_text("{}")
        (scratch / "model.safetensors").write_bytes(bytes(range(256)) * 40)

    entry = files.cached(tmp_path / "hf", make, directory=True)
    weights = entry / "model.safetensors"
    good = sha256(weights)
    if damage == "truncate":
        os.truncate(weights, 100)
    elif damage == "flip_byte":
        data = bytearray(weights.read_bytes())
        data[5000] ^= 0xFF
        weights.write_bytes(bytes(data))  # same size: only the hash tells
    elif damage == "delete_record":  # the writer was killed between the rename and the record
        (tmp_path / "hf.integrity.json").unlink()
    elif damage == "extra_file":
        (entry / "stray.bin").write_bytes(b"x")
    else:
        (entry / "config.json").unlink()
    assert not files.entry_intact(entry)
    assert files.cached(tmp_path / "hf", make, directory=True) == entry
    assert files.entry_intact(entry) and sha256(weights) == good and not (entry / "stray.bin").exists()


def test_a_writer_killed_mid_write_leaves_no_stale_lock_or_partial(tmp_path):
    """SIGKILL while the entry is being written: the next process makes it at once (the lock died with the writer)."""
    entry = tmp_path / "cache" / "model.gguf"
    writer = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from pocketlm import files

        def make(scratch):
            with open(scratch, "wb") as f:
                f.write(b"half" * 250_000)
                f.flush()
                Path({str(tmp_path / "writing")!r}).touch()
                time.sleep(600)

        files.cached(Path({str(entry)!r}), make)
    """)
    process = subprocess.Popen([sys.executable, "-c", writer])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "writing").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert leftovers(entry.parent)  # the scratch file is there, hidden and named .partial
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert not entry.exists()
    started = time.monotonic()
    files.cached(entry, lambda scratch: scratch.write_bytes(b"whole"))
    assert time.monotonic() - started < 5  # no wait for a lock nobody holds
    assert entry.read_bytes() == b"whole" and leftovers(entry.parent) == []


def test_an_injected_enospc_is_one_clear_error_and_leaves_nothing(tmp_path):
    def fill_the_disk(scratch: Path) -> None:
        with open(scratch, "wb") as f:
            f.write(b"\0" * 10_000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiskFull, match=r"no space left on the disk that holds .*model\.gguf.*another disk"):
        files.cached(tmp_path / "model.gguf", fill_the_disk)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.gguf.lock"]  # no entry, record or scratch file


# ---------------------------------------------------------------- the real caches


def test_a_truncated_conversion_is_converted_again_not_loaded(tmp_path, monkeypatch):
    from pocketlm.models.gguf_info import read_gguf_info

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    src = shutil.copytree(tiny_model_dir("gpt2"), tmp_path / "model")
    out = conversions.gguf_for(src, quantization="f32", progress=False)
    good = sha256(out)
    os.truncate(out, out.stat().st_size // 2)  # what a copy or a disk error cut short looks like
    again = conversions.gguf_for(src, quantization="f32", progress=False)
    assert again == out and sha256(again) == good
    assert read_gguf_info(again).quantization == "ALL_F32"  # it reads: the whole file is there


def test_a_corrupted_requantization_is_redone(tmp_path, monkeypatch):
    from pocketlm.models import resolve

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    src = resolve("smollm2-135m-instruct").path
    out = conversions.requantized(src, "q8_0", progress=False)
    good = sha256(out)
    with open(out, "r+b") as f:  # same size, some bytes of the weights changed
        f.seek(out.stat().st_size // 2)
        f.write(b"\xff" * 64)
    assert conversions.requantized(src, "q8_0", progress=False) == out and sha256(out) == good


def test_an_injected_enospc_during_conversion(tmp_path, monkeypatch):
    """The GGUF writer hits a full disk half-way through the tensors."""
    import gguf

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    real = gguf.GGUFWriter.write_tensors_to_file

    def full_disk(self, *args, **kwargs):
        self.fout[0].write(b"\0" * 4096) if self.fout else None
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full_disk)
    with pytest.raises(DiskFull, match="no space left"):
        conversions.gguf_for(tiny_model_dir("gpt2"), quantization="f32", progress=False)
    converted = tmp_path / "cache" / "converted"
    assert [p.name for p in converted.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", real)
    again = conversions.gguf_for(tiny_model_dir("gpt2"), quantization="f32", progress=False)
    assert again.is_file()  # space again: works


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs: a real full disk (needs root to mount; CI containers run tests as root)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the injected-ENOSPC tests cover this path")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_cli_conversion_and_requantization(small_disk, tmp_path):
    """Real ENOSPC from a 1 MB tmpfs: the Python GGUF writer (HF -> GGUF) and llama.cpp's native quantizer."""
    from pocketlm.models import resolve

    env = {**os.environ, "POCKETLM_CACHE": str(small_disk / "cache")}
    runs = {
        "hf_to_gguf": [
            "convert",
            "--model",
            str(tiny_model_dir("llama")),
            "--output",
            str(small_disk / "tiny.gguf"),
            "--quantization",
            "f32",
        ],
        "requantize": [
            "convert",
            "--model",
            str(resolve(None).path),
            "--output",
            str(small_disk / "smol.gguf"),
            "--quantization",
            "q8_0",
        ],
    }
    for name, args in runs.items():
        done = subprocess.run(
            [sys.executable, "-m", "pocketlm", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "no space left on the disk" in errors[0], (name, done.stderr)
        assert "Traceback" not in done.stderr
        assert [p.name for p in small_disk.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == [], name


# ---------------------------------------------------------------- the server


def test_a_server_killed_mid_stream_restarts_clean(tmp_path):
    """SIGKILL while streaming (after the first start made its q8_0 cache entry): the next start serves."""
    env = {"POCKETLM_CACHE": str(tmp_path)}
    body = {"prompt": "Once upon a time", "max_tokens": 200, "ignore_eos": True, "stream": True}
    first = Server("--slots", "2", env=env)
    try:
        with httpx.stream("POST", f"{first.url}/v1/completions", json=body, timeout=120) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            first.process.send_signal(signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                for _ in lines:
                    pass
        assert first.process.wait(timeout=30) == -signal.SIGKILL
    finally:
        first.stop()
    second = Server("--slots", "2", env=env)
    try:
        started = time.monotonic()
        response = httpx.post(
            f"{second.url}/v1/completions", timeout=60, json={**body, "max_tokens": 8, "stream": True}
        )
        assert response.status_code == 200 and sse_events(response.text.splitlines())[-1] == "[DONE]"
        assert time.monotonic() - started < 60
        assert "making it again" not in second.log()  # the first start's entry was whole: reused
    finally:
        second.stop()
    assert leftovers(tmp_path / "converted") == []


def test_finished_cache_files_have_the_usual_mode_not_a_private_one(tmp_path):
    import os

    from pocketlm.files import atomic_path

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"x")
        with atomic_path(tmp_path / "d", directory=True) as tmp:
            (tmp / "a").write_bytes(b"y")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
