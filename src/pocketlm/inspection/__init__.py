"""Look inside the model: tokens, positions, attention and the choice of the next token.

Every view runs on the torch/transformers model of whatever pocketlm serves (an
alias, a GGUF converted once to a Hugging Face directory, a Hugging Face
directory) with *eager* attention, the implementation that computes the
attention weights as an explicit softmax and can hand them back. The same four
names appear in the CLI (``pocketlm inspect tokens|positions|attention|next``),
the HTTP API (``POST /v1/inspect/...``) and the pictures (``pictures``, ``bertviz``).

- ``tokens``: what the model reads (ids, pieces, byte spans, special tokens);
- ``positions``: how it knows where a token is (sinusoidal formula vs. its own scheme);
- ``attention``: which earlier tokens each head looks at;
- ``next``: the next-token distribution before and after pocketlm's sampler, and the logit lens.
"""

from pocketlm.inspection.attention import AttentionMap, attention
from pocketlm.inspection.loading import BERT, Subject, load
from pocketlm.inspection.nexttoken import NextToken, next_token
from pocketlm.inspection.positions import PositionScheme, model_positions, sinusoidal
from pocketlm.inspection.tokens import Tokenization, compare, tokenize

__all__ = [
    "BERT",
    "AttentionMap",
    "NextToken",
    "PositionScheme",
    "Subject",
    "Tokenization",
    "attention",
    "compare",
    "load",
    "model_positions",
    "next_token",
    "sinusoidal",
    "tokenize",
]
