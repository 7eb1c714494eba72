import os

import pytest

# pocketlm must work with no network at all: no test may try a hub download.
# (Not HF_HUB_OFFLINE: huggingface_hub's InferenceClient then refuses even 127.0.0.1.)
os.environ["POCKETLM_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def engine():
    """The embedded SmolLM2 on llama.cpp, 16 slots: shared by the engine tests."""
    from pocketlm.engine import EngineConfig, ModelOptions, load_engine

    eng = load_engine(ModelOptions(), EngineConfig(slots=16, n_ctx=2048))
    yield eng
    eng.stop(0)


@pytest.fixture(scope="session")
def smollm2_hf():
    """The embedded SmolLM2 GGUF dequantized to a Hugging Face directory (the issue-5 conversion), as the torch
    backend runs it: the cache's one copy, made once and shared by every test that runs SmolLM2 on torch."""
    pytest.importorskip("torch")
    from pocketlm.models.prepare import prepare

    return prepare(None, "torch").path
