"""What the model reads: token ids, the vocabulary pieces, and where each comes from in the text.

Byte spans are offsets into the text's UTF-8 bytes, because a byte-level BPE
token (GPT-2, SmolLM2) may stand for part of a character: ``🙂`` is 4 bytes and
can be split over two tokens, neither of which is text on its own. Such tokens
are marked ``partial`` and shown by their bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from pocketlm.errors import InvalidParameter

MAX_TEXT_CHARS = 20_000
GPT2, BERT_WORDPIECE = "gpt2", "bert"  # the tokenizer-only names ``compare`` knows besides model names


@dataclass(frozen=True)
class Token:
    id: int
    piece: str  # the vocabulary entry as the tokenizer writes it: 'Ġnovel', '▁novel', '##vel', '[CLS]'
    bytes: str  # the bytes it stands for, in hex ("c3 a7")
    text: str  # those bytes as text; '' when they are not whole characters
    start: int  # byte offsets into the UTF-8 text; start == end for a token the tokenizer added
    end: int
    special: bool  # a control token ([CLS], <|im_start|>, <s>), not text
    partial: bool  # its bytes are part of a UTF-8 character


@dataclass(frozen=True)
class Tokenization:
    tokenizer: str
    kind: str  # "byte-level BPE", "WordPiece", "SentencePiece", ...
    text: str
    tokens: list[Token]

    @property
    def count(self) -> int:
        return len(self.tokens)

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    @property
    def pieces(self) -> list[str]:
        return [t.piece for t in self.tokens]


def check_text(text: str, param: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameter(param, "must be a non-empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidParameter(param, f"may have at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}")
    return text


def tokenize(tokenizer, text: str, *, name: str = "", add_special: bool = True) -> Tokenization:
    """Tokenize ``text`` as the model would see it and explain every token."""
    check_text(text)
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    kind = tokenizer_kind(tokenizer)
    special_ids = set(tokenizer.all_special_ids)
    raw = token_bytes(tokenizer, ids)
    added = [i in special_ids and tuple(o) == (0, 0) for i, o in zip(ids, offsets)]
    spans = _byte_spans(text, raw, added, offsets)
    data, tokens = text.encode(), []
    for id_, piece, b, (start, end), _is_added in zip(ids, pieces, raw, spans, added):
        if int(id_) in special_ids:  # a control token stands for the text it replaced ([UNK]), or none ([CLS])
            b = data[start:end]
        text_ = _as_text(b)
        tokens.append(
            Token(
                id=int(id_),
                piece=piece,
                bytes=b.hex(" "),
                text=text_ if text_ is not None else "",
                start=start,
                end=end,
                special=int(id_) in special_ids,
                partial=text_ is None,
            )
        )
    return Tokenization(tokenizer=name, kind=kind, text=text, tokens=tokens)


@lru_cache(maxsize=16)  # reading the kind serialises the whole tokenizer: once per tokenizer
def tokenizer_kind(tokenizer) -> str:
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = (spec.get("model") or {}).get("type", "")
    decoders = json.dumps(spec.get("decoder"))
    if "ByteLevel" in decoders:
        return "byte-level BPE"
    if model == "WordPiece":
        return "WordPiece"
    if "Metaspace" in decoders or "\u2581" in decoders:
        return "SentencePiece " + (model or "")
    return model or "unknown"


def token_bytes(tokenizer, ids: list[int]) -> list[bytes]:
    """The bytes each token stands for, read exactly as the torch backend reads them (``token_pieces``).

    WordPiece marks a piece that continues a word with ``##``: that mark is not text.
    """
    table = _vocab_bytes(tokenizer)
    raw = [table[i] if 0 <= i < len(table) else b"" for i in ids]
    if tokenizer_kind(tokenizer) == "WordPiece":
        raw = [b.removeprefix(b"##") for b in raw]
    return raw


@lru_cache(maxsize=8)
def _vocab_bytes(tokenizer) -> list[bytes]:
    from pocketlm.backends.torch_backend import token_pieces

    return token_pieces(tokenizer, len(tokenizer))


def _as_text(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _byte_spans(text: str, raw: list[bytes], added: list[bool], offsets) -> list[tuple[int, int]]:
    """Each token's [start, end) in the text's bytes.

    When the tokens' bytes put end to end give back the text exactly (byte-level
    BPE, no normalisation), walking them is exact, even inside a character.
    Otherwise (lower-casing, accents stripped) the tokenizer's character offsets
    are turned into byte offsets.
    """
    data = text.encode()
    if b"".join(b for b, a in zip(raw, added) if not a) == data:
        spans, at = [], 0
        for b, a in zip(raw, added):
            spans.append((at, at) if a else (at, at + len(b)))
            at += 0 if a else len(b)
        return spans
    byte_at = [0]
    for ch in text:
        byte_at.append(byte_at[-1] + len(ch.encode()))
    spans, last = [], 0
    for (start, end), a in zip(offsets, added):
        if a:
            spans.append((last, last))
            continue
        spans.append((byte_at[start], byte_at[end]))
        last = byte_at[end]
    return spans


def compare(text: str, tokenizers: dict[str, object]) -> list[Tokenization]:
    """One text through several tokenizers (name -> tokenizer), for counts side by side."""
    return [tokenize(tok, text, name=name) for name, tok in tokenizers.items()]


def named_tokenizer(name: str):
    """A tokenizer by name: ``gpt2`` (GPT-2's byte-level BPE), ``bert`` (BERT WordPiece), else a model's."""
    if name == GPT2:
        return _gpt2()
    if name == BERT_WORDPIECE:
        return _bert()
    return _model_tokenizer(name)


@lru_cache(maxsize=8)
def _model_tokenizer(name: str):
    """Only the tokenizer of a model (no weights loaded): counting tokens needs no more."""
    from pocketlm.inspection.loading import prepared
    from pocketlm.models.hf import inspect_hf_dir, load_tokenizer

    return load_tokenizer(inspect_hf_dir(prepared(name).path))


@lru_cache(maxsize=1)
def _gpt2():
    from transformers import GPT2Tokenizer

    from pocketlm.datasets import gpt2_tokenizer_dir

    d = gpt2_tokenizer_dir()  # shipped with pocketlm
    return GPT2Tokenizer(vocab=str(d / "vocab.json"), merges=str(d / "merges.txt"))


@lru_cache(maxsize=1)
def _bert():
    """The seed notebook's tokenizer: ``BertTokenizer`` over the WordPiece vocab shipped with the BERT encoder."""
    from transformers import BertTokenizer

    from pocketlm.inspection.loading import BERT, prepared

    return BertTokenizer(str(prepared(BERT).path / "vocab.txt"))
