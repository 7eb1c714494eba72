"""pocketlm's files on disk: where the cache lives, cache keys, and writes that land whole.

Every file pocketlm makes (assembled and converted models, merged adapters,
downloaded data, checkpoints) is written aside and renamed into place only when
complete. A rename within one filesystem is atomic, so an interrupted run (kill,
full disk, power cut) never leaves a file or directory that looks finished: the
next run sees nothing there and makes it again.

A cache entry (``cached``) goes one step further: when it is written, the size
and SHA-256 of each of its files are recorded beside it (``<name>.integrity.json``),
and every later use checks them first. An entry damaged since (truncated, bytes
changed, a file missing, or a record missing because the writer was killed
between the rename and the record) is made again, never loaded. A full disk
is one clear error (``DiskFull``), with nothing half-written left behind.

This module sits at the bottom of the package: it imports only ``pocketlm.errors``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pocketlm.errors import DiskFull

log = logging.getLogger("pocketlm.files")

CACHE_ENV = "POCKETLM_CACHE"


def cache_dir(*parts: str) -> Path:
    """``$POCKETLM_CACHE/<parts>`` (default ``~/.cache/pocketlm``); not created."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pocketlm").expanduser()
    return root.joinpath(*parts)


def cache_key(*, files: Iterable[Path] = (), text: Iterable[str] = ()) -> str:
    """SHA-256 over some strings and each file's name and content (files in name order).

    The strings carry what else decides the cached result (the kind of cache, a
    converter version, a target type), so two kinds of entry never share a key.
    """
    h = hashlib.sha256()
    for part in text:
        h.update(f"{part}\n".encode())
    for file in sorted(Path(f) for f in files):
        h.update(f"{file.name}\n".encode())
        with open(file, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(dst: str | Path, *, directory: bool = False, durable: bool = False) -> Iterator[Path]:
    """Yield a scratch path beside ``dst``; when the block ends without error, it replaces ``dst``.

    The scratch name starts with a dot and ends in ``.partial``, so nothing
    mistakes it for a finished file; it is removed whatever happens. With
    ``directory`` the scratch path is an (empty) directory, and an existing
    ``dst`` directory is replaced. ``durable`` flushes the data to disk before
    the rename makes it visible (for files that must survive a power cut).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent)
        os.close(fd)
        tmp = Path(name)
    _readable_like_any_new_file(tmp)
    try:
        try:
            yield tmp
        except BaseException as exc:
            _raise_if_disk_full(exc, dst)
            raise
        if durable:
            fsync_tree(tmp)
        if directory and dst.is_dir():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
        if durable:
            fsync(dst.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _readable_like_any_new_file(path: Path) -> None:
    """mkstemp/mkdtemp make private (0600/0700) paths; a finished file gets the usual mode (umask applies),
    so a cache made by one user (a container's build step) can be read by another (its runtime user)."""
    path.chmod((0o777 if path.is_dir() else 0o666) & ~_umask())


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would change it for every thread a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def cached(dst: str | Path, make: Callable[[Path], object], *, directory: bool = False) -> Path:
    """The cache entry ``dst``, made by ``make(scratch_path)`` unless an intact one is already there.

    The one way every cache in pocketlm is filled. Under an exclusive lock on
    the entry (two processes starting at once make it once; the kernel drops
    the lock of a killed process, so no stale lock survives a crash): check the
    recorded sizes and hashes, and if they do not match, remove what is there
    (a damaged entry, scratch files of a killed writer) and make it again.
    """
    dst = Path(dst)
    with _locked(dst):
        if entry_intact(dst):
            return dst
        if dst.exists() or _record_path(dst).exists():
            log.warning(
                "cache entry %s is incomplete or damaged (size/hash differ from its record); making it again", dst
            )
        _discard(dst)
        with atomic_path(dst, directory=directory) as tmp:
            make(tmp)
        try:
            write_text(_record_path(dst), json.dumps({"files": _inventory(dst)}, indent=1))
        except BaseException as exc:
            _raise_if_disk_full(exc, dst)
            raise
    return dst


def entry_intact(dst: str | Path) -> bool:
    """Whether the cache entry ``dst`` exists and every file matches the size and SHA-256 recorded
    when it was written."""
    dst = Path(dst)
    try:
        recorded = json.loads(_record_path(dst).read_text())["files"]
        if not dst.exists():
            return False
        actual = _listing(dst)
        if sorted(actual) != sorted(recorded):
            return False
        if any(actual[name].stat().st_size != recorded[name]["size"] for name in recorded):
            return False
        return all(_sha256(actual[name]) == recorded[name]["sha256"] for name in recorded)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def remove_entry(dst: str | Path) -> None:
    """Remove the cache entry ``dst`` and its record, under its lock (a process mapping its files keeps them)."""
    dst = Path(dst)
    with _locked(dst):
        _discard(dst)


def _record_path(dst: Path) -> Path:
    return dst.with_name(dst.name + ".integrity.json")


def _listing(dst: Path) -> dict[str, Path]:
    """Relative name -> path of every file of an entry ('' for a single file)."""
    if dst.is_file():
        return {"": dst}
    return {str(p.relative_to(dst)): p for p in sorted(dst.rglob("*")) if p.is_file()}


def _inventory(dst: Path) -> dict[str, dict]:
    return {name: {"size": path.stat().st_size, "sha256": _sha256(path)} for name, path in _listing(dst).items()}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _discard(dst: Path) -> None:
    """Remove an entry, its record and scratch files killed writers left beside it (the caller holds the lock)."""
    _record_path(dst).unlink(missing_ok=True)
    # a writer's scratch path, and the scratch path of a writer nested in it (atomic_path inside `make`)
    scratch = [*dst.parent.glob(f".{dst.name}.*.partial"), *dst.parent.glob(f"..{dst.name}.*.partial")]
    for stale in [dst, *scratch]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.exists() or stale.is_symlink():
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(dst: Path) -> Iterator[None]:
    """An exclusive advisory lock for one cache entry (``.<name>.lock`` beside it)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dst.parent / f".{dst.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock; so does the death of the process


_FULL = (errno.ENOSPC, errno.EDQUOT)
_NEARLY_FULL = 1 << 20  # bytes: a write that failed with less than this free failed for want of space


def _raise_if_disk_full(exc: BaseException, dst: Path) -> None:
    """Turn a failed write into DiskFull when the disk is full.

    Python code raises OSError(ENOSPC); a native writer (llama.cpp's quantizer)
    only reports failure, so the free space left right after the failure decides.
    """
    if isinstance(exc, DiskFull):
        return
    cause: BaseException | None = exc
    full = False
    while cause is not None and not full:
        full = isinstance(cause, OSError) and cause.errno in _FULL
        cause = cause.__cause__ or cause.__context__
    try:
        free = shutil.disk_usage(dst.parent).free
    except OSError:
        free = None
    if not full and (free is None or free >= _NEARLY_FULL or not isinstance(exc, Exception)):
        return
    in_cache = dst.resolve().is_relative_to(cache_dir().resolve())
    where = " (or point POCKETLM_CACHE at a bigger disk)" if in_cache else " (or write to another disk)"
    raise DiskFull(
        f"no space left on the disk that holds {dst.parent} ({_size(free)} free) while writing {dst.name}; "
        f"nothing half-written was kept. Free some space there{where} and run again"
    ) from None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` so that readers see the old content or the new, never half."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def fsync_tree(path: Path) -> None:
    """Flush a file, or every file of a directory and the directory itself, to disk."""
    if path.is_file():
        fsync(path)
        return
    for root, _dirs, names in os.walk(path):
        for name in names:
            fsync(Path(root) / name)
    fsync(path)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
