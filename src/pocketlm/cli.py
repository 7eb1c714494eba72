"""The `pocketlm` command line.

    pocketlm generate "The capital of France is" --temperature 0 --max-new-tokens 8
    pocketlm chat
    pocketlm models

Every flag has the same name as the HTTP field and the engine parameter it fills, and an
environment variable (``pocketlm.settings``). Commands of other packages (convert,
finetune, eval, ...) are added at the bottom.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import click

from pocketlm import server
from pocketlm.commandline import options
from pocketlm.engine import (
    Completion,
    Engine,
    EngineConfig,
    Limits,
    SampleFinished,
    SamplingParams,
    TextDelta,
    load_engine,
)
from pocketlm.errors import PocketLMError
from pocketlm.models.options import ModelOptions
from pocketlm.settings import Declared, setting
from pocketlm.tasks.settings import TaskSettings


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


def async_command(f):
    @functools.wraps(f)
    def run(*args, **kwargs):
        return asyncio.run(f(*args, **kwargs))

    return run


def _load(model_options: ModelOptions, engine_config: EngineConfig, n: int = 1) -> Engine:
    """One slot per sample: the CLI serves one person."""
    return load_engine(model_options, replace(engine_config, slots=n))


@dataclass(frozen=True)
class GenerateOptions(Declared):
    COMMAND: ClassVar[str] = "generate"

    json: bool = setting(False, help="Print the whole result as JSON (samples, tokens, logprobs, usage).")


def _model_and_sampling(f):
    """The flags generate and chat share: the model, its context and drafting, and how to sample."""
    f = options(SamplingParams, "sampling", limits=Limits())(f)
    f = options(EngineConfig, "engine_config", only=("n_ctx", "draft_tokens"))(f)
    return options(ModelOptions, "model_options")(f)


@main.command()
@click.argument("prompt")
@_model_and_sampling
@options(GenerateOptions, "own")
@async_command
async def generate(prompt, own: GenerateOptions, model_options, engine_config, sampling):
    """Continue PROMPT, streaming the text as it is generated."""
    engine = _load(model_options, engine_config, sampling.n)
    try:
        if own.json:
            result = await engine.complete(prompt, sampling)
            click.echo(
                json.dumps(
                    {"model": engine.info.name, "prompt": prompt, **asdict(result)},
                    ensure_ascii=False,
                    indent=2,
                    default=_bytes_as_list,
                )
            )
            return
        async for event in engine.submit(prompt, sampling):
            if isinstance(event, TextDelta):
                click.echo(event.text, nl=False)
            elif isinstance(event, SampleFinished):
                click.echo()
                if sampling.n > 1:
                    click.echo("---")
    finally:
        engine.stop(0)


def _bytes_as_list(value):
    return list(value) if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ChatOptions(Declared):
    COMMAND: ClassVar[str] = "chat"

    system: str | None = setting(None, help="System prompt.")


@main.command()
@_model_and_sampling
@options(ChatOptions, "own")
@async_command
async def chat(own: ChatOptions, model_options, engine_config, sampling):
    """Talk with the model; history is kept, the model's chat template is used. Ctrl-D quits."""
    engine = _load(model_options, engine_config, sampling.n)
    messages = [{"role": "system", "content": own.system}] if own.system else []
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
            reply = Completion.empty(sampling.n)
            async for event in engine.submit_chat(messages, sampling):
                reply.add(event)
                if isinstance(event, TextDelta) and event.index == 0:
                    click.echo(event.text, nl=False)
            click.echo()
            messages.append({"role": "assistant", "content": reply.samples[0].text})
    finally:
        engine.stop(0)


@dataclass(frozen=True)
class ModelsOptions(Declared):
    COMMAND: ClassVar[str] = "models"

    json: bool = setting(False, help="Print as JSON.")
    url: str | None = setting(
        None, help="List what a running server serves instead (http://127.0.0.1:5000): its models and their state."
    )
    api_key: str | None = setting(  # the server's variable: a listing asks the server it runs beside
        None,
        env="POCKETLM_API_KEY",
        help="With --url: the server's key, if it requires one (the first, when the variable lists several).",
    )


@main.command()
@options(TaskSettings, "tasks")  # the task models listed are those serve would run
@options(ModelsOptions, "own")
def models(tasks: TaskSettings, own: ModelsOptions):
    """List the models available on this machine, with what it costs to run them; with --url, a running server's."""
    if own.url:
        return _served_models(own)
    from pocketlm.models.listing import available_models
    from pocketlm.tasks.catalog import task_models

    rows, tasks = available_models(), task_models(tasks)
    if own.json:
        click.echo(
            json.dumps(
                [asdict(r) for r in rows] + [asdict(t) for t in tasks],
                indent=2,
                default=str,
            )
        )
        return
    header = f"{'MODEL':<28} {'KIND':<8} {'PARAMS':>7} {'FILE':>8} {'QUANT':<8} {'CONTEXT':>7} {'RAM~':>8}  SOURCE"
    click.echo(header)
    for r in rows:
        click.echo(
            f"{r.name:<28} {r.kind:<8} {r.params_label:>7} {_mb(r.file_size):>8} {r.quantization:<8} "
            f"{r.n_ctx_train or '-':>7} {_mb(r.ram_estimate):>8}  {r.source}"
        )
    click.echo(
        "\nKIND: instruct = tuned to follow chat turns (has a chat template); base = continues text, best with "
        "`generate` or /v1/completions; encoder = turns text into vectors (embeddings), generates nothing; "
        "speech = turns speech into text.\n"
        "RAM~ = weights + KV cache for 4,096 tokens. Quantization: fewer bits, smaller and faster, slightly less "
        "accurate (Q4 ~ 4.5 bits/weight, Q8 ~ 8.5, F16 = 16)."
    )
    click.echo(f"\n{'TASK MODEL':<28} {'TASK':<15} SOURCE")
    for t in tasks:
        click.echo(f"{t.id:<28} {t.task:<15} {t.source}")


def _served_models(own: ModelsOptions) -> None:
    """What a running server serves, from its GET /v1/models."""
    from pocketlm.deploy.insight import Client
    from pocketlm.models.listing import params_label

    api_key = own.api_key.split()[0] if own.api_key else None
    cards = Client(own.url, api_key, timeout=30).json("GET", "/v1/models")["data"]
    if own.json:
        click.echo(json.dumps(cards, indent=2))
        return
    click.echo(
        f"{'MODEL':<28} {'STATE':<10} {'KIND':<8} {'PARAMS':>7} {'FILE':>8} {'QUANT':<8} {'CONTEXT':>7} {'RAM~':>8}"
    )
    for card in cards:
        if card.get("state") is None:
            continue
        default = " (default)" if card.get("default") else ""
        label = params_label(card.get("parameters") or 0)
        click.echo(
            f"{card['id']:<28} {card['state']:<10} {card.get('kind') or '-':<8} {label:>7} "
            f"{_mb(card.get('size') or 0):>8} {card.get('quantization') or '-':<8} {card.get('n_ctx') or 0:>7} "
            f"{_mb(card.get('ram_estimate') or 0):>8}{default}"
        )
    tasks = [card for card in cards if card.get("state") is None]
    if tasks:
        click.echo(f"\n{'TASK MODEL':<28} TASK")
        for card in tasks:
            click.echo(f"{card['id']:<28} {card['task']}")
    click.echo("\nCONTEXT = tokens each request gets on that server; RAM~ = its estimate, what --memory-budget counts.")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n else "-"


@main.command()
@options(server.ServeSettings, "settings")
def serve(settings: server.ServeSettings):
    """Serve a model over HTTP: the seeds' POST /generate, OpenAI's /v1 routes, Hugging Face TGI's routes."""
    server.configure_logging(settings.log_format)
    sys.exit(server.run(settings))


def _add_package_commands():
    """Each package owns its commands; the CLI only lists them."""
    from pocketlm.deploy.commands import deploy, insight
    from pocketlm.evaluation.commands import eval_command
    from pocketlm.inspection.commands import inspect
    from pocketlm.models.commands import convert
    from pocketlm.tasks.commands import COMMANDS as task_commands
    from pocketlm.training.commands import finetune

    for command in (convert, finetune, eval_command, inspect, deploy, insight, *task_commands):
        main.add_command(command)


_add_package_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
