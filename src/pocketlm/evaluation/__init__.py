"""Model evaluation (``pocketlm eval``): sliding-window perplexity and bits per byte on any backend."""

from pocketlm.evaluation.perplexity import Perplexity, perplexity, text_perplexity, windows

__all__ = ["Perplexity", "perplexity", "text_perplexity", "windows"]
