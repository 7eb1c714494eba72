"""``pocketlm deploy ray`` (the app on Ray Serve replicas) and ``pocketlm insight`` (the daily README job)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import click

from pocketlm.commandline import options
from pocketlm.deploy.ray_serve import Scaling
from pocketlm.server import ServeSettings, configure_logging
from pocketlm.settings import Declared, setting


@click.group()
def deploy():
    """Run the pocketlm app elsewhere: Ray Serve replicas. \
(The container and Lambda: see the Dockerfile and template.yaml.)"""


@deploy.command()
@options(ServeSettings, "settings")
@options(Scaling, "scaling")
def ray(settings: ServeSettings, scaling: Scaling):
    """Serve the app from Ray Serve replicas behind one HTTP endpoint (--host/--port), until Ctrl-C or SIGTERM."""
    from pocketlm.deploy.ray_serve import run

    configure_logging(settings.log_format)
    try:
        import ray  # noqa: F401  (an optional extra: say how to get it rather than a traceback)
    except ImportError:
        raise click.ClickException("Ray Serve is not installed: pip install 'pocketlm[deploy]'") from None
    run(settings, scaling)


@dataclass(frozen=True)
class Insight(Declared):
    """Where the service runs and what to ask it."""

    COMMAND: ClassVar[str] = "insight"

    url: str = setting(help="The running pocketlm service, e.g. http://127.0.0.1:5000.")
    readme: Path = setting(
        Path("README.md"), help="File whose marked section is rewritten (<!-- pocketlm-insight:start/end -->)."
    )
    api_key: str | None = setting(  # the server's variable: the job runs beside the service it asks
        None,
        env="POCKETLM_API_KEY",
        help="Key for the service, if it requires one (the first, when the variable lists several).",
    )
    max_new_tokens: int = setting(80, low=1, high=512, help="Length of the model's text, in tokens.")
    timeout: float = setting(120.0, low=0.0, low_open=True, help="Seconds each request to the service may take.")


@click.command()
@options(Insight, "insight")
def insight(insight: Insight):
    """Ask the running service for a hosting tip and its usage, and write them into README's marked section."""
    from pocketlm.deploy.insight import Client, update_readme

    keys = (insight.api_key or "").split()
    client = Client(insight.url, keys[0] if keys else None, insight.timeout)
    changed = update_readme(insight.readme, client, insight.max_new_tokens)
    click.echo(f"{insight.readme}: insight section {'updated' if changed else 'unchanged'}")
