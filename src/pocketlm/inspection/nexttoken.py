"""The choice of the next token: the model's distribution, what pocketlm's sampler keeps, and the logit lens.

"Before" is the plain softmax of the model's logits. "After" is what the
engine's sampler draws from once the request's parameters are applied: the
penalties of ``Sampler.adjust``, then temperature, top-k, min-p and
top-p through ``engine.sampling.distribution``, the same functions ``sample``
runs, so the numbers shown are the numbers the engine uses. With a seed, the
token that seed draws is the one a real generation starts with.

The logit lens (nostalgebraist, 2020) reads every layer's hidden state through
the model's final norm and output layer, as if the model stopped there: it
shows at which depth the eventual answer appears.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pocketlm.engine.params import SamplingParams
from pocketlm.engine.sampling import Sampler, distribution, sample
from pocketlm.errors import InvalidParameter
from pocketlm.inspection.tokens import check_text

MAX_PROMPT_TOKENS = 2048
MAX_TOP = 100


@dataclass(frozen=True)
class Candidate:
    id: int
    text: str
    probability: float


@dataclass
class NextToken:
    prompt_tokens: int
    before: list[Candidate]  # the model's own distribution (softmax of the logits), most likely first
    after: list[Candidate]  # what the sampler draws from after the parameters, most likely first
    kept: int  # how many tokens keep a non-zero probability after the parameters
    chosen: Candidate | None  # the token the request's seed draws (None without a seed)
    lens: list[list[Candidate]]  # logit lens: per layer (0 = embeddings), its top tokens


def next_token(
    subject, prompt: str, params: SamplingParams = SamplingParams(), *, top: int = 10, lens_top: int = 3
) -> NextToken:
    import torch

    if not subject.causal:
        raise InvalidParameter("model", f"{subject.name} is an encoder: it does not predict a next token")
    check_text(prompt, "prompt")
    params = params.validated()
    for name, value in (("top", top), ("lens_top", lens_top)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP:
            raise InvalidParameter(name, f"must be an integer from 1 to {MAX_TOP}, got {value!r}")
    ids = subject.tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if len(ids) > MAX_PROMPT_TOKENS:
        raise InvalidParameter("prompt", f"has {len(ids)} tokens, at most {MAX_PROMPT_TOKENS}: shorten it")
    with subject.lock, torch.inference_mode():
        out = subject.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        logits = out.logits[0, -1].float().numpy()
        lens_logits = _lens(subject.model, out.hidden_states, logits)
    decode = _decoder(subject.tokenizer)

    def ranked(ids_, probs, k):
        order = np.argsort(-probs, kind="stable")[:k]
        return [Candidate(int(ids_[i]), decode(int(ids_[i])), float(probs[i])) for i in order]

    eog = _eog_ids(subject)
    before = _softmax(logits.astype(np.float64))
    sampler = Sampler(params, ids, 0, eog)
    kept_ids, kept_probs = distribution(sampler.adjust(logits.copy()), sampler)
    nonzero = kept_probs > 0
    chosen = None
    if params.seed is not None:  # a fresh sampler: the first draw of a generation with this seed
        token = int(sample(logits.copy()[None, :], [Sampler(params, ids, 0, eog)])[0])
        chosen = Candidate(token, decode(token), float(kept_probs[kept_ids == token].sum()))
    vocab = np.arange(logits.size)
    return NextToken(
        prompt_tokens=len(ids),
        before=ranked(vocab, before, top),
        after=ranked(kept_ids[nonzero], kept_probs[nonzero], top),
        kept=int(nonzero.sum()),
        chosen=chosen,
        lens=[ranked(vocab, _softmax(row), lens_top) for row in lens_logits],
    )


def _lens(model, hidden_states, final_logits: np.ndarray) -> np.ndarray:
    """Each layer's last hidden state read through the final norm and the output layer: [layers + 1, vocab]."""
    norm = _final_norm(model)
    head = model.get_output_embeddings()
    rows = [head(norm(h[0, -1])).float().numpy() for h in hidden_states[:-1]]
    return np.stack([*rows, final_logits]).astype(np.float64)  # the last layer is the model's real output


def _final_norm(model):
    base = model.base_model
    for name in ("norm", "ln_f", "final_layer_norm", "final_layernorm"):
        module = getattr(base, name, None)
        if module is not None:
            return module
    return lambda h: h  # an architecture without a final norm: read the hidden state as it is


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _eog_ids(subject) -> frozenset[int]:
    """End-of-sequence ids, which the sampler bans only under ``ignore_eos``."""
    eos = subject.tokenizer.eos_token_id
    return frozenset() if eos is None else frozenset({int(eos)})


def _decoder(tokenizer):
    from pocketlm.inspection.attention import token_labels

    return lambda token: token_labels(tokenizer, [token])[0]
