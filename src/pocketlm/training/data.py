"""Training text in, fixed-size token blocks out.

Documents come from ``pocketlm.texts`` (files, directories, saved datasets,
dataset names). Text is read and tokenized a piece at a time and the ids are appended to a
flat ``uint32`` file on disk, so a corpus far larger than RAM still works: the
training set is then a read-only memory map of that file, cut into blocks of
``block_size`` tokens (the usual "group texts" step of causal-LM training).
Documents are separated by the tokenizer's EOS token so the model learns where
one ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketlm.errors import InvalidParameter
from pocketlm.texts import PIECE_CHARS, iter_documents

# ---- tokenizing to disk -------------------------------------------------------------------------


def tokenize_to_file(
    source: str | Path,
    tokenizer,
    dest: Path,
    *,
    text_field: str = "text",
    param: str = "data",
    split: tuple[str, ...] = ("train",),
) -> int:
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
        ids = torch.from_numpy(self.tokens[b : b + self.block_size].astype(np.int64))
        return {"input_ids": ids, "labels": ids.clone()}


def load_blocks(
    source: str | Path,
    tokenizer,
    workdir: Path,
    name: str,
    block_size: int,
    *,
    text_field: str = "text",
    param: str = "data",
    split: tuple[str, ...] = ("train",),
) -> BlockDataset:
    """Tokenize ``source`` into ``workdir/name.bin`` and return its blocks; clear errors when there are none."""
    dest = workdir / f"{name}.bin"
    n = tokenize_to_file(source, tokenizer, dest, text_field=text_field, param=param, split=split)
    if n == 0:
        raise InvalidParameter(param, f"{source} has no text to train on (0 tokens); check the file and --text-field")
    blocks = BlockDataset(dest, block_size)
    if len(blocks) == 0:
        raise InvalidParameter(
            "block_size",
            f"{source} has only {n} tokens, fewer than one block of {block_size}; "
            "use a smaller --block-size or more text",
        )
    return blocks
