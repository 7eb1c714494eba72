"""Constrained generation (engine/constraints.py) on SmolLM2's real vocabulary: what the masks allow is valid.

Walks pick random allowed tokens (a random first byte among those allowed, closing ones favoured so outputs
end) and the text they make must parse and validate; masks forbid what they must; drafts are checked
without being taken; rollback restores the state; hostile grammars are a quick InvalidParameter.
"""

import ast
import json
import re
import time

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.backends.llamacpp import LlamaCppBackend
from pocketlm.engine.constraints import (
    MAX_GRAMMAR_BYTES,
    MAX_SCHEMA_DEPTH,
    Grammar,
    Vocabulary,
    apply_all,
    special_tokens,
)
from pocketlm.errors import InvalidParameter
from pocketlm.llama_library import C
from pocketlm.models import resolve
from structured import LARK, REGEX, SCHEMA_20, documents, nested

FIELD = "response_format"


@pytest.fixture(scope="module")
def backend():
    b = LlamaCppBackend(resolve(None).path, slots=1, n_ctx=64)  # the embedded SmolLM2: only its vocabulary is used
    yield b
    b.close()


@pytest.fixture(scope="module")
def vocab(backend):
    return Vocabulary.from_backend(backend)


class Walker:
    """Random walks through a grammar by its masks alone."""

    CLOSING = [ord(c) for c in '"}]),']
    END = 256  # the "first byte" of end-of-generation tokens

    def __init__(self, backend):
        self.tokens = [backend.token_bytes(t) for t in range(backend.info.n_vocab)]
        self.eog = backend.eog_ids
        self.first = np.array([t[0] if t else 257 for t in self.tokens])
        self.first[list(self.eog)] = self.END

    def allowed(self, c) -> np.ndarray:
        logits = np.zeros(len(self.tokens), dtype=np.float32)
        c.apply(logits)
        return np.flatnonzero(np.isfinite(logits))

    def walk(self, c, seed: int, limit: int = 3000) -> bytes:
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(limit):
            allowed = self.allowed(c)
            firsts = self.first[allowed]
            classes = np.unique(firsts)
            weights = np.where(np.isin(classes, [*self.CLOSING, self.END]), 10.0, 1.0)
            lead = rng.choice(classes, p=weights / weights.sum())
            token = int(rng.choice(allowed[firsts == lead]))
            if token in self.eog:
                assert c.can_end
                return b"".join(out)
            c.accept(token)
            out.append(self.tokens[token])
        pytest.fail(f"no end after {limit} tokens: {b''.join(out)[:200]!r}")


@pytest.fixture(scope="module")
def walker(backend):
    return Walker(backend)


def json_schema(schema) -> Grammar:
    return Grammar.json_schema(schema, field=FIELD)


# ------------------------------------------------------------------ walks produce valid output


@pytest.mark.parametrize("seed", range(4))
def test_walks_under_a_20_field_schema_validate(vocab, walker, seed):
    text = walker.walk(vocab.compile(json_schema(SCHEMA_20)).constraint(), seed).decode("utf-8")
    jsonschema.validate(json.loads(text), SCHEMA_20)
    assert "\n" not in text and ": " in text  # one line, separators as json.dumps writes them


@pytest.mark.parametrize("seed", range(3))
def test_walks_under_json_object_give_an_object(vocab, walker, seed):
    text = walker.walk(vocab.compile(Grammar.json_object(field=FIELD)).constraint(), seed)
    assert isinstance(json.loads(text), dict)


@pytest.mark.parametrize("seed", range(3))
def test_walks_under_a_regex_match_it(vocab, walker, seed):
    text = walker.walk(vocab.compile(Grammar.regex(REGEX, field="regex")).constraint(), seed).decode("utf-8")
    assert re.fullmatch(REGEX, text)


@pytest.mark.parametrize("seed", range(3))
def test_walks_under_a_lark_grammar_parse(vocab, walker, seed):
    # The grammar's language (arithmetic with calls) is a subset of Python's expressions.
    text = walker.walk(vocab.compile(Grammar.lark(LARK, field="grammar")).constraint(), seed).decode("utf-8")
    assert isinstance(ast.parse(text, mode="eval").body, ast.expr)


def test_the_models_own_tokenization_of_valid_outputs_is_accepted(vocab, backend):
    # Where a grammar forces text, masks allow only its tokenization by the model's tokenizer (llguidance
    # asks ``backend.tokenize``); other ways to spell valid text are still accepted (drafts bring them).
    for kind, grammar in (("schema20", json_schema(SCHEMA_20)), ("regex", Grammar.regex(REGEX, field="regex"))):
        for doc in documents(kind)[:4]:
            c = vocab.compile(grammar).constraint()
            for token in backend.tokenize(doc, add_special=False):
                c.accept(token)
            assert c.can_end


# ------------------------------------------------------------------ masks forbid what they must


def test_an_integer_allows_only_digits_and_a_sign_first(vocab, walker, backend):
    allowed = walker.allowed(vocab.compile(json_schema({"type": "integer"})).constraint())
    assert allowed.size > 10
    assert all(re.fullmatch(rb"-?[0-9]*", walker.tokens[t]) for t in allowed)
    assert not set(allowed) & backend.eog_ids  # an empty output is no integer


def test_special_tokens_are_never_text(vocab, walker, backend):
    c = vocab.compile(json_schema({"type": "string"})).constraint()
    c.accept(backend.tokenize('"', add_special=False)[0])
    allowed = set(walker.allowed(c))
    assert len(allowed) > 40_000  # inside a string nearly everything goes...
    assert not allowed & special_tokens(backend)  # ...but no <|im_start|>, and no end of generation


def test_a_complete_output_allows_only_the_end(vocab, walker, backend):
    c = vocab.compile(json_schema({"type": "object", "properties": {"a": {"type": "integer"}}})).constraint()
    for token in backend.tokenize('{"a": 7}', add_special=False):
        assert not c.must_end
        c.accept(token)
    assert c.can_end and c.must_end
    assert set(walker.allowed(c)) == backend.eog_ids


def test_apply_leaves_allowed_logits_as_they_were(vocab):
    row = np.random.default_rng(0).standard_normal(vocab.n_vocab).astype(np.float32)
    masked = row.copy()
    vocab.compile(json_schema({"type": "boolean"})).constraint().apply(masked)
    kept = np.isfinite(masked)
    assert 2 <= kept.sum() < 100 and np.array_equal(masked[kept], row[kept])
    assert np.all(masked[~kept] == -np.inf)


def test_apply_all_matches_apply_row_by_row(vocab, backend):
    grammars = [json_schema({"type": "integer"}), None, Grammar.regex("(yes|no)", field="regex"), None]
    constraints = [vocab.compile(g).constraint() if g else None for g in grammars]
    constraints[0].accept(backend.tokenize("4", add_special=False)[0])
    # "es" is forced now: llguidance calls back into Python (backend.tokenize) from its worker threads.
    constraints[2].accept(backend.tokenize("y", add_special=False)[0])
    logits = np.random.default_rng(1).standard_normal((4, vocab.n_vocab)).astype(np.float32)
    expected = logits.copy()
    for row, c in zip(expected, constraints):
        if c:
            c.apply(row)
    apply_all(logits, constraints)
    assert np.array_equal(logits, expected)
    assert np.isfinite(logits[1]).all() and np.isfinite(logits[3]).all()  # rows without a grammar untouched


@pytest.mark.parametrize("seed", range(3))
def test_a_choice_the_model_cannot_write_is_never_started(vocab, walker, seed):
    # SmolLM2 has no token for the byte 0xF2 that begins U+A5414: only "ok" can be written.
    text = walker.walk(vocab.compile(json_schema({"enum": ["\U000a5414", "ok"]})).constraint(), seed)
    assert text == b'"ok"'


def test_padding_tokens_without_bytes_are_never_allowed(backend):
    # A torch model's output layer may be wider than its tokenizer: the extra ids have no bytes.
    n = backend.info.n_vocab
    tokens = [backend.token_bytes(t) for t in range(n)] + [b""] * 64
    v = Vocabulary(tokens, sorted(backend.eog_ids), [], lambda text: backend.tokenize(text, add_special=False))
    logits = np.zeros(n + 64, dtype=np.float32)
    v.compile(json_schema({"type": "string"})).constraint().apply(logits)
    assert np.isfinite(logits[:n]).any() and not np.isfinite(logits[n:]).any()


# ------------------------------------------------------------------ drafts, rollback, the cache


def part_way(vocab, backend, document: int, n: int):
    """A constraint under SCHEMA_20 that has taken the first n tokens of a document, and all its tokens."""
    c = vocab.compile(json_schema(SCHEMA_20)).constraint()
    tokens = backend.tokenize(documents("schema20")[document], add_special=False)
    for t in tokens[:n]:
        c.accept(t)
    return c, tokens


def test_a_draft_is_checked_without_being_taken(vocab, walker, backend):
    c, tokens = part_way(vocab, backend, 0, 10)
    before = walker.allowed(c)
    im_start = backend.tokenize("<|im_start|>", add_special=True)[-1]
    assert c.valid_prefix(tokens[10:14]) == 4
    assert c.valid_prefix([*tokens[10:12], im_start, tokens[12]]) == 2
    assert c.valid_prefix([im_start]) == 0
    assert np.array_equal(walker.allowed(c), before)


def test_rollback_restores_the_state(vocab, walker, backend):
    c, tokens = part_way(vocab, backend, 1, 20)
    before = walker.allowed(c)
    for t in tokens[20:23]:
        c.accept(t)
    assert not np.array_equal(walker.allowed(c), before)
    c.rollback(3)
    assert np.array_equal(walker.allowed(c), before)
    for t in tokens[20:]:  # and it goes on as if the three had never been taken
        c.accept(t)
    assert c.can_end
    with pytest.raises(ValueError, match="more than were accepted"):
        c.rollback(len(tokens) + 1)


def test_a_refused_token_does_not_break_the_constraint(vocab, walker, backend):
    c = vocab.compile(json_schema({"type": "integer"})).constraint()
    before = walker.allowed(c)
    with pytest.raises(ValueError, match="not allowed here"):
        c.accept(backend.tokenize("x", add_special=False)[0])
    assert np.array_equal(walker.allowed(c), before)
    c.accept(backend.tokenize("5", add_special=False)[0])
    assert c.can_end


def test_a_grammar_compiles_once_and_its_samples_are_independent(vocab, walker, backend):
    grammar = json_schema({"type": "array", "items": {"type": "integer"}})
    compiled = vocab.compile(grammar)
    assert vocab.compile(json_schema({"type": "array", "items": {"type": "integer"}})) is compiled
    first, second = compiled.constraint(), compiled.constraint()
    fresh = walker.allowed(second)
    for t in backend.tokenize("[1, 2", add_special=False):
        first.accept(t)
    assert np.array_equal(walker.allowed(second), fresh)
    assert not np.array_equal(walker.allowed(first), fresh)


def test_special_tokens_are_llama_cpps_control_tokens(backend):
    attr = C.LLAMA_TOKEN_ATTR_CONTROL
    control = {t for t in range(backend.info.n_vocab) if C.llama_vocab_get_attr(backend.vocab, t) & attr}
    assert special_tokens(backend) == control
    assert len(control) == 17 and backend.eog_ids <= control


# ------------------------------------------------------------------ bad and hostile input


HOSTILE = {
    "nested 200 levels": (lambda: json_schema(nested(200)), f"at most {MAX_SCHEMA_DEPTH}"),
    "enum of 100k strings": (lambda: json_schema({"enum": [f"v{i:06d}" for i in range(100_000)]}), "at most 100,000"),
    "invalid type": (lambda: json_schema({"type": "objekt"}), "objekt"),
    "properties not an object": (lambda: json_schema({"type": "object", "properties": 5}), "properties"),
    "unsupported keyword": (lambda: json_schema({"type": "array", "uniqueItems": True}), "does not support"),
    "if/then": (lambda: json_schema({"if": {"required": ["a"]}, "then": {"required": ["b"]}}), "does not support"),
    "remote $ref": (lambda: json_schema({"$ref": "https://example.com/s.json"}), "example.com"),
    "unsatisfiable": (lambda: json_schema({"type": "integer", "minimum": 5, "maximum": 3}), "no output can satisfy"),
    "incompatible allOf": (lambda: json_schema({"allOf": [{"type": "string"}, {"type": "integer"}]}), "satisfy"),
    # SmolLM2 has no token for the byte 0xF2 that begins U+A5414 (its tokenizer drops it): no output can be it.
    "unwritable character": (lambda: json_schema({"const": "\U000a5414"}), "cannot write"),
    "not an object": (lambda: json_schema(["type", "object"]), "is an object"),
    "invalid regex": (lambda: Grammar.regex("(abc", field="regex"), "unclosed group"),
    "empty regex": (lambda: Grammar.regex("", field="regex"), "non-empty"),
    "undefined Lark rule": (lambda: Grammar.lark("start: foo", field="grammar"), "unknown name"),
    "huge Lark grammar": (lambda: Grammar.lark("start: " + '"ab" | ' * 20_000 + '"c"', field="grammar"), "at most"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_grammars_are_a_quick_invalid_parameter(vocab, case):
    make, message = HOSTILE[case]
    started = time.monotonic()
    with pytest.raises(InvalidParameter) as e:
        vocab.compile(make())
    assert e.value.param in (FIELD, "regex", "grammar") and message in e.value.message
    assert time.monotonic() - started < 10  # a guard against hangs, not a speed claim (they take ms)


@pytest.mark.parametrize("pattern", ["(a|b)*a(a|b){24}", "[a-z]{100000}", "(a|aa)*b", "(a*)*b"])
def test_bombs_are_followed_step_by_step(vocab, backend, pattern):
    # Exponential as a DFA, or as backtracking: llguidance's lexer builds only the states it meets.
    c = vocab.compile(Grammar.regex(pattern, field="regex")).constraint()
    a = backend.tokenize("a", add_special=False)[0]
    for _ in range(200):
        logits = np.zeros(vocab.n_vocab, dtype=np.float32)
        c.apply(logits)
        assert logits[a] == 0.0
        c.accept(a)


@pytest.mark.parametrize("pattern", ["((a{0,100}){0,100}){0,100}", "(a?){5000}a{5000}"])
def test_a_grammar_out_of_fuel_while_generating_is_an_invalid_parameter(vocab, backend, pattern):
    # Nested counted repetitions compile, then need ever more lexer expressions as the output grows, until
    # llguidance's bound: the sample fails loudly instead of ending there looking complete (a matcher in
    # error allows only the end of generation).
    c = vocab.compile(Grammar.regex(pattern, field="regex")).constraint()
    a = backend.tokenize("a", add_special=False)[0]
    with pytest.raises(InvalidParameter, match="too large or too complex") as e:
        for _ in range(200):
            c.apply(np.zeros(vocab.n_vocab, dtype=np.float32))
            c.accept(a)
    assert e.value.param == "regex" and "<non-verbose/>" not in e.value.message


def test_a_vocabulary_needs_an_end_of_generation_token():
    with pytest.raises(ValueError, match="end-of-generation"):
        Vocabulary([b"a", b"b"], [], [], lambda text: [])


def test_the_size_bound_counts_bytes():
    Grammar.regex("é" * (MAX_GRAMMAR_BYTES // 2), field="regex")
    with pytest.raises(InvalidParameter, match="at most"):
        Grammar.regex("é" * (MAX_GRAMMAR_BYTES // 2 + 1), field="regex")


# ------------------------------------------------------------------ property: any schema within limits


def _leaf_schemas():
    # Planes 0-3: SmolLM2 has no token for 0xF1 or 0xF2, the first bytes of planes 4-11's characters.
    word = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), max_codepoint=0x3FFFF), max_size=6)
    return st.one_of(
        st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"type": "number"}, {"type": "integer"}]),
        st.tuples(st.integers(-1000, 1000), st.integers(0, 1000)).map(
            lambda r: {"type": "integer", "minimum": r[0], "maximum": r[0] + r[1]}
        ),
        st.tuples(st.integers(0, 4), st.integers(0, 8)).map(
            lambda r: {"type": "string", "minLength": r[0], "maxLength": r[0] + r[1]}
        ),
        st.sampled_from(["^[a-z]{1,6}$", "^[0-9]{2,4}-[0-9]{2}$", "^(red|green|blue)$", "^[A-Z][a-z]{0,5}$"]).map(
            lambda p: {"type": "string", "pattern": p}
        ),
        st.lists(word, min_size=1, max_size=4, unique=True).map(lambda values: {"enum": values}),
        word.map(lambda value: {"const": value}),
    )


def _containers(children):
    objects = st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), children, min_size=1, max_size=4)
    return st.one_of(
        st.tuples(children, st.integers(0, 2), st.integers(0, 3)).map(
            lambda a: {"type": "array", "items": a[0], "minItems": a[1], "maxItems": a[1] + a[2]}
        ),
        objects.flatmap(
            lambda props: st.sets(st.sampled_from(sorted(props))).map(
                lambda required: {
                    "type": "object",
                    "properties": props,
                    "required": sorted(required),
                    "additionalProperties": False,
                }
            )
        ),
        st.lists(children, min_size=2, max_size=3).map(lambda options: {"anyOf": options}),
    )


@given(schema=st.recursive(_leaf_schemas(), _containers, max_leaves=10), seed=st.integers(0, 2**16))
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_any_schema_within_limits_gives_valid_outputs(vocab, walker, schema, seed):
    text = walker.walk(vocab.compile(json_schema(schema)).constraint(), seed)
    jsonschema.validate(json.loads(text), schema)
