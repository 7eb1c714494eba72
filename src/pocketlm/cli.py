"""The `pocketlm` command line.

    pocketlm generate "The capital of France is" --temperature 0 --max-new-tokens 8
    pocketlm chat
    pocketlm models

Every sampling flag has the same name as the HTTP field and the engine parameter.
Commands of other packages (serve, convert, finetune, eval) are added at the bottom.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from dataclasses import asdict

import click

from pocketlm.errors import PocketLMError


class _Group(click.Group):
    """Show pocketlm's own errors as one clear line, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PocketLMError as e:
            raise click.ClickException(e.message) from None


@click.group(cls=_Group)
@click.version_option(package_name="pocketlm")
def main():
    """pocketlm: host small public language models on a plain CPU, offline."""


def model_options(f):
    from pocketlm.models.convert import QTYPES
    from pocketlm.models.hf import ALLOW_PICKLE_HELP, TRUST_REMOTE_CODE_HELP

    f = click.option("--trust-remote-code", is_flag=True, envvar="POCKETLM_TRUST_REMOTE_CODE",
                     help=TRUST_REMOTE_CODE_HELP)(f)
    f = click.option("--allow-pickle", is_flag=True, envvar="POCKETLM_ALLOW_PICKLE", help=ALLOW_PICKLE_HELP)(f)
    f = click.option("--quantization", type=click.Choice(QTYPES), default=None, envvar="POCKETLM_QUANTIZATION",
                     help="GGUF type llama.cpp runs, requantized once and cached (default: q8_0 for the embedded SmolLM2, else the file's own).")(f)
    f = click.option("--backend", type=click.Choice(["auto", "llama.cpp", "torch"]), default="auto",
                     envvar="POCKETLM_BACKEND", show_default=True, help="Inference backend.")(f)
    f = click.option("-m", "--model", default=None, envvar="POCKETLM_MODEL",
                     help="Alias, .gguf file, Hugging Face directory or hub id (default: the embedded SmolLM2).")(f)
    return f


def sampling_options(f):
    options = [
        click.option("--max-new-tokens", type=int, default=None, help="Tokens to generate at most (default: to the end of the context, capped)."),
        click.option("--temperature", type=float, default=1.0, show_default=True, help="0 = greedy."),
        click.option("--top-k", type=int, default=0, show_default=True, help="0 = off."),
        click.option("--top-p", type=float, default=1.0, show_default=True),
        click.option("--min-p", type=float, default=0.0, show_default=True),
        click.option("--repetition-penalty", type=float, default=1.0, show_default=True),
        click.option("--presence-penalty", type=float, default=0.0, show_default=True),
        click.option("--frequency-penalty", type=float, default=0.0, show_default=True),
        click.option("--seed", type=int, default=None, help="Same seed, same text."),
        click.option("--stop", multiple=True, help="Stop string (repeatable)."),
        click.option("--ignore-eos", is_flag=True, help="Keep generating past end-of-sequence."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def sampling_params(**kw):
    from pocketlm.engine import SamplingParams

    kw["stop"] = tuple(kw.get("stop") or ())
    return SamplingParams(**kw).validated()  # before loading: a bad flag costs no model load


def _load(load: dict, n_seq=1):
    """One slot per sample: the CLI serves one person."""
    from pocketlm.engine import load_engine

    backend = load["backend"]
    return load_engine(load["model"], None if backend == "auto" else backend, quantization=load["quantization"],
                       allow_pickle=load["allow_pickle"] or None, trust_remote_code=load["trust_remote_code"] or None,
                       n_seq=n_seq, n_ctx=4096)


def _split(kwargs):
    """(what model_options chose, the sampling options)."""
    load = {name: kwargs.pop(name) for name in ("model", "backend", "quantization", "allow_pickle", "trust_remote_code")}
    return load, kwargs


def async_command(f):
    @functools.wraps(f)
    def run(*args, **kwargs):
        return asyncio.run(f(*args, **kwargs))

    return run


@main.command()
@click.argument("prompt")
@model_options
@sampling_options
@click.option("-n", "--n", "n", type=int, default=1, show_default=True, help="Samples of the prompt.")
@click.option("--logprobs", type=int, default=None, help="With --json: log-probabilities and this many alternatives.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@async_command
async def generate(prompt, as_json, **kwargs):
    """Continue PROMPT, streaming the text as it is generated."""
    load, kwargs = _split(kwargs)
    params = sampling_params(**kwargs)
    engine = _load(load, n_seq=params.n)
    try:
        if as_json:
            result = await engine.complete(prompt, params)
            click.echo(json.dumps({"model": engine.info.name, "prompt": prompt, **asdict(result)},
                                  ensure_ascii=False, indent=2, default=_bytes_as_list))
            return
        from pocketlm.engine import SampleFinished, TextDelta

        async for event in engine.submit(prompt, params):
            if isinstance(event, TextDelta):
                click.echo(event.text, nl=False)
            elif isinstance(event, SampleFinished):
                click.echo()
                if params.n > 1:
                    click.echo("---")
    finally:
        engine.stop(0)


def _bytes_as_list(value):
    return list(value) if isinstance(value, bytes) else str(value)


@main.command()
@model_options
@sampling_options
@click.option("--system", default=None, help="System prompt.")
@async_command
async def chat(system, **kwargs):
    """Talk with the model; history is kept, the model's chat template is used. Ctrl-D quits."""
    from pocketlm.engine import TextDelta

    load, kwargs = _split(kwargs)
    params = sampling_params(**kwargs)
    engine = _load(load)
    messages = [{"role": "system", "content": system}] if system else []
    click.echo(f"Chatting with {engine.info.name}. Ctrl-D (or 'exit') quits.")
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, "> ")
            except EOFError:
                click.echo()
                return
            if line.strip() in ("exit", "quit"):
                return
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line})
            reply = ""
            async for event in engine.submit(engine.render_chat(messages), params):
                if isinstance(event, TextDelta):
                    reply += event.text
                    click.echo(event.text, nl=False)
            click.echo()
            messages.append({"role": "assistant", "content": reply})
    finally:
        engine.stop(0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json):
    """List the models available on this machine, with what it costs to run them."""
    from pocketlm.models.listing import available_models

    rows = available_models()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return
    header = f"{'MODEL':<28} {'PARAMS':>7} {'FILE':>8} {'QUANT':<8} {'CONTEXT':>7} {'RAM~':>8}  SOURCE"
    click.echo(header)
    for r in rows:
        click.echo(f"{r.name:<28} {r.params_label:>7} {_mb(r.file_size):>8} {r.quantization:<8} "
                   f"{r.n_ctx_train:>7} {_mb(r.ram_estimate):>8}  {r.source}")
    click.echo("\nRAM~ = weights + KV cache for 4,096 tokens. Quantization: fewer bits, smaller and faster, "
               "slightly less accurate (Q4 ~ 4.5 bits/weight, Q8 ~ 8.5, F16 = 16).")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n else "-"


def _add_package_commands():
    """Each package owns its commands; the CLI only lists them."""
    from pocketlm.api.commands import serve
    from pocketlm.models.commands import convert
    from pocketlm.training.commands import eval_command, finetune

    for command in (serve, convert, finetune, eval_command):
        main.add_command(command)


_add_package_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
