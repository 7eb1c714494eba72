"""The four views as PNG pictures (matplotlib, no display needed).

Each function takes what the matching view returns and gives back the PNG's
bytes (``write_png`` puts them in a file); the pictures of docs/inspect.md are
made by these functions on SmolLM2 (benchmarks/inspect_views.py --images).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pocketlm.files import atomic_path

DPI = 72


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt, plt.subplots(*args, **kwargs)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_png(data: bytes, path) -> Path:
    path = Path(path)
    with atomic_path(path) as partial:  # never a half-written picture under the final name
        partial.write_bytes(data)
        partial.chmod(0o644)  # a picture to share, not a secret
    return path


def _label(text: str) -> str:
    """A token as a readable label: visible spaces and newlines, no mathtext, emoji by code point (no font has them)."""
    return _printable(text).replace("\n", "\\n").replace(" ", "\u2423").replace("$", r"\$") or "\u2205"


def _printable(text: str) -> str:
    return "".join(f"U+{ord(c):X}" if ord(c) > 0xFFFF else c for c in text)


def tokens_png(tokenizations) -> bytes:
    """One row per tokenizer: its tokens as boxes, with ids below and the count on the left."""

    def cell(t, kind) -> float:  # the wider of the token and its id, in characters
        return max(len(_token_label(t, kind)), 0.8 * len(str(t.id))) + 1.2

    width = max(sum(cell(t, tz.kind) for t in tz.tokens) for tz in tokenizations)
    plt, (fig, ax) = _figure(figsize=(min(4 + width * 0.13, 40), 0.9 * len(tokenizations) + 0.6))
    colors = plt.get_cmap("Pastel1").colors
    for row, tz in enumerate(tokenizations):
        y, x = len(tokenizations) - row - 1, 0.0
        ax.text(-1, y, f"{tz.tokenizer}\n{tz.count} tokens", ha="right", va="center", fontsize=10)
        for k, t in enumerate(tz.tokens):
            ax.text(
                x,
                y,
                _token_label(t, tz.kind),
                ha="left",
                va="center",
                family="monospace",
                fontsize=10,
                bbox=dict(
                    boxstyle="round,pad=0.25", fc="#dddddd" if t.special else colors[k % len(colors)], ec="#999999"
                ),
            )
            ax.text(x, y - 0.38, str(t.id), ha="left", va="center", family="monospace", fontsize=7, color="#555555")
            x += cell(t, tz.kind)
    ax.set_xlim(-1, width * 1.1 + 1)
    ax.set_ylim(-0.7, len(tokenizations) - 0.4)
    ax.axis("off")
    ax.set_title(f"Tokens of {_printable(tokenizations[0].text)!r}", fontsize=11, loc="left")
    return _png(plt, fig)


def _token_label(t, kind: str) -> str:
    if t.partial:
        return f"<{t.bytes}>"
    return _label(t.piece if t.special or kind == "WordPiece" else t.text)  # WordPiece's ## says "inside a word"


def positions_png(pe: np.ndarray, scheme, *, dims=(4, 5, 6, 7)) -> bytes:
    """Left: the sinusoidal formula (heatmap, a few dimensions as curves). Right: the model's own scheme."""
    plt, (fig, axes) = _figure(2, 2, figsize=(10, 6.5))
    n, d = pe.shape
    im = axes[0, 0].imshow(pe, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
    axes[0, 0].set(
        title=f"Sinusoidal (Vaswani et al. 2017), d={d}:\n"
        r"PE(pos,2i)=sin(pos/10000$^{2i/d}$), PE(pos,2i+1)=cos(pos/10000$^{2i/d}$)",
        xlabel="dimension",
        ylabel="position",
    )
    fig.colorbar(im, ax=axes[0, 0])
    for k in dims:
        if k < d:
            axes[1, 0].plot(np.arange(n), pe[:, k], label=f"dim {k}")
    axes[1, 0].set(title="Sinusoidal: a few dimensions along the positions", xlabel="position", ylabel="value")
    axes[1, 0].legend(loc="upper right", fontsize=8)
    _model_scheme(fig, axes[0, 1], axes[1, 1], scheme, n)
    fig.tight_layout()
    return _png(plt, fig)


def _model_scheme(fig, top, bottom, scheme, n: int) -> None:
    if scheme.kind == "learned":
        table = scheme.table[:n]
        limit = float(np.abs(table).max())
        im = top.imshow(table, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest")
        top.set(
            title="This model: LEARNED position embeddings\n(trained vectors, not a formula)",
            xlabel="dimension",
            ylabel="position",
        )
        fig.colorbar(im, ax=top)
        im = bottom.imshow(scheme.similarity[:n, :n], cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
        bottom.set(title="Learned: cosine similarity between positions", xlabel="position", ylabel="position")
        fig.colorbar(im, ax=bottom)
    elif scheme.kind == "rotary":
        from pocketlm.inspection.positions import rotary_angles

        im = top.imshow(rotary_angles(scheme, n), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
        top.set(
            title=f"This model: ROTARY (RoPE), base {scheme.base:g}\n"
            r"cos(pos $\cdot$ $\theta_i$): how far each pair of query/key dimensions turns",
            xlabel="pair of dimensions i",
            ylabel="position",
        )
        fig.colorbar(im, ax=top)
        bottom.semilogy(np.arange(scheme.inv_freq.size), scheme.wavelengths, marker=".")
        bottom.set(
            title=r"Rotary: positions per full turn, 2$\pi$/$\theta_i$",
            xlabel="pair of dimensions i",
            ylabel="positions (log scale)",
        )
    else:
        for ax in (top, bottom):
            ax.axis("off")
        top.text(0.5, 0.5, scheme.description, ha="center", va="center", wrap=True)


def attention_grid_png(amap, *, cell: float = 0.28) -> bytes:
    """Every chosen layer (rows) x head (columns) as one small heatmap, drawn as a single image."""
    n_layers, n_heads, t, _ = amap.weights.shape
    gap = max(1, t // 8)
    mosaic = np.full((n_layers * (t + gap) - gap, n_heads * (t + gap) - gap), np.nan)
    for i in range(n_layers):
        for j in range(n_heads):
            mosaic[i * (t + gap) : i * (t + gap) + t, j * (t + gap) : j * (t + gap) + t] = amap.weights[i, j]
    plt, (fig, ax) = _figure(figsize=(max(4.0, n_heads * cell * 4), max(3.0, n_layers * cell * 4)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    ax.imshow(np.sqrt(mosaic), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")  # sqrt: faint weights show
    ax.set_xticks([j * (t + gap) + t / 2 for j in range(n_heads)], [f"h{h}" for h in amap.heads], fontsize=7)
    ax.set_yticks([i * (t + gap) + t / 2 for i in range(n_layers)], [f"L{layer}" for layer in amap.layers], fontsize=7)
    ax.set_title(f"Attention, {t} tokens: layers x heads (each cell: query rows, key columns; sqrt scale)", fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return _png(plt, fig)


def attention_head_png(amap, layer: int, head: int) -> bytes:
    """One head as a heatmap with the tokens on both axes."""
    w = amap.weights[amap.layers.index(layer), amap.heads.index(head)]
    t = len(amap.tokens)
    size = min(4 + t * 0.22, 24)
    plt, (fig, ax) = _figure(figsize=(size, size))
    im = ax.imshow(w, cmap="viridis", vmin=0, vmax=float(w.max()), interpolation="nearest")
    labels = [_label(x) for x in amap.tokens]
    ax.set_xticks(range(t), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(t), labels, fontsize=8)
    ax.set(
        xlabel="key (attended to)",
        ylabel="query (attending)",
        title=f"Layer {layer}, head {head}" + (" (decoder: only earlier tokens)" if amap.causal else " (encoder)"),
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(plt, fig)


def next_png(result) -> bytes:
    """Top candidates before and after the sampling parameters, and the logit lens."""
    plt, (fig, axes) = _figure(
        1, 3, figsize=(16, max(5, 0.22 * len(result.lens) + 1.5)), gridspec_kw={"width_ratios": [1, 1, 1.4]}
    )
    slots = max(len(result.before), len(result.after))  # same bar height on both sides
    for ax, rows, title in (
        (axes[0], result.before, "model's distribution (softmax)"),
        (axes[1], result.after, f"after the sampling parameters ({result.kept} tokens kept)"),
    ):
        y = [slots - 1 - k for k in range(len(rows))]
        ax.barh(y, [c.probability for c in rows], color="#4c72b0")
        ax.set_yticks(y, [_label(c.text) for c in rows], fontsize=9)
        ax.set(xlim=(0, 1.1), ylim=(-0.5, slots - 0.5), xlabel="probability", title=title)
        for k, c in zip(y, rows):
            ax.text(c.probability + 0.01, k, f"{c.probability:.3f}", va="center", fontsize=8)
    lens = result.lens
    top1 = np.array([[c.probability for c in layer] for layer in lens])
    ax = axes[2]
    ax.imshow(top1, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    for i, layer in enumerate(lens):
        for j, c in enumerate(layer):
            ax.text(
                j,
                i,
                f"{_label(c.text)[:12]} {c.probability:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if c.probability > 0.6 else "black",
            )
    ax.set_yticks(range(len(lens)), ["emb"] + [str(i) for i in range(1, len(lens))], fontsize=7)
    ax.set_xticks(range(top1.shape[1]), [f"#{j + 1}" for j in range(top1.shape[1])])
    ax.set(ylabel="layer", title="logit lens: each layer's top tokens")
    fig.tight_layout()
    return _png(plt, fig)
