import os

import pytest

# pocketlm must work with no network at all: no test may try a hub download.
# (Not HF_HUB_OFFLINE: huggingface_hub's InferenceClient then refuses even 127.0.0.1.)
os.environ["POCKETLM_OFFLINE"] = "1"


def _pin_worker() -> None:
    """Under pytest-xdist (`make test` runs one worker per core), each worker and what it starts (servers, CLI
    runs) keep to their own share of the cores, and every thread count follows it (pocketlm.settings.cores,
    torch's OpenMP): two workers each running llama.cpp with a thread per core of the machine would put four
    spinning threads on two cores, each pass then waiting on threads the scheduler has set aside."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    cpus = sorted(os.sched_getaffinity(0))
    if worker and count and len(cpus) >= int(count) > 1:
        os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw")) :: int(count)])


_pin_worker()


def pytest_collection_modifyitems(items):
    """Schemathesis (tests/test_openapi_fuzz.py) names each operation's test, ``test_open_server[POST /generate]``,
    but under pytest 9 every operation of one function gets the function's node id. pytest-xdist hands tests to
    its workers by node id, so all but one would never run: each gets its operation in its id."""
    for item in items:
        label = getattr(item, "operation_label", None)
        if label and not item.nodeid.endswith("]"):
            item._id = item.id.with_params(label)


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
