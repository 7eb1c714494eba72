"""Model names resolve to files, or fail with a message that says how to fix it."""

import shutil

import pytest

from pocketlm.backends.llamacpp import LlamaCppBackend
from pocketlm.errors import ModelLoadError, ModelNotFound
from pocketlm.models import EMBEDDED, resolve
from pocketlm.models.gguf_info import read_gguf_info


def test_default_is_the_embedded_smollm2():
    ref = resolve(None)
    assert ref.name == "smollm2-135m-instruct" and ref.format == "gguf"
    assert ref.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and ref.path.is_file()
    assert resolve("smollm2-135m-instruct") == ref


def test_gguf_header_tells_size_quantization_and_context():
    info = read_gguf_info(resolve(None).path)
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert info.n_ctx_train == 8192 and info.n_vocab == 49152
    assert 130e6 < info.n_params < 140e6
    assert "<|im_start|>" in info.chat_template


def test_local_gguf_file_and_hf_directory(tmp_path):
    gguf = tmp_path / "mine.gguf"
    shutil.copy(resolve(None).path, gguf)
    assert resolve(str(gguf)).name == "mine" and resolve(str(gguf)).source == "local file"
    hf = tmp_path / "hfmodel"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert resolve(str(hf)).format == "hf"


@pytest.mark.parametrize(
    "name, words",
    [
        ("no-such-model", "huggingface-cli download"),
        ("someorg/some-model", "could not be downloaded"),
        ("./missing.gguf", "no such file"),
    ],
)
def test_unknown_models_say_what_to_do(name, words):
    with pytest.raises(ModelNotFound) as err:
        resolve(name)
    assert err.value.param == "model" and words in err.value.message


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFound, match="config.json"):
        resolve(str(tmp_path))


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        LlamaCppBackend(bad, slots=1, n_ctx=256)


def test_truncated_gguf_is_refused(tmp_path):
    bad = tmp_path / "truncated.gguf"
    with open(resolve(None).path, "rb") as src:
        bad.write_bytes(src.read(5_000_000))
    with pytest.raises(ModelLoadError) as err:
        LlamaCppBackend(bad, slots=1, n_ctx=256)
    assert "re-download" in err.value.message


def test_every_alias_has_a_package_and_description():
    for alias, model in EMBEDDED.items():
        assert model.package and model.description and alias == model.alias


def test_gemma_alias_assembles_its_chunks_and_generates(tmp_path, monkeypatch):
    import asyncio

    from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    ref = resolve("gemma3-270m")
    assert ref.path.parent == tmp_path / "models" and ref.path.is_file()
    assert not list(ref.path.parent.glob("*.partial"))
    info = read_gguf_info(ref.path)
    assert info.architecture == "gemma3" and info.quantization == "Q4_K_M"
    engine = load_engine(ModelOptions("gemma3-270m"), EngineConfig(slots=1, n_ctx=256))
    try:
        result = asyncio.run(
            engine.complete("The capital of France is", SamplingParams(temperature=0, max_new_tokens=8))
        )
    finally:
        engine.stop(0)
    assert "France" in result.samples[0].text or "Paris" in result.samples[0].text
