"""Ray Serve: the same app on N replicas behind one endpoint, on one machine or a Ray cluster.

Each replica is a Ray actor with its own served models (``pocketlm.service.ServedModels``: the
default model loaded in the replica's constructor, the others on demand, each with its own
engine, slots and KV cache), configured by the same settings as ``pocketlm serve``; Ray Serve's
HTTP proxy spreads requests across replicas and can add or remove them with the load
(autoscaling). A replica's llama.cpp threads default to the CPUs Ray reserves for it, so
replicas do not fight over cores.

    pocketlm deploy ray --replicas 2 --cpus-per-replica 1          # a local Ray, port 5000
    pocketlm deploy ray --ray-address auto --min-replicas 1 --max-replicas 8   # an existing cluster
    pocketlm deploy ray --model smollm2-135m-instruct --model ./my-finetune --max-loaded-models 1

Many models: Serve's model multiplexing. A request with the header ``serve_multiplexed_model_id:
<model>`` goes to a replica that already holds that model when there is one; the replica loads it
through its multiplexed loader (``hold``), which tells Ray what it holds, and Ray unloads the least
recently used past ``--max-loaded-models`` per replica, as the replica itself would. So many models
spread over a cluster's replicas, each request finding a warm one. Without the header a request
goes to any replica, which loads its model on demand.

Replicas answer with ``X-Pocketlm-Replica: host:pid``; Ray checks each one through the app's
own ``/ready`` and replaces a replica that stops answering 200.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, replace

from pocketlm.deploy.asgi import ReplicaHeader, get_status, replica_name
from pocketlm.errors import InvalidParameter
from pocketlm.server import ServeSettings
from pocketlm.settings import Declared, setting

log = logging.getLogger("pocketlm.ray")


@dataclass(frozen=True)
class Scaling(Declared):
    """Where the replicas run, how many, and how big each one is."""

    replicas: int = setting(  # ignored when min_replicas/max_replicas ask for autoscaling
        1,
        low=1,
        help="Replicas, each with its own engine and slots (fixed count; see --min/--max-replicas to autoscale).",
    )
    cpus_per_replica: float = setting(
        1.0,
        low=0.0,
        low_open=True,
        help="CPUs Ray reserves for each replica; also its llama.cpp threads unless --threads is given.",
    )
    min_replicas: int | None = setting(None, low=0, help="Autoscale: fewest replicas (with --max-replicas).")
    max_replicas: int | None = setting(None, low=1, help="Autoscale: most replicas (with --min-replicas).")
    target_ongoing_requests: float = setting(
        8.0, low=0.0, low_open=True, help="Autoscale: requests in flight per replica that Ray Serve aims at."
    )
    max_ongoing_requests: int | None = setting(  # default: slots + queue, what the engine accepts
        None, low=1, help="Requests Ray sends one replica at once (default: its slots + queue)."
    )
    ray_address: str | None = setting(
        None,
        help="Ray cluster to join: 'auto' (this node ran `ray start`), ray://HOST:10001; "
        "default: a local Ray on every core.",
    )

    def __post_init__(self):
        super().__post_init__()
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise InvalidParameter("max_replicas", "autoscaling needs both --min-replicas and --max-replicas")
        if self.autoscaling and self.min_replicas > self.max_replicas:
            raise InvalidParameter(
                "max_replicas",
                f"need min_replicas <= max_replicas; got {self.min_replicas} and {self.max_replicas}",
            )

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None

    def deployment_options(self, settings: ServeSettings) -> dict:
        """Keyword arguments of ``serve.deployment`` for these settings."""
        engine = settings.engine
        options = {
            "ray_actor_options": {"num_cpus": self.cpus_per_replica},
            # More than the engine admits would only fill its queue; fewer would leave slots idle.
            "max_ongoing_requests": self.max_ongoing_requests or engine.slots + engine.max_queue,
            # A model takes seconds to load on a busy machine: be patient before calling a replica unhealthy.
            "health_check_period_s": 10,
            "health_check_timeout_s": 30,
            "graceful_shutdown_timeout_s": settings.grace_period + 2.0,
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def replica_settings(settings: ServeSettings, scaling: Scaling) -> ServeSettings:
    """One replica's settings: llama.cpp threads default to the replica's CPUs instead of every core of the node."""
    if settings.model_options.threads is not None:
        return settings
    threads = max(1, round(scaling.cpus_per_replica))
    return replace(settings, model_options=replace(settings.model_options, threads=threads))


class PocketlmReplica:
    """One Ray Serve replica: loads its served models' default, then serves the whole pocketlm app."""

    def __init__(self, settings: ServeSettings):
        from pocketlm.server import build_app
        from pocketlm.service import ServedModels

        started = time.perf_counter()
        self.settings = settings
        self.models = ServedModels.from_settings(settings).start()
        self.service = build_app(self.models, settings)  # not `app`: Ray's wrapper owns that name
        self.replica = replica_name()
        log.info("replica %s loaded %s in %.1f s", self.replica, self.models.default, time.perf_counter() - started)

    def __serve_build_asgi_app__(self):
        """Ray Serve asks for the app after the constructor: the models exist by then."""
        return ReplicaHeader(Multiplexed(self.service, self), self.replica)

    async def hold(self, model_id: str) -> ModelHold:
        """Load ``model_id`` here. ``build_deployment`` wraps this in Serve's multiplexed loader (under the same
        name, as Ray requires), which remembers what the replica holds and reports it to Ray."""
        (await self.models.acquire(model_id)).release()  # loaded; its keep-alive runs as on any server
        return ModelHold(self.models, model_id, asyncio.get_running_loop())

    async def check_health(self):
        """Ray's periodic health check: the app's own readiness probe, called in-process."""
        status = await get_status(self.service, "/ready")
        if status != 200:
            raise RuntimeError(f"replica {self.replica}: /ready answered {status}")

    def __del__(self):
        models = getattr(self, "models", None)
        if models is not None:
            models.stop(self.settings.grace_period)


class ModelHold:
    """What Serve's multiplexer keeps per model a replica holds: unloading it (Ray's LRU) unloads the model."""

    def __init__(self, models, model_id: str, loop: asyncio.AbstractEventLoop):
        self.models, self.model_id, self.loop = models, model_id, loop
        self.released = False

    def __del__(self):
        # Ray calls this from a worker thread when it evicts the model; the table lives on the replica's loop.
        # Collected later (already released, or the loop gone at shutdown), there is nothing left to do.
        if not self.released and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.models.unload(self.model_id), self.loop).result()
        self.released = True


class Multiplexed:
    """Serve's model multiplexing for the whole app: a request naming its model in the
    ``serve_multiplexed_model_id`` header has it held here (loaded, and reported to Ray) before it runs."""

    def __init__(self, app, replica: PocketlmReplica):
        self.app, self.replica = app, replica

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            from ray import serve

            model_id = serve.get_multiplexed_model_id()
            if model_id and model_id.removesuffix(":latest") in self.replica.models.models:
                await self.replica.hold(model_id.removesuffix(":latest"))
            # a model not served: the route answers 404 naming the choices, as without Ray
        await self.app(scope, receive, send)


def build_deployment(settings: ServeSettings, scaling: Scaling):
    """The bound Ray Serve application: ``serve.run(build_deployment(...), route_prefix="/")``."""
    from ray import serve

    # Ray unloads the least recently used model past --max-loaded-models per replica (-1: no limit), as the
    # replica's own table does: the two agree on what a replica holds.
    per_replica = settings.max_loaded_models or -1
    replica = type(
        "PocketlmReplica",
        (PocketlmReplica,),
        {"hold": serve.multiplexed(max_num_models_per_replica=per_replica)(PocketlmReplica.hold)},
    )
    ingress = serve.ingress()(replica)
    deployment = serve.deployment(ingress, name="pocketlm", **scaling.deployment_options(settings))
    return deployment.bind(replica_settings(settings, scaling))


def run(settings: ServeSettings, scaling: Scaling, app_name: str = "pocketlm", blocking: bool = True):
    """Connect to (or start) Ray, deploy on ``settings.host:settings.port``, and wait until every replica is up.

    ``scaling.ray_address``: None joins the Ray already initialised in this process, else starts a local one on
    every core; "auto" joins the cluster this node belongs to (``ray start --head`` / ``ray start --address``);
    "ray://host:10001" a remote one. With ``blocking``, serve until SIGINT/SIGTERM, then shut the application down.
    """
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=scaling.ray_address, logging_level=logging.WARNING, include_dashboard=False)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    started = time.perf_counter()
    handle = serve.run(build_deployment(settings, scaling), name=app_name, route_prefix="/", blocking=False)
    log.info(
        "Ray Serve: %s ready in %.1f s on http://%s:%d",
        app_name,
        time.perf_counter() - started,
        settings.host,
        settings.port,
    )
    if blocking:
        _wait_for_interrupt()
        serve.shutdown()
    return handle


def _wait_for_interrupt() -> None:
    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
