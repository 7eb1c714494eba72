"""The served-models table (pocketlm.service.served): naming, loading on demand, room, keep-alive, draining.

The engines are real engines on the scripted backend (tests/fake_backend.py), so loads take milliseconds and
every rule is exercised on the event loop as the server runs it. A load can be held open by the test (an
event it sets), so what each request sees is decided by the test, not by timing; every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import shutil
import threading

import pytest

from fake_backend import FakeBackend
from pocketlm.engine import Engine, EngineConfig, SamplingParams
from pocketlm.errors import InvalidParameter, ModelLoadError, ModelNotFound, Overloaded
from pocketlm.models.listing import ModelRow
from pocketlm.service.quantities import FOREVER, keep_alive_seconds, size_bytes
from pocketlm.service.served import ServedModel, ServedModels

WAIT = 10  # seconds: far longer than any step here takes


class ClosingBackend(FakeBackend):
    """The scripted backend, remembering whether it was closed (what an unload must do)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Loader:
    """Loads a started engine per model, counting loads; ``hold`` keeps a model's load waiting for ``release``."""

    def __init__(self):
        self.loads: list[str] = []
        self.engines: dict[str, Engine] = {}
        self.hold: set[str] = set()
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail: set[str] = set()

    def __call__(self, served: ServedModel, alone: bool) -> Engine:
        self.loads.append(served.id)
        self.started.set()
        if served.id in self.hold:
            assert self.release.wait(WAIT), "the test never released the load"
        if served.id in self.fail:
            raise ModelLoadError(f"{served.id}: truncated file")
        engine = Engine(ClosingBackend(f" {served.id} says hi.", slots=2, n_ctx=64), EngineConfig(slots=2, n_ctx=64))
        self.engines[served.id] = engine.start()
        return engine


def served(model_id: str, ram: int = 100) -> ServedModel:
    return ServedModel(model_id, f"/models/{model_id}.gguf", ModelRow(model_id, 0, ram, "Q8_0", 64, ram, "test"), 64)


def table(*ids: str, loader: Loader | None = None, **kwargs) -> tuple[ServedModels, Loader]:
    loader = loader or Loader()
    return ServedModels([served(i) for i in ids], loader, grace_period=WAIT, **kwargs), loader


async def answer(models: ServedModels, model: str | None, keep_alive: float | None = None) -> str:
    lease = await models.acquire(model, keep_alive)
    try:
        completion = await lease.engine.complete("Hi", SamplingParams(temperature=0, max_new_tokens=32))
        return completion.samples[0].text
    finally:
        lease.release()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, WAIT))


async def until(condition) -> None:
    """Wait for ``condition()`` (an unload ends in a worker thread, after a garbage collection)."""
    while not condition():
        await asyncio.sleep(0.01)


# ---- naming


def test_a_request_names_a_served_model_or_gets_the_default():
    models, _ = table("a", "b")
    assert models.find(None).id == models.find("").id == "a"  # the first is the default
    assert models.find("b:latest").id == "b"  # what an Ollama client sends for 'b'
    with pytest.raises(ModelNotFound, match="'c' is not served here; this server serves 'a', 'b'") as caught:
        models.find("c")
    assert caught.value.http_status == 404 and caught.value.param == "model"


def test_two_models_served_under_one_id_or_one_beyond_the_budget_stop_the_server():
    with pytest.raises(InvalidParameter, match="two models would be served as 'a'"):
        ServedModels([served("a"), served("a")], Loader())
    with pytest.raises(InvalidParameter, match="model 'big' alone is estimated at .* more than --memory-budget"):
        ServedModels([served("small", 100), served("big", 500)], Loader(), memory_budget=300)


def test_a_models_directory_serves_every_model_in_it_after_the_models_named(tmp_path):
    from pocketlm.models import resolve
    from pocketlm.server import ServeSettings
    from tiny_models import tiny_model_dir

    shutil.copytree(tiny_model_dir("llama"), tmp_path / "tiny-llama")
    (tmp_path / "smol.gguf").symlink_to(resolve(None).path)
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "empty").mkdir()
    alone = ServedModels.from_settings(ServeSettings(models_dir=tmp_path))
    assert list(alone.models) == ["smol", "tiny-llama"] and alone.default == "smol"
    both = ServedModels.from_settings(ServeSettings(models=("gemma3-270m",), models_dir=tmp_path))
    assert list(both.models) == ["gemma3-270m", "smol", "tiny-llama"] and both.default == "gemma3-270m"
    tiny = both.models["tiny-llama"]
    assert tiny.row.kind == "instruct" and tiny.n_ctx == 512 and tiny.row.ram_estimate > tiny.row.file_size / 4
    assert both.state("smol") == "unloaded"  # described from its files, nothing loaded yet


# ---- loading on demand


def test_the_default_loads_at_start_up_and_another_model_on_its_first_request():
    models, loader = table("a", "b")
    models.start()
    assert loader.loads == ["a"] and models.state("b") == "unloaded"

    async def scenario():
        assert await answer(models, "b") == " b says hi."
        assert await answer(models, None) == " a says hi."
        return models.state("b")

    assert run(scenario()) == "loaded" and loader.loads == ["a", "b"]


def test_requests_for_a_model_that_is_loading_wait_for_that_one_load():
    models, loader = table("a", "b")
    loader.hold.add("b")

    async def scenario():
        waiting = [asyncio.create_task(answer(models, "b")) for _ in range(3)]
        await asyncio.to_thread(loader.started.wait, WAIT)
        await asyncio.sleep(0.05)
        assert models.state("b") == "loading" and not any(task.done() for task in waiting)
        assert await answer(models, "a") == " a says hi."  # another model is served meanwhile
        loader.release.set()
        return await asyncio.gather(*waiting)

    assert run(scenario()) == [" b says hi."] * 3
    assert loader.loads.count("b") == 1


def test_requests_beyond_what_a_loading_model_could_queue_are_refused():
    models, loader = table("a", "b", max_waiting=2)
    loader.hold.add("b")

    async def scenario():
        waiting = [asyncio.create_task(models.acquire("b")) for _ in range(2)]
        await asyncio.to_thread(loader.started.wait, WAIT)
        with pytest.raises(Overloaded, match="2 requests are already waiting for model 'b' to load"):
            await models.acquire("b")
        loader.release.set()
        for lease in await asyncio.gather(*waiting):
            lease.release()

    run(scenario())


def test_a_failed_load_fails_its_waiters_and_the_next_request_tries_again():
    models, loader = table("a", "b")
    loader.fail.add("b")

    async def scenario():
        results = await asyncio.gather(answer(models, "b"), answer(models, "b"), return_exceptions=True)
        assert all(isinstance(r, ModelLoadError) for r in results) and models.state("b") == "unloaded"
        loader.fail.clear()
        return await answer(models, "b")

    assert run(scenario()) == " b says hi." and loader.loads.count("b") == 2


# ---- room: the count and the budget


def test_past_max_loaded_models_the_least_recently_used_idle_model_unloads():
    models, loader = table("a", "b", "c", max_loaded=2)
    models.start()

    async def scenario():
        await answer(models, "b")
        await answer(models, "a")  # now b is the least recently used
        await answer(models, "c")
        return [m.id for m, _ in models.loaded()]

    assert run(scenario()) == ["a", "c"]
    assert loader.engines["b"].backend.closed and not loader.engines["a"].backend.closed
    loads, _, unloads = models.stats("b")
    assert loads == 1 and unloads == {"max_loaded_models": 1}


def test_past_the_memory_budget_models_unload_until_the_new_one_fits():
    loader = Loader()
    rows = [served("a", 300), served("b", 300), served("c", 500)]
    models = ServedModels(rows, loader, memory_budget=1000, grace_period=WAIT).start()

    async def scenario():
        await answer(models, "b")  # 600 of 1000
        await answer(models, "c")  # 1100: a, the least recently used, goes
        return [m.id for m, _ in models.loaded()]

    assert run(scenario()) == ["b", "c"]
    assert models.stats("a")[2] == {"memory_budget": 1}


def test_an_unload_drains_the_models_running_requests_first():
    models, loader = table("a", "b", max_loaded=1)
    models.start()

    async def scenario():
        held = await models.acquire("a")  # a request running on a
        other = asyncio.create_task(answer(models, "b"))
        await asyncio.sleep(0.1)
        assert models.state("a") == "unloading" and not other.done()
        assert not loader.engines["a"].backend.closed  # it waits for the running request
        later = asyncio.create_task(answer(models, "a"))  # a request for a model unloading waits, then loads it
        held.release()
        assert await other == " b says hi."
        return await later

    assert run(scenario()) == " a says hi."
    assert loader.loads == ["a", "b", "a"] and loader.engines["b"].backend.closed


# ---- keep-alive


def test_keep_alive_zero_unloads_a_model_once_its_requests_are_done():
    models, loader = table("a", "b")
    models.start()

    async def scenario():
        await answer(models, "b", keep_alive=0)
        await until(lambda: models.state("b") == "unloaded")

    run(scenario())
    assert models.stats("b")[2] == {"keep_alive": 1} and loader.engines["b"].backend.closed


def test_a_requests_keep_alive_becomes_its_models_and_its_clock_starts_when_the_model_is_idle():
    models, loader = table("a", "b", keep_alive=FOREVER)
    models.start()

    async def scenario():
        await answer(models, "b", keep_alive=0.3)
        assert models.expires_at("b") is not None and models.expires_at("a") is None
        await answer(models, "b")  # no keep_alive of its own: the model keeps 0.3 s
        await asyncio.sleep(0.1)
        assert models.state("b") == "loaded"
        await until(lambda: models.state("b") == "unloaded")
        return models.state("a")

    assert run(scenario()) == "loaded"


def test_a_model_handed_in_loaded_stays_until_shutdown():
    backend = ClosingBackend(" hi", slots=2, n_ctx=64)
    models = ServedModels.serving(Engine(backend, EngineConfig(slots=2, n_ctx=64)).start())

    run(models.unload(None))  # it could not load again: nothing happens
    assert models.state("fake-model") == "loaded"
    models.stop(1)
    assert backend.closed and models.stats("fake-model")[2] == {"shutdown": 1}


# ---- durations and sizes as people write them


@pytest.mark.parametrize(
    "value, seconds",
    [(300, 300.0), ("5m", 300.0), ("1h30m", 5400.0), ("90s", 90.0), ("500ms", 0.5), ("300", 300.0), (0, 0.0)],
)
def test_keep_alive_takes_ollamas_durations(value, seconds):
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize("value", [-1, "-1", "-5m", -0.5, 1e300, "9" * 400, "1000000h"])
def test_a_negative_or_endless_keep_alive_is_forever(value):  # an end no clock can show (GET /api/ps) is none
    assert keep_alive_seconds(value) == FOREVER


@pytest.mark.parametrize("value", ["soon", "5 minutes", "", True, "1d"])
def test_a_keep_alive_that_is_no_duration_is_refused_by_name(value):
    with pytest.raises(InvalidParameter, match="keep_alive: must be a duration such as '5m'"):
        keep_alive_seconds(value)


def test_sizes_read_as_people_write_them():
    assert size_bytes("4GB", "memory_budget") == 4_000_000_000
    assert size_bytes("1.5GiB", "memory_budget") == 1.5 * 2**30
    assert size_bytes("512 mb", "memory_budget") == 512_000_000 and size_bytes("1000", "x") == 1000
    with pytest.raises(InvalidParameter, match="memory_budget: must be a size such as 4GB"):
        size_bytes("lots", "memory_budget")
