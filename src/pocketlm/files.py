"""pocketlm's files on disk: where the cache lives, cache keys, and writes that land whole.

Every file pocketlm makes (assembled and converted models, merged adapters,
downloaded data, checkpoints) is written aside and renamed into place only when
complete. A rename within one filesystem is atomic, so an interrupted run (kill,
full disk, power cut) never leaves a file or directory that looks finished: the
next run sees nothing there and makes it again.

This module sits at the bottom of the package: it imports nothing from pocketlm.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

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
    try:
        yield tmp
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
