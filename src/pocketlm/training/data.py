"""Training text in, fixed-size token blocks out.

Sources: a ``.txt`` file, a ``.jsonl`` file (one JSON object a line, text in
``text_field``), a ``.csv`` file (text in column ``text_field``), a directory
of such files, a ``datasets`` dataset saved with ``save_to_disk``, or a named
dataset of ``pocketlm.datasets`` (``shakespeare:train``).

Text is read and tokenized a piece at a time and the ids are appended to a
flat ``uint32`` file on disk, so a corpus far larger than RAM still works: the
training set is then a read-only memory map of that file, cut into blocks of
``block_size`` tokens (the usual "group texts" step of causal-LM training).
Documents are separated by the tokenizer's EOS token so the model learns where
one ends.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pocketlm import datasets
from pocketlm.errors import InvalidParameter

SUFFIXES = (".txt", ".jsonl", ".csv")
PIECE_CHARS = 1 << 20  # ~1 MB of text per tokenizer call: big enough to be fast, small enough for RAM


# ---- reading text -------------------------------------------------------------------------------

def iter_documents(source: str | Path, text_field: str = "text", *, param: str = "data",
                   split: tuple[str, ...] = ("train",)) -> Iterator[Iterator[str]]:
    """Yield each document of ``source`` as an iterator over its text pieces.

    ``source`` is a path, or a dataset name such as ``shakespeare:valid`` (see
    ``pocketlm.datasets``) when no file of that name exists.
    """
    path = Path(source).expanduser()
    if not path.exists() and datasets.is_name(source):
        path = datasets.resolve(str(source), param=param)
    if not path.exists():
        raise InvalidParameter(param, f"{path} does not exist; give a .txt, .jsonl or .csv file, a directory of them, "
                                      f"a dataset saved with datasets' save_to_disk, or a name ({', '.join(datasets.NAMES)})")
    if path.is_dir():
        if _is_saved_dataset(path):
            yield from _saved_dataset(path, text_field, param, split)
            return
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise InvalidParameter(param, f"directory {path} has no .txt, .jsonl or .csv files")
        for f in files:
            yield from _file_documents(f, text_field, param)
        return
    yield from _file_documents(path, text_field, param)


def _file_documents(path: Path, text_field: str, param: str) -> Iterator[Iterator[str]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl(path, text_field, param)
    elif suffix == ".csv":
        yield from _csv(path, text_field, param)
    elif suffix == ".txt":
        yield _text_pieces(path)  # a whole .txt file is one document
    else:
        raise InvalidParameter(param, f"{path}: unsupported file type '{suffix}'; use .txt, .jsonl or .csv")


def _text_pieces(path: Path) -> Iterator[str]:
    """A text file in pieces of about PIECE_CHARS characters.

    A piece ends only between a line that ends in "visible character + newline"
    and a line that starts with a visible character. There, byte-level BPE's
    pre-tokenizer makes the lone newline a token of its own whether or not the
    text is cut, so the ids are the same as for the whole file.
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        piece: list[str] = []
        size = 0
        for line in f:
            if size >= PIECE_CHARS and line[:1].strip() and _ends_cleanly(piece[-1]):
                yield "".join(piece)
                piece, size = [], 0
            piece.append(line)
            size += len(line)
        if piece:
            yield "".join(piece)


def _ends_cleanly(line: str) -> bool:
    return len(line) >= 2 and line[-1] == "\n" and not line[-2].isspace()


def _jsonl(path: Path, field: str, param: str) -> Iterator[Iterator[str]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidParameter(param, f"{path} line {n} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or field not in row:
                fields = ", ".join(row) if isinstance(row, dict) else "none: not an object"
                raise InvalidParameter("text_field", f"{path} line {n} has no field '{field}' (its fields: {fields}); "
                                                     "pass --text-field NAME with the field that holds the text")
            yield iter((_as_text(row[field], f"{path} line {n}, field '{field}'"),))


def _csv(path: Path, column: str, param: str) -> Iterator[Iterator[str]]:
    csv.field_size_limit(sys.maxsize)  # a long document in one cell is normal here
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return  # an empty file: no documents, reported by the caller
        if column not in reader.fieldnames:
            raise InvalidParameter("text_field", f"{path} has no column '{column}' (columns: {', '.join(reader.fieldnames)}); "
                                                 "pass --text-field NAME with the column that holds the text")
        for row in reader:
            yield iter((row[column] or "",))


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _saved_dataset(path: Path, column: str, param: str, split: tuple[str, ...]) -> Iterator[Iterator[str]]:
    """Rows of a saved ``datasets`` dataset; arrow files are memory-mapped, so this streams too."""
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise InvalidParameter(param, f"{path} is a saved `datasets` dataset; install the package: pip install datasets") from None
    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        name = next((s for s in split if s in ds), None)
        if name is None:
            raise InvalidParameter(param, f"{path} has splits {', '.join(ds)}, none of {', '.join(split)}; "
                                          "save the split you want on its own")
        ds = ds[name]
    if column not in ds.column_names:
        raise InvalidParameter("text_field", f"{path} has no column '{column}' (columns: {', '.join(ds.column_names)}); "
                                             "pass --text-field NAME")
    for batch in ds.select_columns([column]).iter(batch_size=256):
        for value in batch[column]:
            yield iter((_as_text(value, f"{path} column '{column}'"),))


def _as_text(value, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter("text_field", f"{where} holds {type(value).__name__}, not text")
    return value


# ---- tokenizing to disk -------------------------------------------------------------------------

def tokenize_to_file(source: str | Path, tokenizer, dest: Path, *, text_field: str = "text", param: str = "data",
                     split: tuple[str, ...] = ("train",)) -> int:
    """Tokenize every document of ``source`` into ``dest`` (flat uint32 ids); return how many ids."""
    eos = tokenizer.eos_token_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    n_tokens = 0
    batch: list[str] = []
    size = 0

    def flush(f):
        nonlocal batch, size, n_tokens
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            np.asarray(ids, dtype=np.uint32).tofile(f)
            n_tokens += len(ids)
        batch, size = [], 0

    with open(dest, "wb") as f:
        for doc in iter_documents(source, text_field, param=param, split=split):
            blank: list[str] = []  # leading whitespace-only pieces: dropped if the document has no text at all
            visible = False
            for piece in doc:
                if not visible and not piece.strip():
                    blank.append(piece)
                    continue
                if not visible:
                    visible = True
                    piece = "".join(blank) + piece
                batch.append(piece)
                size += len(piece)
                if size >= PIECE_CHARS:
                    flush(f)
            if visible and eos is not None:
                flush(f)  # keep order: the document's text, then its EOS
                np.asarray([eos], dtype=np.uint32).tofile(f)
                n_tokens += 1
        if batch:
            flush(f)
    return n_tokens


class BlockDataset:
    """Consecutive ``block_size`` slices of a token file; labels equal inputs (the model shifts them)."""

    def __init__(self, path: Path, block_size: int, start_block: int = 0, stop_block: int | None = None):
        self.path = path
        self.tokens = np.memmap(path, dtype=np.uint32, mode="r") if path.stat().st_size else np.zeros(0, np.uint32)
        self.block_size = block_size
        total = len(self.tokens) // block_size
        self.start = start_block
        self.stop = total if stop_block is None else min(stop_block, total)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int) -> dict:
        import torch

        if not 0 <= i < len(self):
            raise IndexError(i)
        b = (self.start + i) * self.block_size
        ids = torch.from_numpy(self.tokens[b:b + self.block_size].astype(np.int64))
        return {"input_ids": ids, "labels": ids.clone()}


def load_blocks(source: str | Path, tokenizer, workdir: Path, name: str, block_size: int, *,
                text_field: str = "text", param: str = "data", split: tuple[str, ...] = ("train",)) -> BlockDataset:
    """Tokenize ``source`` into ``workdir/name.bin`` and return its blocks; clear errors when there are none."""
    dest = workdir / f"{name}.bin"
    n = tokenize_to_file(source, tokenizer, dest, text_field=text_field, param=param, split=split)
    if n == 0:
        raise InvalidParameter(param, f"{source} has no text to train on (0 tokens); check the file and --text-field")
    blocks = BlockDataset(dest, block_size)
    if len(blocks) == 0:
        raise InvalidParameter("block_size", f"{source} has only {n} tokens, fewer than one block of {block_size}; "
                                             "use a smaller --block-size or more text")
    return blocks
