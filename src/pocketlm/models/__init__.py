"""Model names to files, model metadata, and format conversion."""

from pocketlm.models.registry import DEFAULT_MODEL, EMBEDDED, ModelRef, resolve

__all__ = ["DEFAULT_MODEL", "EMBEDDED", "ModelRef", "resolve"]
