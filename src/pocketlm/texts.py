"""Text in: the documents of a file, a directory, a saved dataset or a dataset name.

Sources: a ``.txt`` file (one document), a ``.jsonl`` file (one JSON object a
line, text in ``text_field``), a ``.csv`` file (text in column ``text_field``),
a directory of such files, a ``datasets`` dataset saved with ``save_to_disk``,
or a named dataset of ``pocketlm.datasets`` (``shakespeare:train``).

Each document comes as an iterator over pieces of its text, so a corpus far
larger than RAM streams through. Fine-tuning (``pocketlm.training.data``) and
evaluation read text through here, with the same errors for the same mistakes.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from pocketlm import datasets
from pocketlm.errors import InvalidParameter

SUFFIXES = (".txt", ".jsonl", ".csv")
PIECE_CHARS = 1 << 20  # ~1 MB of text per piece: big enough to be fast, small enough for RAM


def iter_documents(
    source: str | Path, text_field: str = "text", *, param: str = "data", split: tuple[str, ...] = ("train",)
) -> Iterator[Iterator[str]]:
    """Yield each document of ``source`` as an iterator over its text pieces.

    ``source`` is a path, or a dataset name such as ``shakespeare:valid`` (see
    ``pocketlm.datasets``) when no file of that name exists.
    """
    path = Path(source).expanduser()
    if not path.exists() and datasets.is_name(source):
        path = datasets.resolve(str(source), param=param)
    if not path.exists():
        raise InvalidParameter(
            param,
            f"{path} does not exist; give a .txt, .jsonl or .csv file, a directory of them, "
            f"a dataset saved with datasets' save_to_disk, or a name ({', '.join(datasets.NAMES)})",
        )
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
                raise InvalidParameter(
                    "text_field",
                    f"{path} line {n} has no field '{field}' (its fields: {fields}); "
                    "pass --text-field NAME with the field that holds the text",
                )
            yield iter((_as_text(row[field], f"{path} line {n}, field '{field}'"),))


def _csv(path: Path, column: str, param: str) -> Iterator[Iterator[str]]:
    csv.field_size_limit(sys.maxsize)  # a long document in one cell is normal here
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return  # an empty file: no documents, reported by the caller
        if column not in reader.fieldnames:
            raise InvalidParameter(
                "text_field",
                f"{path} has no column '{column}' (columns: {', '.join(reader.fieldnames)}); "
                "pass --text-field NAME with the column that holds the text",
            )
        for row in reader:
            yield iter((row[column] or "",))


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _saved_dataset(path: Path, column: str, param: str, split: tuple[str, ...]) -> Iterator[Iterator[str]]:
    """Rows of a saved ``datasets`` dataset; arrow files are memory-mapped, so this streams too."""
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise InvalidParameter(
            param, f"{path} is a saved `datasets` dataset; install the package: pip install datasets"
        ) from None
    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        name = next((s for s in split if s in ds), None)
        if name is None:
            raise InvalidParameter(
                param,
                f"{path} has splits {', '.join(ds)}, none of {', '.join(split)}; save the split you want on its own",
            )
        ds = ds[name]
    if column not in ds.column_names:
        raise InvalidParameter(
            "text_field",
            f"{path} has no column '{column}' (columns: {', '.join(ds.column_names)}); pass --text-field NAME",
        )
    for batch in ds.select_columns([column]).iter(batch_size=256):
        for value in batch[column]:
            yield iter((_as_text(value, f"{path} column '{column}'"),))


def _as_text(value, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter("text_field", f"{where} holds {type(value).__name__}, not text")
    return value
