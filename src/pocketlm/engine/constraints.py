"""Constrained generation: a grammar decides which tokens a sample may take next.

A request may ask for output that follows a JSON schema, is any JSON object, matches a regular
expression or a context-free grammar. llguidance (chosen by measurement against xgrammar:
benchmarks/NOTES.md, 2026-12-02) reads the grammar and the model's vocabulary and, at every step,
gives the set of tokens that keep the output valid; the sampler sets every other logit to -inf.

    vocab = Vocabulary.from_backend(backend)  # once per model, from its token bytes
    grammar = vocab.compile(Grammar.json_schema(schema, field="response_format"))  # per request, cached
    c = grammar.constraint()  # per sample
    c.apply(logits_row); token = sample(...); c.accept(token)  # per step; c.must_end: only EOS is left

The vocabulary comes from token bytes (``backend.token_bytes``), never from a Hugging Face tokenizer:
a GGUF may have none. Sources and their dialects:
- JSON schema (a dict): llguidance's JSON Schema subset (types, properties/required, enum/const,
  anyOf/oneOf/allOf, local $ref, string length/pattern/format, number bounds, array bounds). A keyword
  outside it is an error, not ignored. Output is one line, separators ", " and ": " (as ``json.dumps``):
  free whitespace would let a small model pad forever.
- "json_object": any JSON object, in the same layout.
- regex: Rust ``regex`` syntax (no look-around, no back-references); the whole output must match.
- Lark: llguidance's Lark dialect (its docs/syntax.md): ``start`` rule, lowercase rules, UPPERCASE
  terminals, "literals" and /regexes/ (Rust syntax), ``%ignore``, ``%import common``, ``%json {...}``.
  A grammar without a ``start`` rule is read as llama.cpp's GBNF (``root ::= ...``, what llama-server's
  ``grammar`` takes) and converted to Lark by llguidance's own converter.

Anything a request can get wrong is an ``InvalidParameter`` naming its field: a bad or unsupported
grammar, one larger or deeper than the bounds below, one that exhausts llguidance's fuel while compiling
(grammar bombs), and one that runs out of fuel while generating.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import llguidance as llg
import llguidance.numpy as lln
import numpy as np
from llguidance.gbnf_to_lark import any_to_lark

from pocketlm.backends.base import Backend
from pocketlm.errors import InvalidParameter
from pocketlm.settings import cores

# Bounds on what a request may ask for, checked before llguidance sees it.
MAX_GRAMMAR_BYTES = 100_000  # a schema's JSON or a grammar's text; a 5,000-value enum is ~70 KB
MAX_SCHEMA_DEPTH = 64  # nested objects/arrays in a schema (~30 levels of properties); llguidance's parser stops at 128

# llguidance's own bounds (fuel ~ time: ~50k/ms compiling, ~14k/ms per step, measured by its authors).
# The defaults, except errors without the grammar in them: they are returned to the client.
LIMITS = llg.LLParserLimits(verbose_errors=False)

# JSON layout, set over anything the schema's own "x-guidance" asks for.
JSON_OPTIONS = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": False,  # an unsupported keyword is an error, not silently dropped
    "coerce_one_of": False,
}

_CACHED_GRAMMARS = 64  # compiled grammars kept per vocabulary (a pristine matcher each: KBs to a few MB)


@dataclass(frozen=True)
class Grammar:
    """What a request asks its output to follow, and the request field it came from (named in errors).

    Hashable on purpose: (vocabulary, grammar) is the compile cache's key.
    """

    kind: str  # "json_schema" | "json_object" | "regex" | "lark"
    source: str  # the schema as compact JSON (property order kept: it is the output's order), or the text
    field: str

    @classmethod
    def json_schema(cls, schema: dict, *, field: str, closed: bool = False) -> Grammar:
        """``closed``: objects take only the properties they list, unless they say otherwise (closed_schema)."""
        if not isinstance(schema, dict):
            raise InvalidParameter(field, f"a JSON schema is an object; got {type(schema).__name__}")
        depth = _depth(schema)
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidParameter(
                field, f"the schema nests {depth} objects/arrays deep; at most {MAX_SCHEMA_DEPTH}: flatten it"
            )
        if closed:
            schema = closed_schema(json.loads(json.dumps(schema)))  # a copy: the request's own stays as sent
        return cls._sized("json_schema", json.dumps(schema, separators=(",", ":")), field)

    @classmethod
    def json_object(cls, *, field: str) -> Grammar:
        return cls("json_object", '{"type":"object"}', field)

    @classmethod
    def regex(cls, pattern: str, *, field: str) -> Grammar:
        return cls._sized("regex", _text(pattern, field), field)

    @classmethod
    def lark(cls, grammar: str, *, field: str) -> Grammar:
        return cls._sized("lark", _text(grammar, field), field)

    @classmethod
    def _sized(cls, kind: str, source: str, field: str) -> Grammar:
        size = len(source.encode("utf-8"))
        if size > MAX_GRAMMAR_BYTES:
            raise InvalidParameter(field, f"is {size:,} bytes; at most {MAX_GRAMMAR_BYTES:,}: make it smaller")
        return cls(kind, source, field)

    def _for_llguidance(self) -> str:
        """The grammar in llguidance's own format (no compiling yet)."""
        if self.kind in ("json_schema", "json_object"):
            return llg.LLMatcher.grammar_from_json_schema(self.source, overrides=JSON_OPTIONS)
        if self.kind == "regex":
            return llg.LLMatcher.grammar_from_regex(self.source)
        return llg.LLMatcher.grammar_from_lark(self._lark())

    def _lark(self) -> str:
        """The grammar in Lark: as given, or converted from GBNF (no ``start`` rule)."""
        try:
            return any_to_lark(self.source)
        except RecursionError:  # GBNF nested deeper than the converter's recursive parser goes
            raise InvalidParameter(self.field, "is nested too deeply: flatten it") from None
        except Exception as e:  # its parse errors, and plain Exceptions for a missing or repeated rule
            raise InvalidParameter(self.field, f"invalid GBNF grammar: {e}") from None


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(field, "must be a non-empty string")
    return value


def closed_schema(schema: dict) -> dict:
    """``schema`` (changed in place) with ``additionalProperties: false`` wherever an object lists its properties
    and says nothing of others: the output has the properties the schema declares, never ones a small model
    makes up. OpenAI's strict mode requires this of a schema; langchain's and pydantic's schemas leave it out,
    so pocketlm closes them for tools and strict formats. Only subschemas are visited, never values (an
    ``enum`` of objects stays as it is)."""
    stack = [schema]
    while stack:  # the schema's depth was bounded when it was checked
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for key in ("properties", "$defs", "definitions", "patternProperties"):
            if isinstance(node.get(key), dict):
                stack.extend(node[key].values())
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if isinstance(node.get(key), list):
                stack.extend(node[key])
        stack.extend(node.get(key) for key in ("items", "additionalProperties", "not"))
    return schema


def _depth(value) -> int:
    """How deeply dicts and lists nest in ``value``, without recursion (a hostile schema may nest thousands)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_SCHEMA_DEPTH:  # deeper than that is an error already: no need to walk on
            stack.extend((child, depth + 1) for child in children)
    return deepest


class Vocabulary:
    """A model's tokens as llguidance sees them, and the grammars compiled for them.

    ``tokens[t]`` is token t's bytes; ``special_ids`` are control tokens (never text: a grammar cannot
    produce ``<|im_start|>`` by spelling it); ``eog_ids`` end generation, allowed once the output is
    complete. ``tokenize`` turns text into tokens the model's way: llguidance uses it only for bytes
    a grammar forces.
    """

    def __init__(
        self,
        tokens: Sequence[bytes],
        eog_ids: Sequence[int],
        special_ids: Sequence[int],
        tokenize: Callable[[str], list[int]],
    ):
        if not eog_ids:
            raise ValueError("constrained generation needs an end-of-generation token; this vocabulary has none")
        special = set(special_ids) | set(eog_ids)
        # llguidance's convention: a special token's bytes start with 0xFF (never valid UTF-8).
        marked = [b"\xff" + t if i in special else t for i, t in enumerate(tokens)]
        self.n_vocab = len(marked)
        self.eog_ids = frozenset(eog_ids)
        eog = sorted(eog_ids)
        self._tokenizer = llg.LLTokenizer(_Tokens(marked, eog[0], tokenize), n_vocab=self.n_vocab, eos_token=eog)
        self._compiled: OrderedDict[Grammar, CompiledGrammar] = OrderedDict()
        self._lock = threading.Lock()  # compiles may run on request threads while the engine thread samples

    @classmethod
    def from_backend(cls, backend: Backend) -> Vocabulary:
        """A loaded model's vocabulary. Building it takes up to seconds for a large vocabulary
        (benchmarks/NOTES.md, "Structured generation"): make it once per model."""
        n = backend.info.n_vocab
        return cls(
            [backend.token_bytes(t) for t in range(n)],
            sorted(backend.eog_ids),
            sorted(special_tokens(backend)),
            lambda text: backend.tokenize(text, add_special=False),
        )

    def compile(self, grammar: Grammar) -> CompiledGrammar:
        """``grammar`` ready to start samples from (cached), or InvalidParameter naming its field."""
        with self._lock:
            if grammar in self._compiled:
                self._compiled.move_to_end(grammar)
                return self._compiled[grammar]
        try:
            source = grammar._for_llguidance()
        except ValueError as e:  # not a JSON object, where one was needed
            raise InvalidParameter(grammar.field, f"invalid {grammar.kind}: {e}") from None
        # Compiling drops the GIL and is bounded by LIMITS' fuel. The first mask is computed here too:
        # llguidance builds its lexer lazily, and a lexer too large must fail now, not at the first step.
        matcher = llg.LLMatcher(self._tokenizer, source, log_level=0, limits=LIMITS)
        if not matcher.is_error():
            matcher.compute_bitmask()
        if matcher.is_error():
            raise _invalid(grammar, matcher.get_error())
        compiled = CompiledGrammar(grammar, matcher, self.n_vocab)
        with self._lock:
            self._compiled[grammar] = compiled
            while len(self._compiled) > _CACHED_GRAMMARS:
                self._compiled.popitem(last=False)
        return compiled


class _Tokens:
    """What llguidance.LLTokenizer reads from a tokenizer: every token's bytes, and a way to tokenize.

    llguidance tokenizes the text a grammar forces (the rest of an enum value, a literal) and allows only
    the first of those tokens, so that forced text reads to the model as its own tokenization would.
    That needs tokens that spell the text exactly: the model's tokenizer may not (llama.cpp drops a byte
    that no token holds; SmolLM2 has none for 0xF1 and 0xF2, which begin characters of planes 4-11), and
    then a greedy longest-match spelling stands in; none at all means no model output can be that text.
    """

    is_tokenizer_wrapper = True
    bos_token_id = None
    special_token_ids: list[int] = []  # marked by their 0xFF byte instead

    def __init__(self, tokens: list[bytes], eos: int, tokenize: Callable[[str], list[int]]):
        # Without an EOS among the tokens llguidance appends one of its own; all of them go to LLTokenizer.
        self.tokens, self.eos_token_id, self._tokenize = tokens, eos, tokenize

    def __call__(self, text: str) -> list[int]:
        # (Special tokens never spell text: their marked bytes start with 0xFF, which UTF-8 never holds.)
        ids, data = self._tokenize(text), text.encode("utf-8")
        return ids if b"".join(self.tokens[t] for t in ids) == data else self._greedy(data)

    def _greedy(self, data: bytes) -> list[int]:
        ids, at = [], 0
        while at < len(data):
            for end in range(min(len(data), at + self._longest), at, -1):
                if (token := self._ids.get(data[at:end])) is not None:
                    ids.append(token)
                    at = end
                    break
            else:
                return []  # a byte no token holds
        return ids

    @functools.cached_property
    def _ids(self) -> dict[bytes, int]:
        ids: dict[bytes, int] = {}
        for t, piece in enumerate(self.tokens):
            if piece:
                ids.setdefault(piece, t)
        return ids

    @functools.cached_property
    def _longest(self) -> int:
        return max(map(len, self._ids))


def special_tokens(backend: Backend) -> frozenset[int]:
    """Control tokens: those the tokenizer reads from their text only when told to parse special tokens.

    The backend interface gives bytes, not token attributes, so this asks the tokenizer. Candidates are
    tokens written like ``<...>`` or ``[...]`` (every control token of SmolLM2 and Gemma 3; on both it
    finds exactly llama.cpp's CONTROL tokens: 17 of 49,152 and 6,250 of 262,144, in ~0.6 s for Gemma).
    """
    found = set()
    for t in range(backend.info.n_vocab):
        piece = backend.token_bytes(t)
        if not _LOOKS_SPECIAL.match(piece):
            continue
        text = piece.decode("utf-8")  # the pattern admits only ASCII
        if backend.tokenize(text, add_special=True)[-1:] == [t] and backend.tokenize(text, add_special=False) != [t]:
            found.add(t)
    return frozenset(found)


_LOOKS_SPECIAL = re.compile(rb"^[<\[][\x21-\x7e]+[>\]]$")


class CompiledGrammar:
    """A grammar compiled for one vocabulary: starts any number of samples (``n``, retries) cheaply."""

    def __init__(self, grammar: Grammar, matcher: llg.LLMatcher, n_vocab: int):
        self.grammar, self._pristine, self._n_vocab = grammar, matcher, n_vocab

    def constraint(self) -> Constraint:
        return Constraint(self.grammar, self._pristine.deep_copy(), self._n_vocab)  # ~10 µs, shares the grammar


class Constraint:
    """One sample's place in its grammar: which tokens may come next, and the tokens taken so far."""

    def __init__(self, grammar: Grammar, matcher: llg.LLMatcher, n_vocab: int):
        self.grammar, self._matcher, self.n_vocab = grammar, matcher, n_vocab
        self._bits = np.empty(mask_words(n_vocab), dtype=np.int32)

    def fill(self, bits: np.ndarray) -> None:
        """The tokens allowed next into ``bits``: ``mask_words(n_vocab)`` int32 words, bit t for token t."""
        if bits.dtype != np.int32 or bits.shape != self._bits.shape or not bits.flags["C_CONTIGUOUS"]:
            raise ValueError(f"a mask is {self._bits.shape[0]} contiguous int32 words; got {bits.dtype}{bits.shape}")
        self._matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
        self._check()

    def apply(self, logits: np.ndarray) -> None:
        """Set the logit of every token the grammar forbids next to -inf, in place (one float32 row)."""
        _check_width(logits, self.n_vocab)
        self.fill(self._bits)
        forbid(logits, self._bits)

    def accept(self, token: int) -> None:
        """Take ``token``: one the last mask allowed, or a drafted one ``valid_prefix`` approved."""
        if self._matcher.is_error():  # out of fuel in the last mask: ``error`` says so, nothing more to take
            return
        # Checked first: a refused token would leave llguidance's matcher in an error state for good.
        if self._matcher.validate_tokens([token]) != 1:
            raise ValueError(f"token {token} is not allowed here; accept only tokens the mask allows")
        self._matcher.consume_token(token)  # may run out of fuel: then ``error`` says so

    def valid_prefix(self, tokens: Sequence[int]) -> int:
        """How many of ``tokens`` (a draft) the grammar allows in a row from here, without taking any."""
        return self._matcher.validate_tokens(list(tokens))

    def rollback(self, n: int) -> None:
        """Forget the last ``n`` accepted tokens (drafted tokens the sampler did not keep)."""
        if n and not self._matcher.rollback(n):
            raise ValueError(f"cannot roll back {n} tokens: more than were accepted")

    @property
    def can_end(self) -> bool:
        """The output so far is complete: an end-of-generation token is allowed now."""
        return self._matcher.is_accepting()

    @property
    def must_end(self) -> bool:
        """Nothing may follow but an end-of-generation token: the engine can finish the sample."""
        return self._matcher.is_stopped()

    @property
    def error(self) -> InvalidParameter | None:
        """Why the grammar cannot go on (llguidance's fuel per step ran out), or None: the sample must fail."""
        return _invalid(self.grammar, self._matcher.get_error()) if self._matcher.is_error() else None

    def _check(self) -> None:
        # A matcher in error allows only EOS, which would end the sample looking complete: raise instead.
        # Past compiling, what errs is llguidance's fuel per step running out on a pathological grammar.
        if self._matcher.is_error():
            raise _invalid(self.grammar, self._matcher.get_error())


def apply_all(logits: np.ndarray, constraints: Sequence[Constraint | None]) -> None:
    """``apply`` to every row of a batch that has a constraint, the masks computed on all cores at once.

    Unlike ``apply`` it raises nothing for a grammar that fails here: one request's grammar must not fail the
    batch. Such a row allows only the end of generation, and its constraint's ``error`` tells the engine.
    """
    rows = [(i, c) for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return
    _check_width(logits[0], rows[0][1].n_vocab)
    bits = np.empty((len(rows), mask_words(logits.shape[1])), dtype=np.int32)
    lln.fill_next_token_bitmask_par(_executor(), [(c._matcher, k) for k, (_, c) in enumerate(rows)], bits)
    for k, (i, _) in enumerate(rows):
        forbid(logits[i], bits[k])


def forbid(logits: np.ndarray, bits: np.ndarray) -> None:
    """-inf, in place, for every token of a logits row whose bit is 0 in the mask ``bits``."""
    allowed = np.unpackbits(bits.view(np.uint8), count=logits.shape[0], bitorder="little").view(bool)
    np.copyto(logits, -np.inf, where=~allowed)


def mask_words(n_vocab: int) -> int:
    """int32 words in one token mask."""
    return (n_vocab + 31) // 32


def _check_width(logits: np.ndarray, n_vocab: int) -> None:
    if logits.shape[-1] != n_vocab:
        raise ValueError(f"logits rows have {logits.shape[-1]} columns; the vocabulary has {n_vocab} tokens")


@functools.cache
def _executor() -> llg.LLExecutor:
    return llg.LLExecutor(num_threads=cores())  # its threads start on first use, not on import


def _invalid(grammar: Grammar, error: str) -> InvalidParameter:
    """llguidance's message, and what to do about it."""
    error = error.replace("<non-verbose/>", "").strip()  # where a verbose error would show the parser's state
    if "Unimplemented keys" in error:
        hint = "pocketlm does not support these JSON Schema keywords: remove them"
    elif "Unsatisfiable" in error:
        hint = "no output can satisfy it: fix the conflicting constraints"
    elif error.startswith("NoExtension"):  # the grammar forces text no token sequence spells
        hint = "this model cannot write the text it requires (a character outside its vocabulary?)"
    elif re.search(r"too big|too complex|too many|limit|fuel", error, re.IGNORECASE):
        hint = "it is too large or too complex to follow (nested counted repetitions, huge enums): simplify it"
    else:
        hint = f"fix the {grammar.kind.replace('_', ' ')}"
    return InvalidParameter(grammar.field, f"{hint} ({error[:500]})")
