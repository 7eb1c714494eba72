"""Command-line flags for the engine, declared once and named after the fields they fill.

``--max-new-tokens`` fills ``SamplingParams.max_new_tokens``, ``--slots`` fills
``EngineConfig.slots``: the same word on the command line, in the environment
(``POCKETLM_SLOTS``), in HTTP bodies and in code. Defaults are the dataclasses'
own, so they live in one place.
"""

from __future__ import annotations

import functools
from dataclasses import fields

import click

from pocketlm.engine.config import EngineConfig
from pocketlm.engine.params import DESCRIPTIONS, Limits, SamplingParams
from pocketlm.models.options import env_var


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def sampling_options(f):
    """Add one flag per SamplingParams field; the command receives ``sampling: SamplingParams`` (validated)."""
    defaults = SamplingParams()

    @functools.wraps(f)
    def command(*args, **kwargs):
        values = {field.name: kwargs.pop(field.name) for field in fields(SamplingParams)}
        values["stop"] = tuple(values["stop"])
        return f(*args, sampling=SamplingParams(**values).validated(), **kwargs)  # before any model loads

    for field in reversed(fields(SamplingParams)):
        default = getattr(defaults, field.name)
        if field.name == "stop":
            option = click.option("--stop", multiple=True, help=DESCRIPTIONS["stop"] + " Repeatable.")
        elif field.name == "ignore_eos":
            option = click.option("--ignore-eos", is_flag=True, help=DESCRIPTIONS["ignore_eos"])
        else:
            kind = {"max_new_tokens": int, "seed": int, "logprobs": int, "top_k": int, "n": int}.get(field.name, float)
            names = ("-n", "--n") if field.name == "n" else (_flag(field.name),)
            option = click.option(
                *names,
                field.name,
                type=kind,
                default=default,
                show_default=default is not None,
                help=DESCRIPTIONS[field.name],
            )
        command = option(command)
    return command


_ENGINE_HELP = {
    "slots": "Sequences decoded together (continuous batching); more slots, more throughput, more KV-cache RAM.",
    "n_ctx": "Context of each slot in tokens: prompt + new tokens. KV-cache RAM grows with slots x n-ctx.",
    "max_queue": "Requests that may wait for a slot; beyond it: 'overloaded' (HTTP 503 + Retry-After).",
    "max_new_tokens": "Most tokens one sample may ask for.",
    "max_n": "Most samples per request (n, num_return_sequences).",
    "max_stop": "Most stop strings per request.",
    "max_prompt_tokens": "Longest prompt accepted, in tokens (default: what fits the context).",
    "draft_tokens": "Most tokens guessed ahead per sequence and step from its own text (prompt-lookup "
    "speculative decoding, used while fewer than 8 sequences decode); the text stays the same. "
    "0 turns it off.",
}


def engine_options(*names: str):
    """Add flags for EngineConfig / Limits fields ``names``; the command receives ``engine_config: EngineConfig``.

    Each flag is also an environment variable (``--max-queue`` is ``POCKETLM_MAX_QUEUE``).
    """
    config, limits = EngineConfig(), Limits()
    limit_names = {f.name for f in fields(Limits)}

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in names}
            chosen_limits = {k: v for k, v in values.items() if k in limit_names}
            chosen_config = {k: v for k, v in values.items() if k not in limit_names}
            return f(*args, engine_config=EngineConfig(**chosen_config, limits=Limits(**chosen_limits)), **kwargs)

        for name in reversed(names):
            default = getattr(limits if name in limit_names else config, name)
            low = {"max_queue": 0, "max_stop": 0, "draft_tokens": 0, "n_ctx": 16}.get(name, 1)
            command = click.option(
                _flag(name),
                name,
                type=click.IntRange(min=low),
                default=default,
                show_default=default is not None,
                envvar=env_var(name),
                show_envvar=True,
                help=_ENGINE_HELP[name],
            )(command)
        return command

    return decorate
