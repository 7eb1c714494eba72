"""The fixed prompt set and the token counter every server is measured with.

Prompts are ~100-token windows of Hamlet and Othello (the dataset `shakespeare:valid`),
cut with the served model's own tokenizer so "100 tokens" means 100 tokens to the model.
The set is a pure function of the file and the tokenizer: every run, every server, the
same prompts in the same order.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pocketlm import datasets


class GGUFTokenizer:
    """The GGUF's own vocabulary through llama.cpp, without loading the weights (fast, ~10 MB)."""

    def __init__(self, gguf: Path):
        self.gguf = Path(gguf)

    @cached_property
    def _vocab(self):
        from llama_cpp import Llama

        return Llama(model_path=str(self.gguf), vocab_only=True, verbose=False)

    def encode(self, text: str) -> list[int]:
        return self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def decode(self, ids: list[int]) -> str:
        return self._vocab.detokenize(ids).decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0


def build_prompts(tokenizer: GGUFTokenizer, n: int = 64, n_tokens: int = 100, path: Path | None = None) -> list[str]:
    """`n` prompts of ~`n_tokens` tokens, starting at evenly spaced lines of the corpus.

    Each window starts at the beginning of a line (skipping blank lines and the
    `=== Title ===` markers) so prompts read like the play, then is cut at exactly
    `n_tokens` tokens. Re-tokenizing the cut text may differ by a token at the edge.
    """
    path = path or datasets.resolve("shakespeare:valid")  # fetched once, cached
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("===")]
    # Leave room at the end so the last window still has n_tokens of text after it.
    usable = starts[: int(len(starts) * 0.98)]
    step = len(usable) // n
    prompts = []
    for k in range(n):
        first = usable[k * step]
        text, ids = "", []
        for line in lines[first:]:
            text += line
            ids = tokenizer.encode(text)
            if len(ids) >= n_tokens:
                break
        prompts.append(tokenizer.decode(ids[:n_tokens]))
    return prompts


SYSTEM_INTRO = (
    "You are the reading companion of a Shakespeare study group. Answer questions about the passage "
    "below in plain modern English, briefly, quoting it where that helps.\n\nPassage:\n"
)


def build_chat(
    tokenizer: GGUFTokenizer, n: int = 64, system_tokens: int = 400, user_tokens: int = 20, path: Path | None = None
) -> list[list[dict]]:
    """`n` chat requests that share one ~`system_tokens`-token system prompt, each with a short user turn.

    What a hosted assistant sees: the same long instruction in front of every conversation, then a
    question of its own. The system prompt is the intro above plus the corpus's first passage, cut
    at `system_tokens` tokens in all; each user turn asks about a different line of the play
    (~`user_tokens` tokens), so only the system prompt is shared between requests.
    """
    path = path or datasets.resolve("shakespeare:valid")
    budget = system_tokens - len(tokenizer.encode(SYSTEM_INTRO))
    passage = build_prompts(tokenizer, n=1, n_tokens=budget, path=path)[0]
    system = SYSTEM_INTRO + passage
    lines = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if len(line.strip()) > 30 and not line.startswith("===")
    ]
    step = len(lines) // n
    chats = []
    for k in range(n):
        ids = tokenizer.encode(f'What does "{lines[k * step]}" mean here?')
        chats.append(
            [{"role": "system", "content": system}, {"role": "user", "content": tokenizer.decode(ids[:user_tokens])}]
        )
    return chats


def build_random_words(tokenizer: GGUFTokenizer, n_tokens: int, seed: int, path: Path | None = None) -> str:
    """A prompt of exactly ~`n_tokens` tokens of words drawn at random from the corpus's vocabulary.

    Text no server has seen and no prompt cache holds (each seed starts with other words), for timing
    a prefill by its length alone: the long-prompt workload asks for one token after it.
    """
    import random

    path = path or datasets.resolve("shakespeare:valid")
    vocabulary = sorted({w for w in path.read_text(encoding="utf-8").split() if w.isalpha()})
    words = random.Random(seed).choices(vocabulary, k=n_tokens)  # a word is at least one token: enough
    ids = tokenizer.encode(" ".join(words))
    return tokenizer.decode(ids[:n_tokens])
