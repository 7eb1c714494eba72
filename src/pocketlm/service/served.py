"""The models one server serves: each loaded on first use into its own engine, unloaded when it must go.

The API asks this table for an engine by model id (``acquire``); each engine keeps serving one model, with
its own slots and KV cache. The rules, in the order a request meets them:

- *naming*: a request's ``model`` is one of the served ids (an Ollama client's ``name:latest`` is ``name``);
  none (or "") is the default, the first ``--model``. Anything else is a ModelNotFound naming the choices.
- *loading*: the default model loads at start-up, as a one-model server always did; any other on its first
  request, in a worker thread, so the event loop and the other engines' threads keep running. Requests for
  a model that is loading wait for that one load; as many may wait as its engine would queue (``--slots`` +
  ``--max-queue``), the next is refused (503, as a full queue is).
- *room*: past ``--max-loaded-models``, or past ``--memory-budget`` by the models' estimates (``models.
  listing``), a load first unloads the least recently used model, an idle one before a busy one.
- *keep-alive* (Ollama's word and rules): a model stays loaded for ``--keep-alive`` after its last request
  ends (forever by default); a request's own ``keep_alive`` sets it for its model; 0 unloads the model as
  soon as its requests are done.
- *unloading drains*: the model takes no new requests (they wait, then load it again), its running requests
  may finish for up to ``--grace-period`` seconds, the rest are cancelled (as at shutdown); then its engine
  stops, its backend closes and its memory is handed back to the system.

What a request holds is a ``Lease``: the engine and a count that keeps its model loaded until the lease is
released (``api.generation`` releases it when the request's stream ends). The table's state changes on the
event loop only; the blocking work (load, close) runs in threads. The engines themselves are kept by the
load-once holder (``models.loaded``), which gives the least-recently-used order and the sizes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pocketlm.errors import EngineStopped, InvalidParameter, ModelLoadError, ModelNotFound, Overloaded
from pocketlm.models.listing import ModelRow
from pocketlm.models.loaded import Loaded
from pocketlm.service.quantities import FOREVER, describe_seconds

if TYPE_CHECKING:
    from pocketlm.engine import Engine
    from pocketlm.service.settings import Settings

log = logging.getLogger("pocketlm.models")

# Why a model was unloaded: the label of pocketlm_model_unloads_total.
KEEP_ALIVE, MAX_LOADED, MEMORY_BUDGET, SHUTDOWN = "keep_alive", "max_loaded_models", "memory_budget", "shutdown"


@dataclass(frozen=True)
class ServedModel:
    """One model a server serves: the id clients use, what loads it, and what it is and costs."""

    id: str
    model: str  # what loads it, as --model takes it (an alias, a path, a hub id)
    row: ModelRow  # from its files: kind, size, context, parameters, the RAM estimate (models.listing.describe)
    n_ctx: int  # the context of each slot its engine will have: --n-ctx, capped by what the model was trained on


@dataclass
class _Use:
    """What the table knows of one model while the server runs."""

    keep_alive: float
    active: int = 0  # leases held: requests running (or about to) on its engine
    waiting: int = 0  # requests waiting for its load
    loading: asyncio.Task | None = None
    unloading: asyncio.Task | None = None
    expiry: asyncio.TimerHandle | None = None
    expires_at: float | None = None  # wall-clock time its keep-alive ends; None: never, or busy
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while no lease is held
    loads: int = 0
    load_seconds: list[float] = field(default_factory=list)
    unloads: Counter = field(default_factory=Counter)  # by reason

    def __post_init__(self):
        self.idle.set()


class Lease:
    """A request's hold on a loaded model: its engine, kept loaded until ``release`` (which may come twice)."""

    def __init__(self, table: ServedModels, served: ServedModel, engine: Engine):
        self.served, self.engine = served, engine
        self._table: ServedModels | None = table

    @property
    def model(self) -> str:
        return self.served.id

    def share(self) -> Lease:
        """One more lease on this model, for another job of the same request; only while this one is held."""
        if self._table is None:
            raise RuntimeError("a lease given back cannot be shared")
        self._table._uses[self.served.id].active += 1
        return Lease(self._table, self.served, self.engine)

    def release(self) -> None:
        if self._table is not None:
            table, self._table = self._table, None
            table._released(self.served.id)


class ServedModels:
    """The table of served models: ``acquire`` an engine by model id; the rules are in the module's docstring."""

    def __init__(
        self,
        served: list[ServedModel],
        load: Callable[[ServedModel, bool], Engine],
        *,
        max_loaded: int | None = None,
        memory_budget: int | None = None,
        keep_alive: float = FOREVER,
        grace_period: float = 30.0,
        max_waiting: int = 80,
    ):
        if not served:
            raise InvalidParameter("models", "no model to serve: give --model, or a --models-dir that holds models")
        self.models: dict[str, ServedModel] = {}
        for m in served:
            if m.id in self.models:
                raise InvalidParameter(
                    "models",
                    f"two models would be served as '{m.id}' ({self.models[m.id].model} and {m.model}); "
                    "rename one of them",
                )
            if memory_budget is not None and m.row.ram_estimate > memory_budget:
                raise InvalidParameter(
                    "memory_budget",
                    f"model '{m.id}' alone is estimated at {m.row.ram_estimate / 1e6:,.0f} MB, more than "
                    f"--memory-budget ({memory_budget / 1e6:,.0f} MB); raise the budget or lower --slots/--n-ctx",
                )
            self.models[m.id] = m
        self.default = served[0].id
        self._load = load
        self.max_loaded, self.memory_budget = max_loaded, memory_budget
        self.grace_period, self.max_waiting = grace_period, max_waiting
        self._engines: Loaded[str, Engine] = Loaded()
        self._uses = {m.id: _Use(keep_alive) for m in served}
        self._room: asyncio.Lock | None = None  # held by a load while it decides what to unload (made on the loop)
        self._reserved: set[str] = set()  # models loading now, past that decision: they count as loaded
        self._pinned: set[str] = set()  # models handed in loaded (``serving``): they cannot load again
        self._closing = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ServedModels:
        """The models ``settings`` name (``--model``, ``--models-dir``; the embedded SmolLM2 if neither), each
        described from its files now (a name that is no model stops the server here), none loaded yet."""
        from pocketlm.models.listing import describe, models_in
        from pocketlm.models.registry import DEFAULT_MODEL

        names = [*settings.models, *(models_in(settings.models_dir) if settings.models_dir else [])]
        if not names and settings.models_dir is None:
            names = [DEFAULT_MODEL]
        config = settings.engine
        options = settings.model_options
        kv_tokens = config.slots * config.n_ctx
        rows = [describe(n, kv_tokens, backend=options.backend, quantization=options.quantization) for n in names]
        served = [
            ServedModel(row.name, name, row, min(row.n_ctx_train or config.n_ctx, config.n_ctx))
            for name, row in zip(names, rows)
        ]

        prepared: set[str] = set()  # the models made ready once: their conversions are in the cache now

        def load(model: ServedModel, alone: bool) -> Engine:
            from pocketlm.engine import load_engine
            from pocketlm.models.prepare import prepare, prepare_apart

            options = replace(settings.model_options, model=model.model)
            # A first preparation may convert (seconds of Python holding the interpreter's lock): while other
            # models serve, it runs in a child process. Later ones find the cache and take milliseconds.
            ready = (prepare if alone or model.id in prepared else prepare_apart)(options)
            prepared.add(model.id)
            return load_engine(options, config, ready)

        return cls(
            served,
            load,
            max_loaded=settings.max_loaded_models,
            memory_budget=settings.memory_budget_bytes,
            keep_alive=settings.keep_alive_seconds,
            grace_period=settings.grace_period,
            max_waiting=config.slots + config.max_queue,
        )

    @classmethod
    def serving(cls, engine: Engine) -> ServedModels:
        """A table of one model already loaded: ``engine``'s (for an app built around an engine, as tests do)."""
        info = engine.info
        row = ModelRow(
            info.name,
            info.n_params,
            0,
            info.quantization,
            info.n_ctx_train,
            0,
            "loaded",
            architecture=info.architecture,
            n_vocab=info.n_vocab,
            path=info.path,
        )
        table = cls([ServedModel(info.name, info.path or info.name, row, engine.n_ctx)], lambda served, alone: engine)
        table._pinned.add(info.name)  # unloaded, it could not load again: it stays until shutdown
        return table.start()

    # ---- what the API asks ---------------------------------------------------------------------

    def find(self, asked: str | None) -> ServedModel:
        """The model a request names (None or "": the default), or ModelNotFound naming the choices."""
        if not asked:
            return self.models[self.default]
        found = self.models.get(asked) or self.models.get(asked.removesuffix(":latest"))
        if found is None:
            raise ModelNotFound(
                f"model '{asked}' is not served here; this server serves {', '.join(map(repr, self.models))} "
                "(see GET /v1/models)"
            )
        return found

    async def acquire(self, asked: str | None, keep_alive: float | None = None) -> Lease:
        """A lease on the model ``asked`` names, loading it first if it is not loaded (waiting for a load or an
        unload under way). ``keep_alive``: the request's own (seconds), which becomes the model's."""
        served = self.find(asked)
        use = self._uses[served.id]
        if keep_alive is not None:
            use.keep_alive = keep_alive
        while True:
            if self._closing:
                raise EngineStopped("the server is shutting down and accepts no new requests")
            if use.unloading is not None:
                await asyncio.shield(use.unloading)
            elif served.id in self._engines and use.loading is None:
                break
            else:
                await self._wait_for_load(served, use)
        use.active += 1
        use.idle.clear()
        use.expires_at = None
        if use.expiry is not None:
            use.expiry.cancel()
            use.expiry = None
        self._engines.touch(served.id)
        return Lease(self, served, self._engines.peek(served.id))

    def state(self, model_id: str) -> str:
        """loaded, loading, unloading or unloaded."""
        use = self._uses[model_id]
        if use.unloading is not None:
            return "unloading"
        if use.loading is not None:
            return "loading"
        return "loaded" if model_id in self._engines else "unloaded"

    def engine(self, model_id: str) -> Engine | None:
        """The engine of a loaded model, or None: for reading what it is, never for running a request."""
        return self._engines.peek(model_id)

    def loaded(self) -> list[tuple[ServedModel, Engine]]:
        """The loaded models and their engines, least recently used first."""
        return [(self.models[i], engine) for i in self._engines.keys() if (engine := self.engine(i)) is not None]

    def expires_at(self, model_id: str) -> float | None:
        """When a loaded model's keep-alive ends (Unix time); None while it never will."""
        use = self._uses[model_id]
        if use.expires_at is not None:
            return use.expires_at
        return None if use.keep_alive == FOREVER else time.time() + use.keep_alive  # busy: from its last request

    def stats(self, model_id: str) -> tuple[int, list[float], Counter]:
        """(loads, the seconds each load took, unloads by reason) since start-up."""
        use = self._uses[model_id]
        return use.loads, list(use.load_seconds), Counter(use.unloads)

    async def unload(self, asked: str | None) -> None:
        """Unload a model now (Ollama's ``keep_alive: 0`` with no prompt): drained as any unload."""
        served = self.find(asked)
        if served.id in self._engines:
            await self._unload(served.id, KEEP_ALIVE)

    # ---- start-up and shutdown -----------------------------------------------------------------

    def start(self) -> ServedModels:
        """Load the default model now, in this thread, before the server serves (a bad model stops it here)."""
        self._load_now(self.models[self.default], alone=True)
        return self

    def stop(self, grace_period: float) -> None:
        """Shutdown: refuse new requests, let each loaded model's running ones finish for up to ``grace_period``
        seconds (the engines drain together), then close every engine. Blocking, and free of the event loop: the
        server runs it in a thread, a Ray replica from its destructor."""
        self._closing = True
        loaded = [(model_id, self._engines.drop(model_id)) for model_id in self._engines.keys()]
        with ThreadPoolExecutor(max_workers=max(1, len(loaded))) as pool:
            list(pool.map(lambda item: close_engine(item[1], grace_period), loaded))
        for model_id, _ in loaded:
            self._uses[model_id].unloads[SHUTDOWN] += 1

    # ---- loading ---------------------------------------------------------------------------------

    async def _wait_for_load(self, served: ServedModel, use: _Use) -> None:
        if use.waiting >= self.max_waiting:
            raise Overloaded(
                f"{use.waiting} requests are already waiting for model '{served.id}' to load; retry shortly",
                retry_after=1.0,
            )
        if use.loading is None:
            use.loading = asyncio.get_running_loop().create_task(self._loading(served, use))
        use.waiting += 1
        try:
            await asyncio.shield(use.loading)  # a waiter that gives up does not cancel the load for the others
        finally:
            use.waiting -= 1

    async def _loading(self, served: ServedModel, use: _Use) -> None:
        try:
            if self._room is None:
                self._room = asyncio.Lock()
            async with self._room:  # one load at a time decides what to unload, then holds its room while it loads
                await self._make_room(served)
                self._reserved.add(served.id)
            try:
                await asyncio.to_thread(self._load_now, served, False)
            finally:
                self._reserved.discard(served.id)
        finally:
            use.loading = None

    def _load_now(self, served: ServedModel, alone: bool) -> None:
        """Load ``served``; ``alone``: nothing else is serving yet (start-up), so nothing can be held up."""
        started = time.perf_counter()
        self._engines.get(served.id, lambda: self._load(served, alone), served.row.ram_estimate)
        seconds = time.perf_counter() - started
        use = self._uses[served.id]
        use.loads += 1
        use.load_seconds.append(seconds)
        log.info(
            "loaded %s in %.1f s (%d loaded; keep-alive %s)",
            served.id,
            seconds,
            len(self._engines.keys()),
            describe_seconds(use.keep_alive),
        )

    async def _make_room(self, served: ServedModel) -> None:
        """Unload least-recently-used models until ``served`` fits the count and the budget."""
        while (reason := self._no_room(served)) is not None:
            loaded = [
                i
                for i in self._engines.keys()
                if i != served.id and i not in self._pinned and self._uses[i].unloading is None
            ]
            if not loaded:  # the room is held by loads and unloads under way: wait for one to end
                pending = [u.unloading or u.loading for u in self._uses.values() if u.unloading or u.loading]
                pending = [task for task in pending if task is not self._uses[served.id].loading]
                if not pending:  # what is loaded may not unload (``serving``)
                    raise ModelLoadError(f"model '{served.id}' cannot load: no room under --{reason.replace('_', '-')}")
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                continue
            idle = [i for i in loaded if self._uses[i].active == 0]
            await self._unload((idle or loaded)[0], reason)

    def _no_room(self, served: ServedModel) -> str | None:
        """The setting ``served`` would exceed if it loaded now (beside those loaded and loading), or None."""
        others = {*self._engines.keys(), *self._reserved} - {served.id}
        if self.max_loaded is not None and len(others) + 1 > self.max_loaded:
            return MAX_LOADED
        if self.memory_budget is not None:
            taken = sum(self.models[i].row.ram_estimate for i in others)
            if taken + served.row.ram_estimate > self.memory_budget:
                return MEMORY_BUDGET
        return None

    # ---- unloading -------------------------------------------------------------------------------

    def _released(self, model_id: str) -> None:
        use = self._uses[model_id]
        use.active -= 1
        self._engines.touch(model_id)
        if use.active:
            return
        use.idle.set()
        if use.keep_alive == FOREVER or self._closing:
            return
        use.expires_at = time.time() + use.keep_alive
        loop = asyncio.get_running_loop()
        use.expiry = loop.call_later(use.keep_alive, lambda: loop.create_task(self._expire(model_id)))

    async def _expire(self, model_id: str) -> None:
        use = self._uses[model_id]
        use.expiry = None
        if use.active == 0 and use.loading is None and model_id in self._engines:
            await self._unload(model_id, KEEP_ALIVE)

    async def _unload(self, model_id: str, reason: str) -> None:
        if model_id in self._pinned:  # it could not load again: it stays until shutdown
            return
        use = self._uses[model_id]
        if use.unloading is None:
            use.unloading = asyncio.get_running_loop().create_task(self._unloading(model_id, use, reason))
        await asyncio.shield(use.unloading)

    async def _unloading(self, model_id: str, use: _Use, reason: str) -> None:
        try:
            if use.expiry is not None:
                use.expiry.cancel()
                use.expiry = None
            try:
                await asyncio.wait_for(use.idle.wait(), self.grace_period)
            except TimeoutError:
                log.info(
                    "unloading %s: %d requests still running after %g s are cancelled",
                    model_id,
                    use.active,
                    self.grace_period,
                )
            engine = self._engines.drop(model_id)
            started = time.perf_counter()
            if engine is not None:
                await asyncio.to_thread(close_engine, engine)
            use.unloads[reason] += 1
            use.expires_at = None
            log.info("unloaded %s (%s) in %.2f s", model_id, reason, time.perf_counter() - started)
        finally:
            use.unloading = None


def close_engine(engine: Engine, grace_period: float = 0.0) -> None:
    """Stop ``engine`` (its requests finish within ``grace_period`` or are cancelled), close its backend and hand
    the memory back."""
    engine.stop(grace_period)
    engine.backend.close()
    gc.collect()  # the torch backend's tensors go with their last reference; cycles need a collection
    _trim_heap()


def _trim_heap() -> None:
    """Give freed heap pages back to the system (glibc keeps them for reuse otherwise: RSS would not fall)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to trim
        pass
