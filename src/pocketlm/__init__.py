"""pocketlm: self-hosted text generation for small public language models."""

__version__ = "0.1.0"
