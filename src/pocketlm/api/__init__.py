"""pocketlm's text-generation API: the seeds' /generate, OpenAI- and TGI-compatible routes."""

from pocketlm.api.app import install

__all__ = ["install"]
