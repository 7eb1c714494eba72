"""The torch backend computes what transformers computes, whatever is batched with it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pocketlm.backends.base import Chunk  # noqa: E402
from pocketlm.backends.torch_backend import TorchBackend  # noqa: E402
from tiny_models import build_tiny_gpt_neo, tiny_model_dir  # noqa: E402

PROMPTS = ["Hello world, this is", "Olá, tudo bem? Eu", "def f(x):\n    return", "1234 5678 and", "A", "The end"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def backend(request):
    be = TorchBackend(tiny_model_dir(request.param), slots=8, n_ctx=1024)
    yield be
    be.close()


def greedy_reference(model, ids: list[int], n: int) -> list[int]:
    """Greedy continuation recomputing the whole sequence each step: no cache involved."""
    ids = list(ids)
    for _ in range(n):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[-n:]


def decode_together(be, prompts: list[list[int]], n: int, slots=None) -> list[list[int]]:
    """Prefill every prompt in one forward call, then decode all of them as one batch per step."""
    slots = slots or list(range(len(prompts)))
    logits = be.forward([Chunk(s, ids, 0, 1) for s, ids in zip(slots, prompts)])
    outs = [[int(row.argmax())] for row in logits]
    for _ in range(n - 1):
        logits = be.forward([Chunk(s, [o[-1]], len(ids) + len(o) - 1, 1) for s, ids, o in zip(slots, prompts, outs)])
        for o, row in zip(outs, logits):
            o.append(int(row.argmax()))
    return outs


def test_batched_decoding_equals_uncached_reference(backend):
    prompts = [backend.tokenize(p) for p in PROMPTS]
    together = decode_together(backend, prompts, 6, slots=[5, 0, 3, 1, 7, 2])
    assert together == [greedy_reference(backend.model, ids, 6) for ids in prompts]
    for s in range(8):
        backend.clear_slot(s)


def test_scoring_returns_every_position_like_transformers(backend):
    ids = backend.tokenize("To be, or not to be, that is the question.")
    got = backend.forward([Chunk(4, ids, 0, len(ids))])
    backend.clear_slot(4)
    with torch.no_grad():
        ref = backend.model(torch.tensor([ids])).logits[0].numpy()
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_chunked_prefill_mixed_with_decoding_keeps_chunk_order(backend):
    a, b = backend.tokenize("One two three four five six seven"), backend.tokenize("Eight nine")
    first = backend.forward([Chunk(0, a[:3], 0, 0), Chunk(1, b, 0, 1)])
    assert first.shape == (1, backend.n_vocab)  # only b asked for a row
    nxt = int(first[0].argmax())
    rows = backend.forward([Chunk(1, [nxt], len(b), 1), Chunk(0, a[3:], 3, 2)])
    assert rows.shape == (3, backend.n_vocab)
    with torch.no_grad():
        ref_a = backend.model(torch.tensor([a])).logits[0, -2:].numpy()
        ref_b = backend.model(torch.tensor([b + [nxt]])).logits[0, -1].numpy()
    np.testing.assert_allclose(rows[0], ref_b, atol=1e-4)
    np.testing.assert_allclose(rows[1:], ref_a, atol=1e-4)
    backend.clear_slot(0)
    backend.clear_slot(1)


def test_copy_slot_shares_the_prefix_and_clear_frees_the_slot(backend):
    ids = backend.tokenize(PROMPTS[0])
    backend.forward([Chunk(2, ids, 0, 1)])
    backend.copy_slot(2, 6)
    # both continue from the same cached prompt with different tokens
    rows = backend.forward([Chunk(2, [11], len(ids), 1), Chunk(6, [42], len(ids), 1)])
    with torch.no_grad():
        ref = backend.model(torch.tensor([ids + [11], ids + [42]])).logits[:, -1].numpy()
    np.testing.assert_allclose(rows, ref, atol=1e-4)
    backend.clear_slot(6)  # a new, shorter prompt in the freed slot sees nothing of the old one
    short = backend.tokenize("A")
    row = backend.forward([Chunk(6, short, 0, 1)])
    with torch.no_grad():
        ref = backend.model(torch.tensor([short])).logits[0, -1].numpy()
    np.testing.assert_allclose(row[0], ref, atol=1e-4)
    backend.clear_slot(2)
    backend.clear_slot(6)


def test_token_bytes_are_raw_bytes_and_round_trip(backend):
    text = "Olá, ação! 😀 naïve\tcode()\n  spaces <|endoftext|>"
    ids = backend.tokenize(text)
    assert b"".join(backend.token_bytes(t) for t in ids) == text.encode("utf-8")
    assert backend.detokenize(ids) == text
    # an emoji is 4 bytes that byte-level BPE may split: single pieces need not be valid UTF-8
    emoji_ids = backend.tokenize("😀")
    assert b"".join(backend.token_bytes(t) for t in emoji_ids) == "😀".encode()


def test_special_tokens_parse_only_with_add_special(backend):
    special = "<|endoftext|>"
    assert len(backend.tokenize(special, add_special=True)) == 1
    assert len(backend.tokenize(special, add_special=False)) > 1


def test_model_info(backend):
    info = backend.info
    assert info.quantization == "F32" and info.n_vocab == backend.n_vocab
    assert info.n_ctx_train in (256, 512) and info.n_params > 1_000_000
    if info.architecture == "LlamaForCausalLM":
        assert "<|im_start|>" in info.chat_template and backend.tokenize("<|im_end|>")[0] in backend.eog_ids
    else:
        assert info.architecture == "GPT2LMHeadModel" and info.chat_template is None
        assert backend.tokenize("<|endoftext|>") == [50256] and 50256 in backend.eog_ids


def test_unbatched_architectures_use_one_cache_per_slot(tmp_path):
    """GPT-Neo (local attention layers) runs through transformers' own DynamicCache, one call per chunk."""
    be = TorchBackend(build_tiny_gpt_neo(tmp_path / "neo"), slots=4, n_ctx=256)
    assert not be.batched and be.info.architecture == "GPTNeoForCausalLM"
    prompts = [be.tokenize(p) for p in PROMPTS[:3]]
    assert decode_together(be, prompts, 5) == [greedy_reference(be.model, ids, 5) for ids in prompts]
    be.copy_slot(0, 3)
    be.clear_slot(0)
    assert 0 not in be.caches and 3 in be.caches


def test_engine_greedy_text_same_on_torch_and_llama_cpp(tmp_path, monkeypatch):
    """Through the engine: the torch backend and llama.cpp (auto-converted f32 GGUF) give the same text."""
    from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    model = str(tiny_model_dir("llama"))
    params = SamplingParams(temperature=0, max_new_tokens=12, ignore_eos=True)
    texts = {}
    for name in ("torch", "llama.cpp"):
        engine = load_engine(ModelOptions(model, backend=name, quantization="f32"), EngineConfig(slots=4, n_ctx=1024))
        try:
            result = asyncio.run(engine.complete("Olá! The capital of France is", params))
            texts[name] = result.samples[0].token_ids
        finally:
            engine.stop(0)
    assert texts["torch"] == texts["llama.cpp"]
    assert list((tmp_path / "converted").glob("*.gguf"))  # llama.cpp ran the cached conversion


def test_same_http_request_same_greedy_text_on_both_backends(tmp_path):
    """`pocketlm serve --model DIR --backend torch|llama.cpp`: one OpenAI request, one answer."""
    import httpx

    from api_server import Server

    env = {"POCKETLM_CACHE": str(tmp_path), "POCKETLM_QUANTIZATION": "f32"}
    body = {"prompt": "Olá! Once upon a time", "max_tokens": 12, "temperature": 0}
    texts = {}
    for name in ("torch", "llama.cpp"):
        server = Server("--model", str(tiny_model_dir("llama")), "--backend", name, "--slots", "2", env=env)
        try:
            response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
            assert response.status_code == 200, response.text
            texts[name] = response.json()["choices"][0]["text"]
        finally:
            server.stop()
    assert texts["torch"] == texts["llama.cpp"] and texts["torch"]
