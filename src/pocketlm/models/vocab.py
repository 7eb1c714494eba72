"""A Hugging Face tokenizer as a GGUF vocabulary, and back: the tokenizer half of a conversion.

llama.cpp tokenizes by itself, from what the GGUF says: the token list with each
token's type, the merges, the tokenizer model and, for byte-level BPE, the name of
a pre-tokenizer it implements. Two families convert:

- byte-level BPE (GPT-2, SmolLM2, Llama 3): llama.cpp's "gpt2" model, with the
  pre-tokenizer named when it is one llama.cpp is known to reproduce;
- SentencePiece-style BPE with byte fallback (TinyLlama, Llama 2): its "llama" model,
  whose merge order is given as token scores.

Anything else is refused with a pointer to ``--backend torch``: a tokenizer that
splits text differently would change every answer without an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pocketlm.errors import ModelLoadError
from pocketlm.models.hf import HFDir, load_tokenizer

# Llama 3's pre-tokenizer regex, as tokenizer.json writes it; llama.cpp knows it as "llama-bpe".
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class Vocab:
    model: str  # "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE with byte fallback)
    pre: str | None
    tokens: list[str]
    types: list[int]  # gguf.TokenType of each token
    scores: list[float] | None
    merges: list[str]
    add_space_prefix: bool


def fast_tokenizer(hf: HFDir):
    """The directory's tokenizer in its tokenizer.json form, which the conversion reads."""
    tokenizer = load_tokenizer(hf)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{hf.path}: the tokenizer has no tokenizer.json form, which conversion needs; use `--backend torch`"
        )
    return tokenizer


def add_tokenizer(w, tokenizer, hf: HFDir) -> None:
    """Write the tokenizer into the GGUF writer ``w``: vocabulary, special tokens, BOS/EOS habits, chat template."""
    vocab = read_vocab(tokenizer, hf)
    w.add_tokenizer_model(vocab.model)
    if vocab.pre:
        w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    if vocab.scores is not None:
        w.add_token_scores(vocab.scores)
    w.add_token_merges(vocab.merges)
    w.add_add_space_prefix(vocab.add_space_prefix)
    for kind in ("bos", "eos", "unk", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None and token_id < len(vocab.tokens):
            getattr(w, f"add_{kind}_token_id")(token_id)
    probe = tokenizer("a")["input_ids"]  # what the tokenizer adds around a text is what it means by add_bos/add_eos
    w.add_add_bos_token(tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id])
    eos = tokenizer.eos_token_id
    w.add_add_eos_token(eos is not None and len(probe) > 1 and probe[-1] == eos)
    if isinstance(tokenizer.chat_template, str):
        w.add_chat_template(tokenizer.chat_template)


def read_vocab(tokenizer, hf: HFDir) -> Vocab:
    from gguf import TokenType

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ModelLoadError(
            f"{hf.path}: tokenizer type '{model.get('type')}' is not converted (only BPE); use `--backend torch`"
        )
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    n_vocab = max([*model["vocab"].values(), *added]) + 1
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]  # holes in the id space become unused placeholders
    types = [TokenType.UNUSED] * n_vocab
    for text, i in model["vocab"].items():
        tokens[i], types[i] = text, TokenType.NORMAL
    for i, a in added.items():
        tokens[i], types[i] = a["content"], TokenType.CONTROL if a.get("special") else TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    if model.get("byte_fallback"):
        return _sentencepiece_vocab(spec, tokens, types, merges)
    if (spec.get("decoder") or {}).get("type") != "ByteLevel" or spec.get("normalizer"):
        raise ModelLoadError(
            f"{hf.path}: this BPE tokenizer is neither byte-level nor byte-fallback; use `--backend torch`"
        )
    return Vocab("gpt2", pre_tokenizer_name(spec, hf), tokens, types, None, merges, False)


def _sentencepiece_vocab(spec, tokens, types, merges) -> Vocab:
    """TinyLlama-style tokenizers: SentencePiece BPE rebuilt by transformers as BPE with byte fallback.

    llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result has
    the highest score, so a token's score is minus the rank of the merge that
    makes it: earlier merges win, as in BPE.
    """
    from gguf import TokenType

    rank = {}
    for r, merge in enumerate(merges):
        rank.setdefault(merge.replace(" ", ""), r)
    scores = [-float(rank.get(t, len(merges))) if ty == TokenType.NORMAL else 0.0 for t, ty in zip(tokens, types)]
    unk = spec["model"].get("unk_token")
    for i, t in enumerate(tokens):
        if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types[i] = TokenType.BYTE
        elif t == unk:
            types[i] = TokenType.UNKNOWN
    # Llama-2-era files prepend "▁" in the normalizer; transformers 5 rebuilds them with a Metaspace pre-tokenizer.
    text = json.dumps(spec.get("normalizer") or {}) + json.dumps(spec.get("pre_tokenizer") or {})
    prefix = any(
        marker in text for marker in ('"prepend": "\\u2581"', '"prepend_scheme": "always"', '"prepend_scheme": "first"')
    )
    return Vocab("llama", None, tokens, types, scores, merges, prefix)


def pre_tokenizer_name(spec: dict, hf: HFDir) -> str:
    """llama.cpp's name for the byte-level pre-tokenizer described in tokenizer.json."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == _LLAMA3_REGEX:
        return "llama-bpe"
    raise ModelLoadError(
        f"{hf.path}: pre-tokenizer {json.dumps(pre)[:200]} is not one llama.cpp is known to "
        "reproduce; use `--backend torch`"
    )


def set_pre_tokenizer(tokenizer, pre: str | None) -> None:
    """Give an HF tokenizer built from a GGUF the pre-tokenizer its ``tokenizer.ggml.pre`` names.

    transformers reads GGUF byte-level tokenizers with a plain GPT-2 pre-tokenizer,
    whatever the GGUF says; SmolLM2's splits digits one by one, so without this
    "2024" would tokenize differently than in the original model.
    """
    from tokenizers import pre_tokenizers as P

    byte_level = P.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        tokenizer.backend_tokenizer.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True), byte_level])
    elif pre == "gpt-2":
        tokenizer.backend_tokenizer.pre_tokenizer = byte_level
