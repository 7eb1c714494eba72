"""The serve settings where there is no command line: read from the ``POCKETLM_*`` environment.

AWS Lambda imports a handler instead of running a command, yet its settings must mean what
they mean for ``pocketlm serve``: the same variables, parsed and checked by the same
declarations (``pocketlm.settings``), with the same defaults.
"""

from __future__ import annotations

from collections.abc import Mapping

from pocketlm.server import ServeSettings
from pocketlm.settings import from_env


def settings_from_env(environ: Mapping[str, str] | None = None) -> ServeSettings:
    """The serve settings from ``POCKETLM_*`` (``environ``, default: this process's environment).

    A bad value raises InvalidParameter naming the setting, its flag and its variable, e.g.
    "slots: must be >= 1, got 0 (--slots / POCKETLM_SLOTS)".
    """
    return from_env(ServeSettings, environ)
