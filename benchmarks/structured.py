"""Choosing the structured-generation engine by measurement: llguidance vs xgrammar (issue 25).

    # 1. each model's vocabulary and the sample outputs in its tokens (pocketlm's venv: the models' tokenizers)
    PYTHONPATH=src .venv/bin/python benchmarks/structured.py vocab
    # 2. the measurements, in a scratch venv with both libraries (xgrammar needs torch and triton)
    python3 -m venv /work/venv-sg && /work/venv-sg/bin/pip install torch==2.13.0 numpy llguidance xgrammar
    /work/venv-sg/bin/python benchmarks/structured.py measure --repeats 3      # 13-20 min on 2 cores
    /work/venv-sg/bin/python benchmarks/structured.py tables                   # the tables again

For each library and vocabulary (SmolLM2, 49k tokens; Gemma 3, 262k), each run in a fresh process:
- the tokenizer built from token bytes (what a GGUF gives, no Hugging Face files), its time and memory;
- compile time of (a) a 20-field JSON schema (types, enums, a nested object, a bounded array, patterns),
  (b) any JSON object, (c) a regular expression, (d) a context-free grammar (Lark), up to the first mask;
- the mask for the next token, per token, while 1 and 16 matchers step through valid outputs (the
  model's own tokenization of generated documents): median and p99, cold (just compiled) and warm;
- checking a drafted continuation without committing it, and rolling tokens back;
- hostile inputs (deep nesting, huge enums, grammar bombs, invalid and unsupported schemas), each in a
  process of its own with a time limit: an error, or how long compiling and stepping took.
Runs alternate between the libraries; the tables are medians over runs. Applying a mask to a row of
logits in numpy is measured apart (the same for both). The results go to structured_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("smollm2-135m-instruct", "gemma3-270m")
LIBRARIES = ("llguidance", "xgrammar")
STREAMS = 16

# ------------------------------------------------------------------ workloads (pure Python, seeded)

COUNTRIES = ["br", "pt", "us", "gb", "fr", "de", "es", "it", "jp", "in"]
WORDS = "alpha beta gamma delta river stone cloud maple amber cedar orbit pixel quartz ember lotus".split()

SCHEMA_20 = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "email": {"type": "string", "pattern": "^[a-z0-9.]+@[a-z0-9]+\\.[a-z]{2,4}$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "role": {"enum": ["admin", "editor", "viewer", "guest"]},
        "country": {"type": "string", "enum": COUNTRIES},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 5},
        "address": {
            "type": "object",
            "properties": {
                "street": {"type": "string"},
                "city": {"type": "string"},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["street", "city", "zip"],
            "additionalProperties": False,
        },
        "phone": {"type": ["string", "null"]},
        "created": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "rating": {"type": "number", "minimum": 0, "maximum": 5},
        "notes": {"type": "string", "maxLength": 200},
        "priority": {"type": "integer", "enum": [1, 2, 3]},
        "verified": {"type": "boolean"},
        "balance": {"type": "number"},
        "language": {"enum": ["en", "pt", "fr", "de"]},
        "scores": {"type": "array", "items": {"type": "integer"}, "maxItems": 4},
        "status": {"enum": ["new", "open", "closed"]},
    },
    "additionalProperties": False,
}
SCHEMA_20["required"] = list(SCHEMA_20["properties"])

REGEX = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) (INFO|WARN|ERROR) [a-z_]{3,12}: [A-Za-z ,.]{10,80}"

# One grammar, arithmetic with calls, in the Lark syntax both libraries read (llguidance's own dialect;
# xgrammar's compile_lark).
LARK = r"""
start: expr
expr: term ((" + " | " - ") term)*
term: factor (("*" | "/") factor)*
factor: NUMBER | NAME | "(" expr ")" | NAME "(" expr (", " expr)* ")"
NUMBER: /[0-9]{1,6}(\.[0-9]{1,4})?/
NAME: /[a-z][a-z0-9_]{0,15}/
"""


def record(rng: random.Random) -> dict:
    """A document valid under SCHEMA_20, with the variety a model's answers have."""
    name = " ".join(rng.choice(WORDS).title() for _ in range(rng.randint(1, 3)))
    return {
        "id": rng.randint(1, 99999),
        "name": name,
        "email": f"{rng.choice(WORDS)}.{rng.randint(1, 99)}@{rng.choice(WORDS)}.com",
        "age": rng.randint(18, 90),
        "score": round(rng.uniform(-50, 50), 3),
        "active": rng.random() < 0.5,
        "role": rng.choice(["admin", "editor", "viewer", "guest"]),
        "country": rng.choice(COUNTRIES),
        "tags": rng.sample(WORDS, rng.randint(1, 5)),
        "address": {
            "street": f"{rng.randint(1, 999)} {rng.choice(WORDS).title()} Street",
            "city": rng.choice(WORDS).title(),
            "zip": f"{rng.randint(0, 99999):05d}",
        },
        "phone": None if rng.random() < 0.3 else f"+1 555 {rng.randint(1000, 9999)}",
        "created": f"20{rng.randint(10, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "rating": round(rng.uniform(0, 5), 1),
        "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))),
        "priority": rng.randint(1, 3),
        "verified": rng.random() < 0.5,
        "balance": round(rng.uniform(0, 10000), 2),
        "language": rng.choice(["en", "pt", "fr", "de"]),
        "scores": [rng.randint(0, 100) for _ in range(rng.randint(0, 4))],
        "status": rng.choice(["new", "open", "closed"]),
    }


def log_line(rng: random.Random) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
    return (
        f"{rng.randint(1990, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
        f"{rng.choice(['INFO', 'WARN', 'ERROR'])} {rng.choice(WORDS)}_{rng.choice(WORDS)[:3]}: "
        f"{words.capitalize()}, done."
    )[:130]


def expression(rng: random.Random, depth: int = 0) -> str:
    def factor() -> str:
        pick = rng.random()
        if depth < 3 and pick < 0.2:
            return f"({expression(rng, depth + 1)})"
        if depth < 3 and pick < 0.35:
            args = ", ".join(expression(rng, depth + 1) for _ in range(rng.randint(1, 3)))
            return f"{rng.choice(['max', 'min', 'sqrt', 'clamp'])}({args})"
        if pick < 0.7:
            return str(rng.choice([rng.randint(0, 999), round(rng.uniform(0, 100), 2)]))
        return rng.choice(WORDS)[:5] + rng.choice(["", "_x", "1"])

    terms = ["*".join(factor() for _ in range(rng.randint(1, 2))) for _ in range(rng.randint(1, 4))]
    out = terms[0]
    for t in terms[1:]:
        out += rng.choice([" + ", " - "]) + t
    return out


def documents(kind: str) -> list[str]:
    """STREAMS sample outputs valid under the grammar of ``kind``."""
    rng = random.Random(kind)
    if kind in ("schema20", "json_object"):
        return [json.dumps(record(rng)) for _ in range(STREAMS)]
    if kind == "regex":
        return [log_line(rng) for _ in range(STREAMS)]
    return [" + ".join(expression(rng) for _ in range(3)) for _ in range(STREAMS)]


KINDS = ("schema20", "json_object", "regex", "lark")


# ------------------------------------------------------------------ step 1: vocabularies (pocketlm's venv)


def dump_vocabulary(model: str, out: Path) -> None:
    """Token bytes, end-of-generation and special ids of ``model``, and the documents in its tokens."""
    from pocketlm.backends.llamacpp import LlamaCppBackend
    from pocketlm.engine.constraints import special_tokens
    from pocketlm.models import resolve

    backend = LlamaCppBackend(resolve(model).path, slots=1, n_ctx=64)
    data = {
        "model": model,
        "tokens": [backend.token_bytes(t).hex() for t in range(backend.info.n_vocab)],
        "eog": sorted(backend.eog_ids),
        "special": sorted(special_tokens(backend)),
        "documents": {k: [backend.tokenize(d, add_special=False) for d in documents(k)] for k in KINDS},
    }
    backend.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(out)
    print(f"{model}: {len(data['tokens'])} tokens, {len(data['special'])} special -> {out}", flush=True)


# ------------------------------------------------------------------ the two libraries behind one face


class Vocab:
    def __init__(self, path: Path):
        data = json.loads(path.read_text())
        self.model = data["model"]
        self.tokens = [bytes.fromhex(h) for h in data["tokens"]]
        self.eog = data["eog"]
        self.special = set(data["special"])
        self.documents = data["documents"]
        self.n = len(self.tokens)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


# Both libraries produce the layout of json.dumps: one line, ", " and ": " (the documents' own).
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class Llguidance:
    """Compile = LLMatcher construction (llguidance builds lexer states lazily, so the first mask is timed too)."""

    name = "llguidance"

    def __init__(self):
        import llguidance as llg
        import llguidance.numpy as lln

        self.llg, self.lln = llg, lln

    def prepare(self, v: Vocab) -> None:
        # Special tokens are marked with a leading 0xFF byte: never text, only named in a grammar.
        self.tokens = [b"\xff" + t if i in v.special else t for i, t in enumerate(v.tokens)]
        # llguidance tokenizes the bytes a grammar forces, with the model's tokenizer in pocketlm; here, where
        # there is none, greedily (so a forced token may differ from the documents': counted apart).
        self.greedy = self.llg.LLTokenizer(_Wrapper(self.tokens, v.eog[0], None), eos_token=v.eog).greedy_tokenize

    def build(self, v: Vocab) -> None:
        self.limits = self.llg.LLParserLimits(verbose_errors=False)
        self.tokenizer = self.llg.LLTokenizer(_Wrapper(self.tokens, v.eog[0], self.greedy), eos_token=v.eog)
        self.executor = self.llg.LLExecutor(num_threads=os.cpu_count())

    def grammar(self, kind: str, source) -> str:
        M = self.llg.LLMatcher
        if kind == "json":
            return M.grammar_from_json_schema(source, overrides=JSON_LAYOUT)
        return M.grammar_from_regex(source) if kind == "regex" else M.grammar_from_lark(source)

    def compile(self, kind: str, source):
        m = self.llg.LLMatcher(self.tokenizer, self.grammar(kind, source), log_level=0, limits=self.limits)
        if m.is_error():
            raise ValueError(m.get_error())
        return m

    def matcher(self, compiled):
        return compiled.deep_copy()

    def fill(self, m, bitmask, row: int) -> None:
        self.lln.fill_next_token_bitmask(m, bitmask, row)

    def fill_batch(self, ms: list, bitmask) -> None:
        self.lln.fill_next_token_bitmask_par(self.executor, [(m, i) for i, m in enumerate(ms)], bitmask)

    def accept(self, m, token: int) -> bool:
        return m.consume_token(token)

    def can_end(self, m) -> bool:
        return m.is_accepting()

    def check(self, m, tokens: list[int]) -> int:
        return m.validate_tokens(tokens)

    def rollback(self, m, n: int) -> None:
        m.rollback(n)

    def memory(self, compiled) -> int | None:
        return None  # no per-grammar figure: measured as RSS

    def error(self, m) -> str:
        return m.get_error()  # llguidance reports errors as a state, not by raising


class _Wrapper:
    """What llguidance.LLTokenizer reads: token bytes, EOS, and a tokenizer for forced text."""

    is_tokenizer_wrapper = True

    def __init__(self, tokens, eos, tokenize):
        self.tokens, self.eos_token_id, self.bos_token_id, self.special_token_ids = tokens, eos, None, []
        self._tokenize = tokenize

    def __call__(self, text: str) -> list[int]:
        return self._tokenize(text) if self._tokenize else []


class Xgrammar:
    """Compile = compile (cache off: every compile is a fresh one) + GrammarMatcher + first mask."""

    name = "xgrammar"

    def __init__(self):
        import xgrammar as xgr  # imports torch

        self.xgr = xgr

    def prepare(self, v: Vocab) -> None:
        pass

    def build(self, v: Vocab) -> None:
        xgr = self.xgr
        # Special tokens as empty strings: xgrammar then never matches them as text.
        tokens = [b"" if i in v.special else t for i, t in enumerate(v.tokens)]
        info = xgr.TokenizerInfo(tokens, xgr.VocabType.RAW, vocab_size=v.n, stop_token_ids=v.eog)
        self.compiler = xgr.GrammarCompiler(info, max_threads=os.cpu_count(), cache_enabled=False)
        self.batch = xgr.BatchGrammarMatcher(max_threads=os.cpu_count())
        self.eog = v.eog[0]

    def compile(self, kind: str, source):
        c = self.compiler
        if kind == "json":
            if source == {"type": "object"}:
                return c.compile_builtin_json_grammar()
            return c.compile_json_schema(source, any_whitespace=False, separators=(", ", ": "))
        return c.compile_regex(source) if kind == "regex" else c.compile_lark(source)

    def matcher(self, compiled):
        return self.xgr.GrammarMatcher(compiled)

    def fill(self, m, bitmask, row: int) -> None:
        m.fill_next_token_bitmask(bitmask, row)

    def fill_batch(self, ms: list, bitmask) -> None:
        self.batch.batch_fill_next_token_bitmask(ms, bitmask)

    def accept(self, m, token: int) -> bool:
        return m.accept_token(token)

    def can_end(self, m) -> bool:
        ok = m.accept_token(self.eog)
        if ok:
            m.rollback(1)
        return ok

    def check(self, m, tokens: list[int]) -> int:
        n = 0
        for t in tokens:
            if not m.accept_token(t):
                break
            n += 1
        if n:
            m.rollback(n)
        return n

    def rollback(self, m, n: int) -> None:
        m.rollback(n)

    def memory(self, compiled) -> int | None:
        return compiled.memory_size_bytes

    def error(self, m) -> str:
        return ""  # xgrammar raises


LIBS = {"llguidance": Llguidance, "xgrammar": Xgrammar}
GRAMMARS = {"schema20": ("json", SCHEMA_20), "json_object": ("json", {"type": "object"}), "regex": ("regex", REGEX)}
GRAMMARS["lark"] = ("lark", LARK)


# ------------------------------------------------------------------ step 2: one library on one vocabulary


def run_one(lib_name: str, vocab_path: Path) -> dict:
    v = Vocab(vocab_path)
    base = rss_mb()
    t = time.perf_counter()
    lib = LIBS[lib_name]()
    out: dict = {"library": lib_name, "model": v.model, "n_vocab": v.n, "import_s": time.perf_counter() - t}
    out["import_mb"] = rss_mb() - base
    lib.prepare(v)
    base = rss_mb()
    t = time.perf_counter()
    lib.build(v)
    out["tokenizer_s"] = time.perf_counter() - t
    out["tokenizer_mb"] = rss_mb() - base
    bitmask = np.full((STREAMS, (v.n + 31) // 32), -1, dtype=np.int32)
    for kind, (grammar_kind, source) in GRAMMARS.items():
        before = rss_mb()
        compiles, firsts = [], []
        for _ in range(3):
            t = time.perf_counter()
            compiled = lib.compile(grammar_kind, source)
            m = lib.matcher(compiled)
            t1 = time.perf_counter()
            lib.fill(m, bitmask, 0)
            compiles.append(time.perf_counter() - t)
            firsts.append(time.perf_counter() - t1)
        res = {"compile_s": statistics.median(compiles), "first_mask_s": statistics.median(firsts)}
        res["compile_mb"] = rss_mb() - before
        res["grammar_bytes"] = lib.memory(compiled)
        docs = v.documents[kind]
        res["tokens_per_doc"] = statistics.mean(map(len, docs))
        res["cold_1"] = walk(lib, [lib.matcher(compiled)], docs[:1], bitmask, batch=False)
        res["warm_1"] = walk(lib, [lib.matcher(compiled)], docs[:1], bitmask, batch=False)
        res["batch_16"] = walk(lib, [lib.matcher(compiled) for _ in docs], docs, bitmask, batch=True)
        res["serial_16"] = walk(lib, [lib.matcher(compiled) for _ in docs], docs, bitmask, batch=False)
        if kind == "schema20":
            res["drafts"] = drafts(lib, compiled, docs[0], min(v.special - set(v.eog)))
        out[kind] = res
        print(f"  {lib_name} {v.model} {kind}: compile {res['compile_s'] * 1000:.1f} ms", file=sys.stderr, flush=True)
    out["rss_mb"] = rss_mb()
    return out


def walk(lib, matchers: list, docs: list[list[int]], bitmask, batch: bool) -> dict:
    """Step every matcher through its document: one mask per token (all live ones together), then the token.

    Times are per step (all live matchers' masks); per token is that over the live count.
    """
    step_times, token_times, rejected, outside = [], [], 0, 0
    docs = list(docs)  # cut short where a token is refused
    live = list(range(len(matchers)))
    pos = 0
    while live:
        ms = [matchers[i] for i in live]
        t = time.perf_counter()
        if batch:
            lib.fill_batch(ms, bitmask[: len(ms)])
        else:
            for row, m in enumerate(ms):
                lib.fill(m, bitmask, row)
        dt = time.perf_counter() - t
        step_times.append(dt)
        token_times.append(dt / len(ms))
        for row, i in enumerate(live):
            token = docs[i][pos]
            if not bitmask[row, token // 32] >> (token % 32) & 1:
                # llguidance allows only the model's own tokenization of text the grammar forces
                # (here greedy's): a document token may be valid and outside the mask.
                outside += lib.check(matchers[i], [token]) == 1
            if not lib.accept(matchers[i], token):
                rejected += 1
                docs[i] = docs[i][:pos]  # stop this stream here
        pos += 1
        live = [i for i in live if pos < len(docs[i])]
    ended = sum(lib.can_end(m) for m, d in zip(matchers, docs) if d)
    return {
        "step_ms_p50": 1000 * statistics.median(step_times),
        "step_ms_p99": 1000 * float(np.percentile(step_times, 99)),
        "token_ms_p50": 1000 * statistics.median(token_times),
        "token_ms_p99": 1000 * float(np.percentile(token_times, 99)),
        "rejected": rejected,
        "outside_mask": outside,
        "can_end": ended,
        "streams": len(matchers),
    }


def drafts(lib, compiled, doc: list[int], bad: int, k: int = 3) -> dict:
    """At each position: check the next k (valid) tokens without committing; accept then roll back k.

    ``bad`` is never valid (a special token that does not end generation): checking [token, bad] must give 1.
    """
    m = lib.matcher(compiled)
    checks, rollbacks, wrong = [], [], 0
    for pos in range(len(doc) - k):
        t = time.perf_counter()
        ok = lib.check(m, doc[pos : pos + k])
        checks.append(time.perf_counter() - t)
        wrong += ok != k
        wrong += lib.check(m, [doc[pos], bad]) != 1
        for token in doc[pos : pos + k]:
            lib.accept(m, token)
        t = time.perf_counter()
        lib.rollback(m, k)
        rollbacks.append(time.perf_counter() - t)
        lib.accept(m, doc[pos])
    return {
        "check_ms_p50": 1000 * statistics.median(checks),
        "rollback_ms_p50": 1000 * statistics.median(rollbacks),
        "wrong": wrong,
    }


# ------------------------------------------------------------------ hostile inputs, one process each


def _length(v: Vocab):
    return lambda t: (len(v.tokens[t]), t)


def nested(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


HOSTILE = {
    "nested objects, 200 levels": ("json", nested(200)),
    "enum of 100k strings": ("json", {"enum": [f"value-{i:06d}" for i in range(100_000)]}),
    "regex (a|b)*a(a|b){24} (DFA 2^24)": ("regex", "(a|b)*a(a|b){24}"),
    "regex ((a{0,100}){0,100}){0,100}": ("regex", "((a{0,100}){0,100}){0,100}"),
    "pattern (a|b)*a(a|b){24} in a schema": ("json", {"type": "string", "pattern": "^(a|b)*a(a|b){24}$"}),
    "string minLength 100k": ("json", {"type": "string", "minLength": 100_000, "maxLength": 1_000_000}),
    "array minItems 100k": ("json", {"type": "array", "items": {"type": "integer"}, "minItems": 100_000}),
    "Lark r_i: r_i+1 r_i+1, 60 levels": (
        "lark",
        "start: r0\n" + "".join(f"r{i}: r{i + 1} r{i + 1}\n" for i in range(60)) + 'r60: "a" | "b"\n',
    ),
    "invalid type": ("json", {"type": "objekt"}),
    "properties not an object": ("json", {"type": "object", "properties": 5}),
    "unsupported uniqueItems": ("json", {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
    "unsupported if/then": ("json", {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}),
    "remote $ref": ("json", {"$ref": "https://example.com/schema.json"}),
    "unsatisfiable minimum > maximum": ("json", {"type": "integer", "minimum": 5, "maximum": 3}),
    "unsatisfiable allOf string, integer": ("json", {"allOf": [{"type": "string"}, {"type": "integer"}]}),
    "invalid regex (abc": ("regex", "(abc"),
    "Lark with an undefined rule": ("lark", "start: foo"),
}


def run_hostile(lib_name: str, vocab_path: Path, case: str) -> dict:
    v = Vocab(vocab_path)
    lib = LIBS[lib_name]()
    lib.prepare(v)
    lib.build(v)
    kind, source = HOSTILE[case]
    out: dict = {"library": lib_name, "model": v.model, "case": case}
    bitmask = np.full((1, (v.n + 31) // 32), -1, dtype=np.int32)
    t = time.perf_counter()
    try:
        m = lib.matcher(lib.compile(kind, source))
        lib.fill(m, bitmask, 0)
    except Exception as e:  # what the library says is the measurement
        out["error"] = f"{type(e).__name__}: {e}".replace("\n", " ")[:160]
    out["compile_s"] = time.perf_counter() - t
    if "error" not in out:
        # Up to 60 steps, always on the allowed token of fewest bytes (the slowest way through a bomb):
        # the masks' time.
        shortest_first = np.array(sorted((t for t in range(v.n) if v.tokens[t] and t not in v.eog), key=_length(v)))
        out["walk_s"], out["walk_steps"] = 0.0, 0
        for _ in range(60):
            allowed = np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")[: v.n].astype(bool)
            candidates = shortest_first[allowed[shortest_first]]
            if not len(candidates) or not lib.accept(m, int(candidates[0])):
                break
            t = time.perf_counter()
            lib.fill(m, bitmask, 0)
            out["walk_s"] += time.perf_counter() - t
            out["walk_steps"] += 1
        out["walk_error"] = " ".join(lib.error(m).replace("<non-verbose/>", "").split())
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# ------------------------------------------------------------------ numpy: a mask applied to logits


def apply_cost(n_vocab: int) -> dict:
    """Forbidden -> -inf on float32 rows from a packed bitmask, as engine/constraints.py does it.

    Masks as grammars make them: a few tokens allowed (JSON structure) or nearly all (inside a string).
    """
    rng = np.random.default_rng(0)
    out = {}
    for rows in (1, STREAMS):
        for name, density in (("few", 0.001), ("most", 0.99)):
            logits = rng.standard_normal((rows, n_vocab), dtype=np.float32)
            allowed = rng.random((rows, (n_vocab + 31) // 32 * 32)) < density
            bitmask = np.packbits(allowed, axis=1, bitorder="little").view(np.int32)
            times = []
            for _ in range(50):
                t = time.perf_counter()
                for row, bits in zip(logits, bitmask):
                    keep = np.unpackbits(bits.view(np.uint8), count=n_vocab, bitorder="little").view(bool)
                    np.copyto(row, -np.inf, where=~keep)
                times.append(time.perf_counter() - t)
            out[f"apply_ms_{rows}_{name}"] = 1000 * statistics.median(times)
    return out


# ------------------------------------------------------------------ orchestration and the tables


def child(*args: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout_s": timeout}
    if done.returncode:
        return {"crash": f"exit {done.returncode}: {done.stderr.strip()[-200:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(vocab_dir: Path, repeats: int, hostile_timeout: float, out_path: Path) -> None:
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f}", flush=True)
    results: dict = {"load_start": load, "runs": [], "hostile": [], "apply": {}}
    for model in MODELS:
        path = vocab_dir / f"{model}.json"
        for r in range(repeats):
            for lib in LIBRARIES if r % 2 == 0 else LIBRARIES[::-1]:  # alternate who goes first
                results["runs"].append(child("_run", lib, str(path), timeout=1800))
        results["apply"][model] = apply_cost(Vocab(path).n)
        for case in HOSTILE:
            for lib in LIBRARIES:
                res = child("_hostile", lib, str(path), case, timeout=hostile_timeout)
                results["hostile"].append({"library": lib, "model": model, "case": case, **res})
    results["load_end"] = os.getloadavg()[0]
    out_path.write_text(json.dumps(results, indent=1))
    print(tables(results))


def tables(results: dict) -> str:
    runs = [r for r in results["runs"] if "library" in r]
    lines = [f"load average {results['load_start']:.2f} at start, {results['load_end']:.2f} at end", ""]
    failed = [r for r in results["runs"] if "library" not in r]
    if failed:
        lines += [f"failed runs: {failed}", ""]
    for model in MODELS:
        lines += _model_table(model, [r for r in runs if r["model"] == model], results["apply"].get(model, {}))
    lines += ["**Hostile inputs** (compile + first mask; then up to 60 steps on the shortest allowed token)", ""]
    lines.append("| input | model | " + " | ".join(LIBRARIES) + " |")
    lines.append("|---|---|" + "---|" * len(LIBRARIES))
    for model in MODELS:
        for case in HOSTILE:
            cells = [_hostile_cell(h) for lib in LIBRARIES for h in results["hostile"] if _is(h, model, lib, case)]
            lines.append(f"| {_escape(case)} | {model} | " + " | ".join(map(_escape, cells)) + " |")
    return "\n".join(lines)


def _model_table(model: str, runs: list[dict], apply: dict) -> list[str]:
    def med(lib: str, *keys: str) -> float:
        values = []
        for r in runs:
            if r["library"] == lib:
                for k in keys:
                    r = r[k]
                values.append(r)
        return statistics.median(values) if values else float("nan")

    def row(label: str, keys: tuple, fmt: str = "{:.1f}", scale: float = 1.0) -> str:
        return f"| {label} | " + " | ".join(fmt.format(med(lib, *keys) * scale) for lib in LIBRARIES) + " |"

    n = len(runs) // len(LIBRARIES)
    lines = [f"**{model}** (medians of {n} runs each)", "", "| | " + " | ".join(LIBRARIES) + " |"]
    lines.append("|---|" + "---|" * len(LIBRARIES))
    lines.append(row("import (s)", ("import_s",), "{:.2f}"))
    lines.append(row("import RSS (MB)", ("import_mb",), "{:.0f}"))
    lines.append(row("tokenizer from token bytes (s)", ("tokenizer_s",), "{:.2f}"))
    lines.append(row("tokenizer RSS (MB)", ("tokenizer_mb",), "{:.0f}"))
    for kind in KINDS:
        lines.append(row(f"{kind}: compile + first mask (ms)", (kind, "compile_s"), scale=1000))
    for kind in KINDS:
        for walk_name, label in WALKS:
            cells = []
            for lib in LIBRARIES:
                cell = (
                    f"{med(lib, kind, walk_name, 'step_ms_p50'):.3f} / {med(lib, kind, walk_name, 'step_ms_p99'):.2f}"
                )
                notes = [
                    f"{med(lib, kind, walk_name, k):.0f} {k.replace('_', ' ')}" for k in ("rejected", "outside_mask")
                ]
                cells.append(cell + "".join(f" ({x})" for x in notes if not x.startswith("0 ")))
            lines.append(f"| {kind}: mask per step, {label} (ms p50 / p99) | " + " | ".join(cells) + " |")
    lines.append(row("schema20: check 3 drafted tokens (µs)", ("schema20", "drafts", "check_ms_p50"), scale=1000))
    lines.append(row("schema20: roll back 3 tokens (µs)", ("schema20", "drafts", "rollback_ms_p50"), scale=1000))
    lines.append(row("schema20: wrong draft verdicts", ("schema20", "drafts", "wrong"), "{:.0f}"))
    lines.append(row("RSS at the end (MB)", ("rss_mb",), "{:.0f}"))
    cost = " / ".join(f"{apply.get(f'apply_ms_{rows}_{name}', 0):.3f}" for rows in (1, 16) for name in ("few", "most"))
    return lines + [
        "",
        f"numpy, the mask applied to logits (unpackbits + copyto, ms; 1 row with few / most tokens allowed, "
        f"then 16 rows): {cost}",
        "",
    ]


WALKS = (
    ("cold_1", "1 stream, just compiled"),
    ("warm_1", "1 stream"),
    ("batch_16", "16 streams, batch call"),
    ("serial_16", "16 streams, one by one"),
)


def _is(h: dict, model: str, lib: str, case: str) -> bool:
    return h["model"] == model and h["library"] == lib and h["case"] == case


def _escape(cell: str) -> str:
    """Markdown table cells: no pipes, no C++ source locations (xgrammar's messages carry them)."""
    return re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", cell).replace("|", "\\|")


def _hostile_cell(h: dict) -> str:
    if "timeout_s" in h:
        return f"**no answer in {h['timeout_s']:.0f} s** (killed)"
    if "crash" in h:
        return f"**crashed** ({h['crash'][:80]})"
    mb = f", {h['peak_rss_mb']:.0f} MB"
    if "error" in h:
        return f"error in {h['compile_s'] * 1000:.0f} ms{mb}: {h['error'][:90]}"
    walk = f"compiled in {h['compile_s'] * 1000:.0f} ms{mb}; {h['walk_steps']} masks in {h['walk_s'] * 1000:.0f} ms"
    return walk + (f", then error: {h['walk_error'][:60]}" if h.get("walk_error") else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("vocab", help="dump each model's vocabulary and the documents in its tokens")
    p.add_argument("--model", action="append", help=f"default: {', '.join(MODELS)}")
    p.add_argument("--vocab-dir", type=Path, default=Path("/tmp/pocketlm-structured"))
    p = sub.add_parser("measure", help="run every measurement (the scratch venv with both libraries)")
    p.add_argument("--vocab-dir", type=Path, default=Path("/tmp/pocketlm-structured"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hostile-timeout", type=float, default=120.0)
    p.add_argument("--out", type=Path, default=HERE / "structured_results.json")
    p = sub.add_parser("tables", help="print the tables of a results file")
    p.add_argument("results", type=Path, nargs="?", default=HERE / "structured_results.json")
    p = sub.add_parser("_run")
    p.add_argument("library", choices=LIBRARIES)
    p.add_argument("vocab", type=Path)
    p = sub.add_parser("_hostile")
    p.add_argument("library", choices=LIBRARIES)
    p.add_argument("vocab", type=Path)
    p.add_argument("case", choices=list(HOSTILE))
    a = ap.parse_args()
    if a.command == "vocab":
        for model in a.model or MODELS:
            dump_vocabulary(model, a.vocab_dir / f"{model}.json")
    elif a.command == "measure":
        measure(a.vocab_dir, a.repeats, a.hostile_timeout, a.out)
    elif a.command == "tables":
        print(tables(json.loads(a.results.read_text())))
    elif a.command == "_run":
        print(json.dumps(run_one(a.library, a.vocab)))
    else:
        print(json.dumps(run_hostile(a.library, a.vocab, a.case)))


if __name__ == "__main__":
    main()
