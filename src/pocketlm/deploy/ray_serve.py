"""Ray Serve: the same app on N replicas behind one endpoint, on one machine or a Ray cluster.

Each replica is a Ray actor with its own engine (its own model copy, slots and KV cache),
loaded in the replica's constructor; Ray Serve's HTTP proxy spreads requests across replicas
and can add or remove them with the load (autoscaling). A replica's llama.cpp threads default
to the CPUs Ray reserves for it, so replicas do not fight over cores.

    pocketlm deploy ray --replicas 2 --cpus-per-replica 1          # a local Ray, port 5000
    pocketlm deploy ray --ray-address auto --min-replicas 1 --max-replicas 8   # an existing cluster

Replicas answer with ``X-Pocketlm-Replica: host:pid``; Ray checks each one through the app's
own ``/ready`` and replaces a replica that stops answering 200.
"""

from __future__ import annotations

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
    """One Ray Serve replica: loads its own engine, then serves the whole pocketlm app."""

    def __init__(self, settings: ServeSettings):
        from pocketlm.engine import load_engine
        from pocketlm.server import build_app

        started = time.perf_counter()
        self.settings = settings
        self.engine = load_engine(settings.model_options, settings.engine)
        self.service = build_app(self.engine, settings)  # not `app`: Ray's wrapper owns that name
        self.replica = replica_name()
        log.info("replica %s loaded %s in %.1f s", self.replica, self.engine.info.name, time.perf_counter() - started)

    def __serve_build_asgi_app__(self):
        """Ray Serve asks for the app after the constructor: the engine exists by then."""
        return ReplicaHeader(self.service, self.replica)

    async def check_health(self):
        """Ray's periodic health check: the app's own readiness probe, called in-process."""
        status = await get_status(self.service, "/ready")
        if status != 200:
            raise RuntimeError(f"replica {self.replica}: /ready answered {status}")

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.stop(self.settings.grace_period)


def build_deployment(settings: ServeSettings, scaling: Scaling):
    """The bound Ray Serve application: ``serve.run(build_deployment(...), route_prefix="/")``."""
    from ray import serve

    ingress = serve.ingress()(PocketlmReplica)
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
