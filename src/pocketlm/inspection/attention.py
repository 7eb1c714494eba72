"""Attention weights of every layer and head for one text.

Each head turns every token (a row, the query) into a probability distribution
over the tokens it may look at (the columns, the keys): each row sums to 1. A
decoder may look only at itself and earlier tokens, so everything above the
diagonal is 0; an encoder such as BERT sees the whole text.

Sizes are bounded: the weights are tokens x tokens per head, for every head of
every layer (SmolLM2: 30 layers x 9 heads), and all of it travels as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pocketlm.errors import InvalidParameter
from pocketlm.inspection.tokens import check_text

MAX_TOKENS = 256
MAX_WEIGHTS = 2_000_000  # layers x heads x tokens x tokens returned at once


@dataclass
class AttentionMap:
    tokens: list[str]  # one label per token, for axes
    ids: list[int]
    weights: np.ndarray  # [layers, heads, tokens (query), tokens (key)]
    layers: list[int]  # which of the model's layers the first axis holds
    heads: list[int]
    causal: bool


def attention(
    subject, text: str, *, layers: list[int] | None = None, heads: list[int] | None = None, max_tokens: int = MAX_TOKENS
) -> AttentionMap:
    """Run the model once over ``text`` and keep the attention weights of the chosen layers and heads."""
    import torch

    check_text(text)
    layers = _indices("layers", layers, subject.n_layers)
    heads = _indices("heads", heads, subject.n_heads)
    ids = subject.tokenizer(text, add_special_tokens=True)["input_ids"]
    n = len(ids)
    if n > max_tokens:
        raise InvalidParameter("text", f"has {n} tokens; attention is shown for at most {max_tokens}: shorten it")
    size = len(layers) * len(heads) * n * n
    if size > MAX_WEIGHTS:
        raise InvalidParameter(
            "text",
            f"{n} tokens x {len(layers)} layers x {len(heads)} heads is {size:,} weights, "
            f"more than {MAX_WEIGHTS:,}: shorten the text or choose layers/heads",
        )
    with subject.lock, torch.inference_mode():
        out = subject.model(input_ids=torch.tensor([ids]), output_attentions=True)
    stacked = np.stack([out.attentions[layer][0, heads].float().numpy() for layer in layers])
    return AttentionMap(
        tokens=token_labels(subject.tokenizer, ids),
        ids=list(ids),
        weights=stacked,
        layers=layers,
        heads=heads,
        causal=subject.causal,
    )


def token_labels(tokenizer, ids: list[int]) -> list[str]:
    """Readable labels: the text each token stands for (its bytes in hex when it is part of a character)."""
    from pocketlm.inspection.tokens import token_bytes

    labels = []
    for b in token_bytes(tokenizer, ids):
        try:
            labels.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            labels.append("<" + b.hex(" ") + ">")
    return labels


def _indices(param: str, chosen: list[int] | None, count: int) -> list[int]:
    if chosen is None or len(chosen) == 0:
        return list(range(count))
    for i in chosen:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count:
            raise InvalidParameter(param, f"the model has {count} {param}, numbered 0 to {count - 1}; got {i!r}")
    return list(dict.fromkeys(chosen))
