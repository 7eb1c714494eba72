"""Text to vectors with a sentence-transformers encoder: the MiniLM alias, or any such directory.

A sentence-transformers directory says how its vectors are made, and this module
reads it rather than assuming: ``modules.json`` lists the stages (the transformer,
its pooling, an optional normalisation), ``1_Pooling/config.json`` (or wherever
modules.json points) says how token vectors become one vector (mean, CLS, max, ...),
and ``sentence_bert_config.json`` the longest input and whether to lowercase it. So
the vectors equal sentence-transformers' own ``encode`` (the tests check it to 1e-5)
without loading that library.

Inputs are texts or token ids of the encoder's own vocabulary (without its special
tokens, which are added as for a text). An input longer than the encoder reads is
refused, never cut silently. Requests are encoded in batches of similar lengths,
one forward pass at a time under a lock (one pass already uses every core).

``dimensions`` shortens vectors only for a Matryoshka model (trained so that the
first dimensions carry the meaning: sentence-transformers tags its model card
``loss:MatryoshkaLoss``): truncated, then normalised again. Any other model's
vectors would lose meaning that way, so it is refused.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pocketlm.errors import ContextLengthExceeded, InvalidParameter, ModelLoadError, ModelNotFound
from pocketlm.models.loaded import Loaded

DEFAULT_MODEL = "all-minilm-l6-v2"  # the registry's encoder alias
MAX_INPUTS = 2048  # OpenAI's limit on inputs per request
BATCH = 32  # inputs per forward pass: bounded padding and memory
FORMATS = ("float", "base64")
MATRYOSHKA_TAGS = ("loss:MatryoshkaLoss", "loss:Matryoshka2dLoss", "matryoshka")

# sentence-transformers' Pooling modes (the keys of its config), in the order it concatenates them.
POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)
# The stages of modules.json pocketlm computes, by class name (sentence-transformers has moved the classes
# between its modules over the versions: the name is what stays).
_STAGES = {"Transformer": "transformer", "Pooling": "pooling", "Normalize": "normalize"}


@dataclass(frozen=True)
class Recipe:
    """How a sentence-transformers directory turns text into one vector, as its files say."""

    transformer: Path  # the Hugging Face directory of the encoder
    pooling: tuple[str, ...]  # POOLING_MODES that are on, concatenated in this order
    normalize: bool
    max_tokens: int  # the longest input, special tokens included
    lowercase: bool
    matryoshka: bool


def read_recipe(path: Path) -> Recipe:
    """The stages of the sentence-transformers directory ``path``; what pocketlm cannot compute is refused."""
    try:
        stages = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"{path}: modules.json is not readable ({e}); give a sentence-transformers directory"
        ) from None
    kinds = {}
    for stage in stages:
        module, _, name = str(stage.get("type", "")).rpartition(".")
        kind = _STAGES.get(name) if module.startswith("sentence_transformers") else None
        if kind is None:
            raise ModelLoadError(
                f"{path}: the stage '{stage.get('type')}' of modules.json is not one pocketlm computes "
                f"(it computes {', '.join(_STAGES)})"
            )
        kinds[kind] = path / stage.get("path", "")
    if "transformer" not in kinds or "pooling" not in kinds:
        raise ModelLoadError(f"{path}: modules.json needs a Transformer and a Pooling stage")
    pooling = _json(kinds["pooling"] / "config.json")
    modes = tuple(m for m in POOLING_MODES if pooling.get(m))
    unknown = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v and k not in POOLING_MODES]
    if unknown or not modes:
        raise ModelLoadError(f"{path}: pooling {unknown or 'none'} is not one pocketlm computes ({POOLING_MODES})")
    transformer = kinds["transformer"]
    bert = _json(transformer / "sentence_bert_config.json", required=False) or _json(
        path / "sentence_bert_config.json", required=False
    )
    config = _json(transformer / "config.json")
    max_tokens = int(bert.get("max_seq_length") or config.get("max_position_embeddings", 512))
    return Recipe(
        transformer, modes, "normalize" in kinds, max_tokens, bool(bert.get("do_lower_case")), _matryoshka(path)
    )


def _json(file: Path, required: bool = True) -> dict:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise ModelLoadError(f"{file} is missing: the sentence-transformers directory is incomplete") from None
        return {}
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{file} is not readable JSON ({e})") from None


def _matryoshka(path: Path) -> bool:
    """Whether the model card's tags (its YAML front matter) say it was trained as a Matryoshka model."""
    try:
        card = (path / "README.md").read_text(encoding="utf-8")
    except OSError:
        return False
    front = re.match(r"---\n(.*?)\n---", card, re.S)
    tags = re.findall(r"^\s*-\s*(\S+)\s*$", front.group(1), re.M) if front else []
    return any(tag in MATRYOSHKA_TAGS for tag in tags)


@dataclass(frozen=True)
class Card:
    """What the files say of an encoder, without loading it: for the OpenAPI document."""

    name: str
    vocab_size: int
    dimensions: int
    matryoshka: bool


def card(name: str) -> Card:
    from pocketlm.models.prepare import prepare
    from pocketlm.models.registry import EMBEDDINGS

    prepared = prepare(name, "torch", tasks=(EMBEDDINGS,))
    recipe = read_recipe(prepared.path)
    config = _json(recipe.transformer / "config.json")
    width = int(config["hidden_size"]) * len(recipe.pooling)
    return Card(prepared.name, int(config["vocab_size"]), width, recipe.matryoshka)


# ----------------------------------------------------------------------------- the encoder


@dataclass
class Encoder:
    name: str
    recipe: Recipe
    model: object  # a transformers encoder, eval mode
    tokenizer: object
    dimensions: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @functools.cached_property
    def specials(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text's own (BERT: [CLS] ... [SEP]), found by
        tokenizing one word with and without them."""
        bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        at = next(i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare)
        return full[:at], full[at + len(bare) :]

    def token_ids(
        self, inputs: list[str] | list[list[int]], param: str = "input", truncate: bool = False
    ) -> list[list[int]]:
        """Each input as the ids the model reads (special tokens added), checked against the vocabulary and
        the longest input; with ``truncate`` (Ollama's default) a longer one is cut to its start instead."""
        rows = []
        for i, one in enumerate(inputs):
            if isinstance(one, str):
                text = one.lower() if self.recipe.lowercase else one
                ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            else:
                bad = next((t for t in one if not 0 <= t < self.vocab_size), None)
                if bad is not None:
                    raise InvalidParameter(
                        _where(param, i, inputs),
                        f"token id {bad} is not in the vocabulary of '{self.name}' (0 to {self.vocab_size - 1})",
                    )
                before, after = self.specials
                ids = [*before, *one, *after]
            if len(ids) > self.recipe.max_tokens and truncate:
                after = self.specials[1]  # the closing special tokens stay: the model was trained with them
                ids = ids[: self.recipe.max_tokens - len(after)] + after
            if len(ids) > self.recipe.max_tokens:
                raise ContextLengthExceeded(
                    _where(param, i, inputs),
                    f"has {len(ids)} tokens with the special ones; '{self.name}' reads at most "
                    f"{self.recipe.max_tokens}: split the text into shorter pieces",
                )
            rows.append(ids)
        return rows

    def embed(self, rows: list[list[int]]) -> np.ndarray:
        """One float32 vector per row of token ids, in order; batches of similar lengths pad little."""
        out = np.zeros((len(rows), self.dimensions), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), BATCH):
            picked = order[start : start + BATCH]
            out[picked] = self._forward([rows[i] for i in picked])
        return out

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        import torch

        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with self.lock, torch.inference_mode():
            tokens = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        vector = pool(tokens, mask, self.recipe.pooling)
        if self.recipe.normalize:
            vector = torch.nn.functional.normalize(vector, p=2, dim=1)
        return vector.numpy()


def pool(tokens, mask, modes: tuple[str, ...]):
    """sentence-transformers' pooling of ``tokens`` [batch, length, width] over the unmasked positions."""
    import torch

    weights = mask.unsqueeze(-1).to(tokens.dtype)
    counts = weights.sum(1).clamp(min=1e-9)
    lengths = mask.sum(1) - 1  # the last real token of each row
    pooled = []
    for mode in modes:
        if mode == "pooling_mode_cls_token":
            pooled.append(tokens[:, 0])
        elif mode == "pooling_mode_max_tokens":
            pooled.append(tokens.masked_fill(weights == 0, -1e9).max(1).values)
        elif mode == "pooling_mode_mean_tokens":
            pooled.append((tokens * weights).sum(1) / counts)
        elif mode == "pooling_mode_mean_sqrt_len_tokens":
            pooled.append((tokens * weights).sum(1) / counts.sqrt())
        elif mode == "pooling_mode_weightedmean_tokens":
            position = torch.arange(1, tokens.shape[1] + 1, dtype=tokens.dtype).view(1, -1, 1) * weights
            pooled.append((tokens * position).sum(1) / position.sum(1).clamp(min=1e-9))
        else:  # pooling_mode_lasttoken
            pooled.append(tokens[torch.arange(tokens.shape[0]), lengths])
    return torch.cat(pooled, dim=1)


def load_encoder(name: str) -> Encoder:
    from transformers.utils import logging as transformers_logging

    from pocketlm.models.hf import inspect_hf_dir, load_model, load_tokenizer
    from pocketlm.models.prepare import prepare
    from pocketlm.models.registry import EMBEDDINGS

    prepared = prepare(name, "torch", tasks=(EMBEDDINGS,))
    recipe = read_recipe(prepared.path)
    transformers_logging.disable_progress_bar()  # a bar per load on stderr says nothing to a user
    hf = inspect_hf_dir(recipe.transformer)
    model = load_model(hf, causal=False)
    tokenizer = load_tokenizer(hf)
    width = int(model.config.hidden_size) * len(recipe.pooling)
    return Encoder(prepared.name, recipe, model, tokenizer, width)


_encoders: Loaded[str, Encoder] = Loaded()


def encoder(name: str | None = None) -> Encoder:
    """The encoder ``name`` (None: the MiniLM alias), loaded once per process."""
    name = name or DEFAULT_MODEL
    return _encoders.get(name, lambda: _load_checked(name))


def served_encoder(name: str) -> Encoder:
    """The server's encoder (``--embedding-model``), loaded once; when it cannot load (its package or torch is
    missing, its files are gone), a 404 that says no embeddings model is served and how to serve one."""
    try:
        return encoder(name)
    except (ModelNotFound, ModelLoadError) as err:
        raise ModelNotFound(
            f"no embeddings model is served here: {err.message}; or start the server with --embedding-model "
            "naming a sentence-transformers directory"
        ) from None


def _load_checked(name: str) -> Encoder:
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        raise ModelLoadError("embeddings need torch and transformers: pip install 'pocketlm[torch]'")
    return load_encoder(name)


def loaded() -> list[str]:
    return _encoders.keys()


def check_model(asked: str | None, served: str) -> None:
    """Only the configured encoder, by the name it was given or answers to: a client names no files."""
    from pocketlm.models.registry import served_name

    if asked in (None, "", served, served_name(served)):
        return
    raise ModelNotFound(
        f"model '{asked}' is not an embeddings model here; use '{served_name(served)}' (the server's --embedding-model)"
    )


# ----------------------------------------------------------------------------- requests


def check_inputs(value, param: str = "input") -> list[str] | list[list[int]]:
    """OpenAI's ``input``: a text, texts, token ids or lists of token ids -> a list of texts or of id lists."""
    if isinstance(value, str):
        value = [value]
    elif value and all(isinstance(t, int) for t in value):
        value = [value]
    if not value:
        raise InvalidParameter(param, "is empty: give a text, a list of texts, or token ids")
    if len(value) > MAX_INPUTS:
        raise InvalidParameter(param, f"has {len(value)} inputs; at most {MAX_INPUTS} per request")
    for i, one in enumerate(value):
        where = _where(param, i, value)
        if isinstance(one, str) and not one.strip():
            raise InvalidParameter(where, "is empty: every input needs some text")
        if isinstance(one, list) and not one:
            raise InvalidParameter(where, "is an empty list of token ids")
    if len({isinstance(one, str) for one in value}) > 1:
        raise InvalidParameter(param, "mixes texts and token ids: send one kind per request")
    return value


def _where(param: str, i: int, inputs: list) -> str:
    """``input[i]``, or ``input`` when there is one input: what the client wrote."""
    return f"{param}[{i}]" if len(inputs) > 1 else param


def check_dimensions(dimensions: int | None, encoder: Encoder, param: str = "dimensions") -> None:
    """``dimensions`` may only shorten a Matryoshka model's vectors; any model takes its own size."""
    if dimensions is None or dimensions == encoder.dimensions:
        return
    if not encoder.recipe.matryoshka:
        raise InvalidParameter(
            param,
            f"'{encoder.name}' makes {encoder.dimensions}-dimensional vectors and was not trained to be shortened "
            f"(it is no Matryoshka model): omit dimensions, or set it to {encoder.dimensions}",
        )
    if not 1 <= dimensions <= encoder.dimensions:
        raise InvalidParameter(param, f"{dimensions} is out of range; use 1 to {encoder.dimensions}")


def shorten(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first ``dimensions`` components, normalised again (checked first with ``check_dimensions``)."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    short = vectors[:, :dimensions]
    return short / np.maximum(np.linalg.norm(short, axis=1, keepdims=True), 1e-12)


def encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: a list of floats, or base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()
