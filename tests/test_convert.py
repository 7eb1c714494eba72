"""HF -> GGUF conversion: llama.cpp must compute what transformers computes, token for token.

Tiny random models with the real tokenizers (GPT-2's, SmolLM2's); llama.cpp is
driven through llama-cpp-python directly with an f32 KV cache, so the only
differences left are the arithmetic ones the tests measure.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")

from pocketlm import datasets  # noqa: E402
from pocketlm.backends.torch_backend import token_pieces  # noqa: E402
from pocketlm.errors import InvalidParameter, ModelLoadError  # noqa: E402
from pocketlm.models import conversions, gguf_writer  # noqa: E402
from pocketlm.models.conversions import gguf_for  # noqa: E402
from pocketlm.models.gguf_to_hf import gguf_to_hf  # noqa: E402
from pocketlm.models.gguf_writer import hf_to_gguf  # noqa: E402
from pocketlm.settings import cores  # noqa: E402
from tiny_models import build_tiny_gpt_neo, tiny_model_dir  # noqa: E402

KINDS = ["gpt2", "llama"]
GGML_F32 = 0

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "To be, or not to be, that is the question:",
    "Olá! Como você está? A programação é divertida.",
    "São Paulo, 22 de novembro de 2026 — ação, coração.",
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; i++) { sum += x[i]; }",
    "1234567890 3.14159 2**10 = 1024",
    "Emoji test 😀🎉 and 🇧🇷 flags",
    "   leading spaces and\ttabs\n\nnewlines",
    "ROMEO:\nBut, soft! what light through yonder window breaks?",
    "<|endoftext|>after a special token",
    'JSON: {"name": "pocketlm", "tokens": [1, 2, 3]}',
    "The capital of France is",
    "Once upon a time, in a land far away,",
    "Machine learning models predict the next token.",
    "Café, pão de queijo e açaí.",
    "print('hello world')  # a comment",
    "A\nB\nC\nD\nE",
    "It's, they're, we'll, I'd — contractions.",
    "Übermäßig naïve façade: résumé",
]


@pytest.fixture(scope="module")
def f32_gguf(tmp_path_factory):
    out = {}
    for kind in KINDS:
        out[kind] = hf_to_gguf(
            tiny_model_dir(kind), tmp_path_factory.mktemp(kind) / f"{kind}.f32.gguf", "f32", progress=False
        )
    return out


@pytest.fixture(scope="module")
def spm_llama(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny Llama with a SentencePiece-style vocabulary, and its f32 GGUF."""
    src = tiny_model_dir("spm-llama")
    return src, hf_to_gguf(src, tmp_path_factory.mktemp("spm") / "spm.gguf", "f32", progress=False)


def llama(path: Path, **kw):
    return llama_cpp.Llama(str(path), n_ctx=256, n_threads=cores(), verbose=False, **kw)


def hf_model(kind: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_dir(kind)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """Norm-wise relative error of a whole logits matrix."""
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def ggml_gelu(model) -> None:
    """Make a transformers GPT-2 compute GELU as ggml's CPU backend does: through an fp16 table.

    ggml evaluates GELU by looking up the fp16-rounded input in a table of
    fp16 values. That rounding alone puts ~2e-4 between the two libraries'
    GPT-2 logits; with it emulated, what is left is float summation order.
    """

    class Fp16Gelu(torch.nn.Module):
        def __init__(self, act):
            super().__init__()
            self.act = act

        def forward(self, x):
            return self.act(x.half().float()).half().float()

    for block in model.transformer.h:
        block.mlp.act = Fp16Gelu(block.mlp.act)


@pytest.mark.parametrize("kind", KINDS)
def test_f32_logits_match_transformers_on_20_prompts(kind, f32_gguf):
    model, tokenizer = hf_model(kind)
    emulated, _ = hf_model(kind)
    if kind == "gpt2":
        ggml_gelu(emulated)
    lm = llama(f32_gguf[kind], logits_all=True, type_k=GGML_F32, type_v=GGML_F32)
    plain = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        lm.reset()
        lm.eval(ids)
        got = np.array(lm.scores[: len(ids)])
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].numpy()
            ref_emulated = emulated(torch.tensor([ids])).logits[0].numpy()
        plain.append(rel_err(got, ref))
        assert (got.argmax(-1) == ref.argmax(-1)).all(), prompt
        assert rel_err(got, ref_emulated) < 1e-4, prompt
    if kind == "gpt2":
        # against stock transformers GPT-2 the fp16 GELU table shows (measured ~2e-4)
        assert max(plain) < 1e-3


def torch_greedy(backend, prompts: list[list[int]], n: int) -> list[list[int]]:
    """Greedy continuations of all prompts, decoded together on the torch backend (fp32 transformers)."""
    from pocketlm.backends.base import Chunk

    logits = backend.forward([Chunk(i, ids, 0, 1) for i, ids in enumerate(prompts)])
    outs = [[int(row.argmax())] for row in logits]
    for _ in range(n - 1):
        logits = backend.forward(
            [Chunk(i, [o[-1]], len(ids) + len(o) - 1, 1) for i, (ids, o) in enumerate(zip(prompts, outs))]
        )
        for o, row in zip(outs, logits):
            o.append(int(row.argmax()))
    return outs


def llama_greedy(lm, ids: list[int], n: int) -> list[int]:
    lm.reset()
    out = []
    for token in lm.generate(ids, temp=0.0, top_k=1):
        out.append(token)
        if len(out) == n:
            return out
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_f32_greedy_tokens_identical(kind, f32_gguf):
    from pocketlm.backends.torch_backend import TorchBackend

    backend = TorchBackend(tiny_model_dir(kind), slots=10, n_ctx=1024)
    prompts = [backend.tokenize(p) for p in PROMPTS[:10]]
    expected = torch_greedy(backend, prompts, 12)
    lm = llama(f32_gguf[kind], type_k=GGML_F32, type_v=GGML_F32)
    for prompt, ids, want in zip(PROMPTS, prompts, expected):
        assert llama_greedy(lm, ids, 12) == want, prompt


def parity_strings() -> list[str]:
    """1,000+ strings: English, Portuguese with accents, emoji, code, whitespace runs, special tokens."""
    rng = random.Random(0)
    lines = [ln for ln in datasets.resolve("shakespeare:valid").read_text(encoding="utf-8").splitlines() if ln.strip()]
    english = lines[:400]
    portuguese = [
        "Não há nada mais difícil do que começar.",
        "A ação e a reação são iguais e opostas.",
        "Ele pôs o pé na água gelada.",
        "Você já comeu pão de queijo com café?",
        "Coração, razão, emoção.",
        "Às vezes, à noite, ouço o mar.",
        "O avô e a avó moram em Florianópolis.",
        "É proibido fumar aqui.",
        "Ñandú, pingüim, über — letras raras.",
        "Três pássaros voaram sobre a árvore.",
        "Informação, educação e saúde para todos.",
        "O útero, o âmago, o êxito, o índio.",
        "Amanhã vou à praia às 9h30.",
        "Quanto custa? R$ 12,50.",
        "Programação em Python é ótima!",
    ]
    emoji = ["😀", "🎉🎉", "👩‍👩‍👧‍👦", "🇧🇷🇵🇹", "👍🏽", "❤️", "🤖 robô", "ok 👌 ok", "🙂🙃😉", "∑∫√π≈≠"]
    code = [
        "def f(x):\n    return x * 2\n",
        "if (a && b) { return; }",
        "SELECT * FROM users WHERE id = 1;",
        "x = [i**2 for i in range(10)]",
        '<div class="a">hi</div>',
        "#include <stdio.h>\nint main() {}",
        "let s = `template ${x}`;",
        'fn main() { println!("hi"); }',
        "a += 1; b -= 2; c *= 3",
        "    indented\n        more\n",
        "0x1F 0b1010 1e-5 3.14",
        "path/to/file.py:42: error",
    ]
    spaces = [
        "a  b",
        "a   b    c",
        "\t\tx",
        "\n\n\n",
        "  leading",
        "trailing   ",
        "mixed \t \n end",
        "line\r\nbreak",
        " ",
        "  ",
        "\n",
        "a\n\n\nb",
        "x" + " " * 17 + "y",
        "tab\tsep\tvalues",
    ]
    specials = [
        "<|endoftext|>",
        "Hello<|endoftext|>World",
        "<|im_start|>user\nOi!<|im_end|>\n",
        "<|im_start|>assistant\n",
        "text <|im_end|> more",
        "<|endoftext|><|endoftext|>",
    ]
    numbers = ["2026", "12345678", "3.14159", "1,000,000", "22/11/2026", "v1.2.3", "100%", "-42"]
    pieces = english + portuguese + emoji + code + spaces + specials + numbers
    strings = list(pieces)
    while len(strings) < 1100:  # mixtures put every kind next to every other kind
        strings.append(rng.choice(["", " ", "\n", "  "]).join(rng.sample(pieces, rng.randint(2, 4))))
    return strings


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_parity_on_1000_strings(kind, f32_gguf):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(kind))
    vocab = llama(f32_gguf[kind], vocab_only=True)
    pieces = token_pieces(tokenizer, len(tokenizer))
    strings = parity_strings()
    assert len(strings) >= 1000
    mismatches = []
    for text in strings:
        ours = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        if ours != theirs:
            mismatches.append(text)
            continue
        assert vocab.detokenize(ours, special=True) == text.encode("utf-8"), text
        assert b"".join(pieces[t] for t in theirs) == text.encode("utf-8"), text
        assert tokenizer.decode(theirs) == text, text
    assert not mismatches, f"{len(mismatches)} strings tokenize differently, e.g. {mismatches[:3]!r}"


def test_quantized_types_load_and_stay_close(tmp_path):
    """f16 / q8_0 / q4_0: the tensor types asked for, and logits that degrade in that order."""
    import gguf

    src = tiny_model_dir("llama")
    model, tokenizer = hf_model("llama")
    ids = tokenizer(PROMPTS[1])["input_ids"]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    errors = {}
    for qtype, ggml in (("f16", "F16"), ("q8_0", "Q8_0"), ("q4_0", "Q4_0")):
        out = hf_to_gguf(src, tmp_path / f"m.{qtype}.gguf", qtype, progress=False)
        types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        assert types["blk.0.attn_q.weight"] == ggml and types["blk.0.attn_norm.weight"] == "F32"
        lm = llama(out, logits_all=True)
        lm.eval(ids)
        errors[qtype] = rel_err(np.array(lm.scores[: len(ids)]), ref)
    assert errors["f16"] < errors["q8_0"] < errors["q4_0"] < 0.2, errors


def test_kv_type_q8_0_needs_heads_a_multiple_of_32_wide(f32_gguf):
    """The tiny llama's heads are 16 wide: auto keeps f16, an explicit q8_0 is refused naming kv_type."""
    from pocketlm.backends.llamacpp import LlamaCppBackend
    from pocketlm.models.options import ModelOptions

    LlamaCppBackend(f32_gguf["llama"], slots=4, n_ctx=64).close()
    for kv_type in ("q8_0", "q8_0/f16"):
        with pytest.raises(InvalidParameter, match="kv_type.*16.*--kv-type f16"):
            LlamaCppBackend(f32_gguf["llama"], slots=4, n_ctx=64, kv_type=kv_type)
    with pytest.raises(InvalidParameter, match="kv_type.*torch"):
        ModelOptions(kv_type="f16", backend="torch")


def test_unknown_type_is_rejected(tmp_path):
    with pytest.raises(InvalidParameter, match="q8_0"):
        hf_to_gguf(tiny_model_dir("gpt2"), tmp_path / "x.gguf", "q3_k")


def test_failed_conversion_leaves_no_file(tmp_path, monkeypatch):
    calls = []

    def fail_on_third_tensor(arch, name, data, config):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        return data

    monkeypatch.setattr(gguf_writer, "_to_gguf_layout", fail_on_third_tensor)
    dst = tmp_path / "out.gguf"
    with pytest.raises(OSError):
        hf_to_gguf(tiny_model_dir("gpt2"), dst, "f32", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_gguf_to_hf_refuses_a_non_empty_destination(tmp_path, f32_gguf):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidParameter, match="not empty"):
        gguf_to_hf(f32_gguf["gpt2"], tmp_path / "hf")


def test_gguf_for_caches_by_content(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    src = shutil.copytree(tiny_model_dir("gpt2"), tmp_path / "model")
    first = gguf_for(src, quantization="f32", progress=False)
    assert first.is_file() and first.parent == tmp_path / "cache" / "converted"
    stamp = first.stat().st_mtime_ns
    assert gguf_for(src, quantization="f32", progress=False) == first and first.stat().st_mtime_ns == stamp
    config = json.loads((src / "config.json").read_text())
    config["layer_norm_epsilon"] = 1e-6  # an edited model must not reuse the old conversion
    (src / "config.json").write_text(json.dumps(config))
    assert gguf_for(src, quantization="f32", progress=False) != first
    assert [s for _, s in conversions.converted_models()] == [str(src.resolve())]  # the old one can never be used again
    assert not first.exists()


def test_unsupported_architecture_names_it_and_suggests_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    src = build_tiny_gpt_neo(tmp_path / "neo")
    assert gguf_for(src) is None  # auto: fall back to torch
    with pytest.raises(ModelLoadError, match=r"GPTNeoForCausalLM.*--backend torch"):
        gguf_for(src, required=True)
    with pytest.raises(ModelLoadError, match="--backend torch"):
        hf_to_gguf(src, tmp_path / "neo.gguf")


SMOL_PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "def fibonacci(n):",
    "The best way to learn is",
    "Water boils at",
    "In 1492, Columbus",
    "My favourite food is",
    "São Paulo é a maior cidade",
    "Python is a programming language that",
    "The three primary colors are",
]


@pytest.fixture(scope="module")
def smollm2_round_trip(smollm2_hf, tmp_path_factory):
    """The embedded SmolLM2 (Q4_1 GGUF) -> HF directory (fp32) -> GGUF f16."""
    return smollm2_hf, hf_to_gguf(
        smollm2_hf, tmp_path_factory.mktemp("smollm2") / "smollm2.f16.gguf", "f16", progress=False
    )


@pytest.mark.slow
def test_smollm2_gguf_hf_gguf_greedy_tokens_identical(smollm2_round_trip):
    """torch fp32 on the HF directory and llama.cpp on the f16 GGUF: same 20 greedy tokens on 10 prompts."""
    from pocketlm.backends.torch_backend import TorchBackend

    hf, f16 = smollm2_round_trip
    config = json.loads((hf / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    backend = TorchBackend(hf, slots=len(SMOL_PROMPTS), n_ctx=1024)
    assert "<|im_start|>" in backend.info.chat_template
    prompts = [backend.tokenize(p) for p in SMOL_PROMPTS]
    torch_tokens = torch_greedy(backend, prompts, 20)  # all ten decode together: the batched path, real model
    lm = llama(f16)
    for prompt, ids, expected in zip(SMOL_PROMPTS, prompts, torch_tokens):
        assert lm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
        got = llama_greedy(lm, ids, 20)
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
        assert got == expected, f"{prompt!r}: first difference at token {first}"
    assert "Paris" in backend.detokenize(torch_tokens[0])


def test_sentencepiece_style_tokenizer_parity(spm_llama):
    """TinyLlama-style tokenizers (SentencePiece BPE, byte fallback) convert to llama.cpp's "llama" vocab.

    One known difference is not the conversion's: for text that starts with a
    space, transformers' Metaspace adds no "▁" prefix (the text already has
    one) while llama.cpp always adds it, like SentencePiece's dummy prefix.
    """
    import gguf
    from transformers import AutoTokenizer

    src, out = spm_llama
    assert gguf.GGUFReader(out).fields["tokenizer.ggml.model"].contents() == "llama"
    tokenizer = AutoTokenizer.from_pretrained(src)
    vocab = llama(out, vocab_only=True)
    checked = 0
    for text in parity_strings():
        ours = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        if text[:1].isspace():
            assert ours[1:] == theirs or ours == theirs, repr(text)  # the extra leading "▁" at most
            continue
        assert ours == theirs, repr(text)
        assert tokenizer.decode(theirs) == text
        checked += 1
    assert checked > 900


def test_requantized_embedded_model_is_cached_and_still_answers(tmp_path, monkeypatch):
    from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
    from pocketlm.models import resolve
    from pocketlm.models.conversions import requantized
    from pocketlm.models.gguf_info import read_gguf_info

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    src = resolve("smollm2-135m-instruct").path
    out = requantized(src, "q8_0", progress=False)
    assert out.parent == tmp_path / "converted" and read_gguf_info(out).quantization == "Q8_0"
    stamp = out.stat().st_mtime_ns
    assert requantized(src, "q8_0", progress=False) == out and out.stat().st_mtime_ns == stamp
    assert requantized(out, "q8_0", progress=False) == out  # already that type: used as it is
    assert not list((tmp_path / "converted").glob(".*partial"))

    # the embedded model runs as q8_0 without being asked; its file, passed as a path, runs as it is
    import asyncio

    for model, expected in (("smollm2-135m-instruct", "Q8_0"), (str(src), "Q4_1")):
        engine = load_engine(ModelOptions(model), EngineConfig(slots=1, n_ctx=256))
        try:
            done = asyncio.run(
                engine.complete("The capital of France is", SamplingParams(max_new_tokens=8, temperature=0))
            )
            assert "Paris" in done.samples[0].text and engine.info.quantization == expected
        finally:
            engine.stop(0)


def test_a_changed_source_replaces_its_old_conversions_only(tmp_path, monkeypatch, spm_llama):
    """A reinstalled or edited model gets new cache keys; what was made from its old version goes."""
    import os
    import shutil

    from pocketlm.models.conversions import hf_dir_for, requantized

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    src, other = tmp_path / "model.gguf", tmp_path / "other.gguf"
    shutil.copy(spm_llama[1], src)
    shutil.copy(spm_llama[1], other)
    old_q8, old_f16, old_hf = (
        requantized(src, "q8_0", progress=False),
        requantized(src, "f16", progress=False),
        hf_dir_for(src),
    )
    kept = requantized(other, "q8_0", progress=False)
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))  # as a reinstall would

    new_q8, new_hf = requantized(src, "q8_0", progress=False), hf_dir_for(src)
    assert new_q8 != old_q8 and new_hf != old_hf
    left = {p.name for p in (tmp_path / "cache" / "converted").iterdir() if not p.name.endswith(".lock")}
    for gone in (old_q8, old_hf):
        assert not {n for n in left if n.startswith(gone.name.removesuffix(".gguf"))}, left
    for entry in (new_q8, new_hf, old_f16, kept):  # another type, another source: still there, intact
        assert entry.exists() and entry.name + ".integrity.json" in left


def test_the_conversions_of_a_gguf_file_that_is_gone_go_at_the_next_conversion(tmp_path, monkeypatch, spm_llama):
    """A deleted virtual environment leaves its package's conversions behind: the next conversion removes them,
    and keeps those of a model directory, which are keyed by its content, not by where it lies."""
    import shutil

    from pocketlm.models.conversions import gguf_for, hf_dir_for, requantized

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    venv, model_dir = tmp_path / "old-venv", tmp_path / "model-dir"
    venv.mkdir()
    gone, other = venv / "model.gguf", tmp_path / "other.gguf"
    shutil.copy(spm_llama[1], gone)
    shutil.copy(spm_llama[1], other)
    shutil.copytree(spm_llama[0], model_dir)
    orphans = [requantized(gone, "q8_0", progress=False), hf_dir_for(gone)]
    from_dir = gguf_for(model_dir, required=True, progress=False)
    shutil.rmtree(venv)
    shutil.rmtree(model_dir)

    kept = requantized(other, "q8_0", progress=False)
    left = {p.name for p in (tmp_path / "cache" / "converted").iterdir()}
    for entry in orphans:
        assert not {n for n in left if n.startswith(entry.name.removesuffix(".gguf"))}, left
    for entry in (kept, from_dir):
        assert entry.exists() and entry.name + ".integrity.json" in left


def test_requantize_rejects_unknown_type_and_damaged_file(tmp_path):
    from pocketlm.models.gguf_writer import requantize_gguf

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(InvalidParameter, match="q4_0"):
        requantize_gguf(bad, tmp_path / "out.gguf", "q3_x")
    with pytest.raises(ModelLoadError, match="bad.gguf"):
        requantize_gguf(bad, tmp_path / "out.gguf", "q8_0")
    assert not (tmp_path / "out.gguf").exists()
