"""``pocketlm deploy ray`` (the app on Ray Serve replicas) and ``pocketlm insight`` (the daily README job)."""

from __future__ import annotations

from pathlib import Path

import click

from pocketlm.api.settings import Settings
from pocketlm.models.options import env_var
from pocketlm.server import configure_logging, serve_options


@click.group()
def deploy():
    """Run the pocketlm app elsewhere: Ray Serve replicas. \
(The container and Lambda: see the Dockerfile and template.yaml.)"""


def _option(flag: str, *names: str, **kwargs):
    """A flag that is also the environment variable POCKETLM_<FLAG>, like every pocketlm flag."""
    return click.option(flag, *names, envvar=env_var(flag), show_envvar=True, **kwargs)


@deploy.command()
@serve_options
@_option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Replicas, each with its own engine and slots (fixed count; see --min/--max-replicas to autoscale).",
)
@_option(
    "--cpus-per-replica",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="CPUs Ray reserves for each replica; also its llama.cpp threads unless --threads is given.",
)
@_option(
    "--min-replicas", type=click.IntRange(min=0), default=None, help="Autoscale: fewest replicas (with --max-replicas)."
)
@_option(
    "--max-replicas", type=click.IntRange(min=1), default=None, help="Autoscale: most replicas (with --min-replicas)."
)
@_option(
    "--target-ongoing-requests",
    type=click.FloatRange(min=0, min_open=True),
    default=8.0,
    show_default=True,
    help="Autoscale: requests in flight per replica that Ray Serve aims at.",
)
@_option(
    "--max-ongoing-requests",
    type=click.IntRange(min=1),
    default=None,
    help="Requests Ray sends one replica at once (default: its slots + queue).",
)
@_option(
    "--ray-address",
    "address",
    default=None,
    help=(
        "Ray cluster to join: 'auto' (this node ran `ray start`), ray://HOST:10001; default: a local Ray on every core."
    ),
)
def ray(settings: Settings, address, **scaling):
    """Serve the app from Ray Serve replicas behind one HTTP endpoint (--host/--port), until Ctrl-C or SIGTERM."""
    from pocketlm.deploy.ray_serve import Scaling, run

    configure_logging(settings.log_format)
    scaling = Scaling(**scaling)
    scaling.check()
    try:
        import ray  # noqa: F401  (an optional extra: say how to get it rather than a traceback)
    except ImportError:
        raise click.ClickException("Ray Serve is not installed: pip install 'pocketlm[deploy]'") from None
    run(settings, scaling, address=address)


@click.command()
@click.option(
    "--url",
    required=True,
    envvar="POCKETLM_INSIGHT_URL",
    show_envvar=True,
    help="The running pocketlm service, e.g. http://127.0.0.1:5000.",
)
@click.option(
    "--readme",
    type=click.Path(path_type=Path),
    default=Path("README.md"),
    show_default=True,
    help="File whose marked section is rewritten (<!-- pocketlm-insight:start/end -->).",
)
@click.option(
    "--api-key",
    envvar=env_var("--api-key"),
    show_envvar=True,
    default=None,
    help="Key for the service, if it requires one (the first, when the variable lists several).",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1, max=512),
    default=80,
    show_default=True,
    help="Length of the model's text, in tokens.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds each request to the service may take.",
)
def insight(url, readme, api_key, max_new_tokens, timeout):
    """Ask the running service for a hosting tip and its usage, and write them into README's marked section."""
    from pocketlm.deploy.insight import Client, update_readme

    key = api_key.split()[0] if api_key and api_key.split() else None
    changed = update_readme(readme, Client(url, key, timeout), max_new_tokens)
    click.echo(f"{readme}: insight section {'updated' if changed else 'unchanged'}")
