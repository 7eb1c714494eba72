"""The serve settings where there is no command line: read from the ``POCKETLM_*`` environment.

AWS Lambda imports a handler instead of running a command, yet its settings must mean what
they mean for ``pocketlm serve``; parsing an empty command line with the serve flags reads
exactly the same environment variables, with the same checks and defaults.
"""

from __future__ import annotations

import click

from pocketlm.api.settings import Settings
from pocketlm.errors import InvalidParameter
from pocketlm.server import serve_options


@click.command()
@serve_options
def _read(settings: Settings) -> Settings:
    return settings


def settings_from_env(args: tuple[str, ...] = ()) -> Settings:
    """Settings from ``POCKETLM_*`` (and optional ``args``, as on the command line).

    A bad value raises InvalidParameter naming the flag and its variable, e.g.
    "Invalid value for '--slots' (env var: 'POCKETLM_SLOTS'): 0 is not in the range x>=1."
    """
    try:
        return _read.main(args=list(args), prog_name="pocketlm", standalone_mode=False)
    except click.BadParameter as e:
        raise InvalidParameter(e.param.name if e.param else "settings", e.format_message()) from None
    except click.ClickException as e:
        raise InvalidParameter("settings", e.format_message()) from None
