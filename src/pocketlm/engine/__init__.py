"""The generation engine: continuous batching, sampling and stop handling over a backend."""

from __future__ import annotations

from pocketlm.engine.config import EngineConfig
from pocketlm.engine.engine import Engine
from pocketlm.engine.outputs import (
    Completion,
    PromptLogprobs,
    Sample,
    SampleFinished,
    TextDelta,
    TokenLogprob,
    Usage,
)
from pocketlm.engine.params import Limits, SamplingParams
from pocketlm.engine.scheduler import EngineStats
from pocketlm.engine.streams import RequestStream
from pocketlm.models.options import ModelOptions
from pocketlm.models.prepare import PreparedModel


def load_engine(
    options: ModelOptions = ModelOptions(), config: EngineConfig = EngineConfig(), prepared: PreparedModel | None = None
) -> Engine:
    """Prepare ``options.model`` (unless ``prepared`` is it already), load it on a backend with room for ``config``,
    and start an engine."""
    from pocketlm.backends import load_backend
    from pocketlm.models.prepare import prepare

    model = prepared or prepare(options)
    return Engine(load_backend(model, options, slots=config.slots, n_ctx=config.n_ctx), config).start()


__all__ = [
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "Limits",
    "ModelOptions",
    "PromptLogprobs",
    "RequestStream",
    "Sample",
    "SampleFinished",
    "SamplingParams",
    "TextDelta",
    "TokenLogprob",
    "Usage",
    "load_engine",
]
