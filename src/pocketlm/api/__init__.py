"""pocketlm's HTTP server: the seeds' /generate, OpenAI- and TGI-compatible routes."""

from pocketlm.api.app import create_app
from pocketlm.api.settings import Settings

__all__ = ["Settings", "create_app"]
