"""The conversion cache: each conversion a model needs, made once and kept in ``$POCKETLM_CACHE/converted``.

- ``gguf_for``: a Hugging Face directory as a GGUF, for llama.cpp; keyed by the
  content of the directory's files, so an edited model converts again;
- ``requantized``: a GGUF file in another type; keyed by the file's identity;
- ``hf_dir_for``: a GGUF file as a Hugging Face directory, for transformers;
- ``merged_for``: a LoRA adapter merged into its base model, as a Hugging Face
  directory; keyed by the content of the adapter and of the base.

Every entry is filled through ``files.cached`` (written aside, then renamed, with
the size and hash of its files recorded and checked at every use). Beside each
entry a small record says what it was made from, for `pocketlm models`, and so
that a changed source replaces its old conversions instead of piling them up.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from pocketlm.errors import ModelLoadError
from pocketlm.files import cache_dir, cache_key, cached, entry_intact, remove_entry, write_text
from pocketlm.models.adapters import adapter_base, merge_adapter
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.gguf_to_hf import gguf_to_hf
from pocketlm.models.gguf_writer import (
    CONVERTER_VERSION,
    architecture_converts,
    check_convertible,
    hf_to_gguf,
    requantize_gguf,
)
from pocketlm.models.hf import inspect_hf_dir, model_files
from pocketlm.models.quantization import RUN_QUANTIZATION, check_quantization, file_type

log = logging.getLogger("pocketlm.models")

CONVERTED = "converted"  # the cache's folder for conversions: $POCKETLM_CACHE/converted
_DIRECTORIES = ("hf", "merged")  # the kinds of entry that are directories; the others are .gguf files


def gguf_for(
    path: str | Path,
    *,
    required: bool = False,
    quantization: str = RUN_QUANTIZATION,
    progress: bool = True,
    allow_pickle: bool = False,
) -> Path | None:
    """The cached GGUF conversion of the HF directory ``path``, converting on first use.

    None when the architecture does not convert (the caller falls back to
    torch); with ``required`` (``--backend llama.cpp``) that is an error instead.
    The cache is keyed by the content hash, so an edited model converts again.
    """
    check_quantization(quantization)
    path = Path(path)
    hf = inspect_hf_dir(path, allow_pickle=allow_pickle)
    if required:
        check_convertible(hf)
    elif architecture_converts(hf) is not None:
        return None
    key = cache_key(files=model_files(hf), text=(f"pocketlm-convert-{CONVERTER_VERSION}",))
    out = cache_dir(CONVERTED, f"{path.name}-{key[:16]}-{quantization}.gguf")
    if entry_intact(out):
        return out

    def convert(scratch: Path) -> None:
        if progress:
            print(
                f"converting {path.name} to GGUF {quantization} for llama.cpp (once; cached in {out.parent})",
                file=sys.stderr,
            )
        hf_to_gguf(path, scratch, quantization, allow_pickle=allow_pickle, progress=progress)

    try:
        cached(out, convert)
    except ModelLoadError:
        if required:
            raise
        return None  # e.g. an unusual tokenizer: torch can still run the model
    _record_source(out, path, quantization)
    return out


def requantized(path: str | Path, quantization: str, *, n_threads: int | None = None, progress: bool = True) -> Path:
    """The GGUF file ``path`` requantized to ``quantization``, cached; ``path`` itself when already of that type.

    ``n_threads``: the CPU threads llama.cpp quantizes with (the user's ``--threads``; None: every core).
    """
    path = Path(path)
    if read_gguf_info(path).metadata.get("general.file_type") == file_type(quantization):
        return path
    out = cache_dir(CONVERTED, f"{path.stem}-{_file_identity(path)[:16]}-{quantization}.gguf")
    if entry_intact(out):
        return out

    def convert(scratch: Path) -> None:
        if progress:
            print(f"requantizing {path.name} to {quantization} (once; cached in {out.parent})", file=sys.stderr)
        requantize_gguf(path, scratch, quantization, n_threads=n_threads)

    cached(out, convert)
    _record_source(out, path, quantization)
    return out


def hf_dir_for(gguf: str | Path) -> Path:
    """The dequantized (fp32) Hugging Face directory of a GGUF file, converted once and cached.

    For what needs transformers rather than llama.cpp: the torch backend,
    fine-tuning, looking inside the model. Keyed by the file's identity (see ``_file_identity``).
    """
    gguf = Path(gguf)
    dst = cache_dir(CONVERTED, f"{gguf.stem}-{_file_identity(gguf)[:16]}-hf")
    if entry_intact(dst):
        return dst

    def convert(scratch: Path) -> None:
        print(f"converting {gguf.name} to a Hugging Face directory (once; cached in {dst.parent})", file=sys.stderr)
        gguf_to_hf(gguf, scratch)

    cached(dst, convert, directory=True)
    _record_source(dst, gguf, "hf")
    return dst


def merged_for(adapter_dir: str | Path, *, allow_pickle: bool = False) -> Path:
    """The cached merge of the LoRA adapter ``adapter_dir`` into its base, merging on first use."""
    adapter_dir = Path(adapter_dir)
    base = adapter_base(adapter_dir, allow_pickle=allow_pickle)
    adapter = [p for p in adapter_dir.iterdir() if p.is_file() and p.name.startswith("adapter_")]
    key = cache_key(files=[*adapter, *model_files(base)], text=("pocketlm-merge",))
    out = cache_dir(CONVERTED, f"{adapter_dir.name}-{key[:16]}-merged")
    if entry_intact(out):
        return out

    def merge(scratch: Path) -> None:
        print(
            f"merging LoRA adapter {adapter_dir.name} into its base model (once; cached in {out.parent})",
            file=sys.stderr,
        )
        merge_adapter(adapter_dir, scratch, allow_pickle=allow_pickle)

    cached(out, merge, directory=True)
    _record_source(out, adapter_dir, "merged")
    return out


def _file_identity(path: Path) -> str:
    """A cache key for a big file from its path, size and modification time.

    Hashing a GGUF's bytes would cost every start a read of the whole file; a
    replaced file (other size or time) gets a new key anyway.
    """
    stat = path.stat()
    return cache_key(text=("pocketlm-file", str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns)))


def converted_models() -> list[tuple[Path, str]]:
    """(GGUF file, source directory) for every cached conversion, for `pocketlm models`."""
    rows = []
    for file in sorted(cache_dir(CONVERTED).glob("*.gguf")):
        try:
            source = json.loads(_source_record(file).read_text())["source"]
        except (OSError, ValueError, KeyError):
            source = "?"
        rows.append((file, source))
    return rows


def _source_record(entry: Path) -> Path:
    return entry.with_name(entry.name.removesuffix(".gguf") + ".json")


def _record_source(entry: Path, source: Path, kind: str) -> None:
    """What a cached conversion was made from (for `pocketlm models`), and the sweep of conversions nobody can ask
    for again, each a whole model's size:

    - those it supersedes: keys change when the source does (a reinstalled package, an edited model directory),
      so the entries made from the same source path into the same kind before it changed;
    - those of a GGUF file that is gone (a deleted virtual environment, a removed download): their key holds
      the file's path, size and time (``_file_identity``). A directory's conversions are keyed by its content,
      not by where it lies (a directory moved back finds them), so they stay.
    """
    source_text = str(source.resolve())
    write_text(_source_record(entry), json.dumps({"source": source_text, "type": kind}))
    for record in entry.parent.glob("*.json"):
        if record.name.endswith(".integrity.json") or record == _source_record(entry):
            continue
        try:
            old = json.loads(record.read_text())
            old_source, old_kind = old["source"], old["type"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if old_source == source_text and old_kind == kind:
            why = "a conversion of %s before it changed"
        elif old_source.endswith(".gguf") and not Path(old_source).exists():
            why = "a conversion of %s, which is gone"
        else:
            continue
        stale = record.with_name(record.name.removesuffix(".json") + ("" if old_kind in _DIRECTORIES else ".gguf"))
        log.info("removing %s: " + why, stale.name, old_source)
        remove_entry(stale)
        record.unlink(missing_ok=True)
