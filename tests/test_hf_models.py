"""Hugging Face directories users bring: each mistake gets an error that says how to fix it."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from pocketlm.errors import ModelLoadError, ModelNotFound  # noqa: E402
from pocketlm.models.hf import inspect_hf_dir  # noqa: E402
from pocketlm.models.options import ModelOptions  # noqa: E402
from tiny_models import build_tiny_gpt_neo, tiny_model_dir  # noqa: E402


@pytest.fixture
def gpt2_copy(tmp_path):
    return shutil.copytree(tiny_model_dir("gpt2"), tmp_path / "gpt2")


def test_a_good_directory_passes(gpt2_copy):
    hf = inspect_hf_dir(gpt2_copy)
    assert hf.architecture == "GPT2LMHeadModel" and not hf.pickle
    assert [w.name for w in hf.weights] == ["model.safetensors"]


def test_directory_without_tokenizer_files(gpt2_copy):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        (gpt2_copy / name).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match=r"no tokenizer files.*save_pretrained"):
        inspect_hf_dir(gpt2_copy)


def pickle_only(path):
    """Replace the safetensors weights by a pytorch_model.bin pickle of the same tensors."""
    from safetensors.torch import load_file

    weights = load_file(path / "model.safetensors")
    (path / "model.safetensors").unlink()
    torch.save(weights, path / "pytorch_model.bin")
    return path


def test_pickle_checkpoint_refused_without_opt_in(gpt2_copy, monkeypatch):
    monkeypatch.delenv("POCKETLM_ALLOW_PICKLE", raising=False)
    pickle_only(gpt2_copy)
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin.*runs any code.*POCKETLM_ALLOW_PICKLE=1"):
        inspect_hf_dir(gpt2_copy)


def test_pickle_checkpoint_loads_with_opt_in(gpt2_copy, tmp_path):
    from pocketlm.backends.base import Chunk
    from pocketlm.backends.torch_backend import TorchBackend

    ids = [464, 2068, 7586]
    reference = TorchBackend(gpt2_copy, slots=1, n_ctx=64).forward([Chunk(0, ids, 0, 1)])
    pickle_only(gpt2_copy)
    backend = TorchBackend(gpt2_copy, slots=1, n_ctx=64, allow_pickle=True)
    # same weights; only memory layout differs, which can move the last float bit
    assert abs(backend.forward([Chunk(0, ids, 0, 1)]) - reference).max() < 1e-5


def test_command_line_opt_in_for_pickle(gpt2_copy, monkeypatch):
    from pocketlm.cli import main

    monkeypatch.delenv("POCKETLM_ALLOW_PICKLE", raising=False)
    pickle_only(gpt2_copy)
    args = [
        "generate",
        "Hello",
        "--model",
        str(gpt2_copy),
        "--backend",
        "torch",
        "--temperature",
        "0",
        "--max-new-tokens",
        "4",
        "--ignore-eos",
        "--json",
    ]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "--allow-pickle" in refused.output  # one clear line, no traceback
    allowed = CliRunner().invoke(main, [*args, "--allow-pickle"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output[allowed.output.index("{") :])["usage"]["completion_tokens"] == 4


def test_truncated_safetensors(gpt2_copy):
    weights = gpt2_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # an interrupted download
    with pytest.raises(ModelLoadError, match=r"truncated.*download or save it again"):
        inspect_hf_dir(gpt2_copy)


def test_garbage_safetensors(gpt2_copy):
    (gpt2_copy / "model.safetensors").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelLoadError, match="not a valid safetensors file"):
        inspect_hf_dir(gpt2_copy)


def test_remote_code_is_off_by_default(gpt2_copy, monkeypatch):
    from pocketlm.backends.torch_backend import TorchBackend

    monkeypatch.delenv("POCKETLM_TRUST_REMOTE_CODE", raising=False)
    config = json.loads((gpt2_copy / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (gpt2_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="POCKETLM_TRUST_REMOTE_CODE=1"):
        TorchBackend(gpt2_copy, slots=1, n_ctx=64)


def test_unsupported_architecture_on_llama_cpp_suggests_torch(tmp_path):
    from pocketlm.backends import load_backend
    from pocketlm.models.prepare import prepare

    neo = str(build_tiny_gpt_neo(tmp_path / "neo"))
    with pytest.raises(ModelLoadError, match=r"GPTNeoForCausalLM.*--backend torch"):
        prepare(ModelOptions(neo, backend="llama.cpp"))
    backend = load_backend(prepare(neo), ModelOptions(neo), slots=1, n_ctx=64)  # auto: torch runs it
    assert type(backend).__name__ == "TorchBackend"


def test_hub_id_offline_names_the_model_and_the_fix(monkeypatch, tmp_path):
    from pocketlm.models import resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    with pytest.raises(ModelNotFound, match=r"'distilgpt2'.*huggingface-cli download distilgpt2.*local directory"):
        resolve("distilgpt2")


def test_convert_command_both_directions(tmp_path, gpt2_copy):
    from pocketlm.cli import main

    runner = CliRunner()
    out = tmp_path / "tiny.gguf"
    result = runner.invoke(main, ["convert", "--model", str(gpt2_copy), "--output", str(out), "--quantization", "q8_0"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "q8_0" in result.output
    result = runner.invoke(main, ["convert", "--model", str(gpt2_copy), "--output", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "*.gguf" in result.output
    pickle_only(gpt2_copy)
    result = runner.invoke(
        main,
        ["convert", "--model", str(gpt2_copy), "--output", str(tmp_path / "p.gguf")],
        env={"POCKETLM_ALLOW_PICKLE": ""},
    )
    assert result.exit_code != 0 and "--allow-pickle" in result.output.replace("\n", " ")
    assert not (tmp_path / "p.gguf").exists()
