"""How a model knows where each token is.

Attention alone does not see order, so every Transformer adds position
information. Three schemes, never to be confused:

- **sinusoidal** ("Attention Is All You Need", Vaswani et al. 2017): a fixed
  formula added to the token embeddings,
  ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d))``;
- **learned** (GPT-2's ``wpe``, BERT's ``position_embeddings``): one trained vector
  per position, added to the token embeddings; nothing forces them to be periodic;
- **rotary** (RoPE: Llama, SmolLM2, Gemma): nothing is added; queries and keys are
  rotated by ``pos * theta_i`` in pairs of dimensions, with frequencies
  ``theta_i = base^(-2i/d_head)``, so attention scores depend on relative distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pocketlm.errors import InvalidParameter

MAX_POSITIONS = 4096
MAX_DIM = 4096
SINUSOIDAL_FORMULA = "PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))"


def sinusoidal(n_positions: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """The fixed encoding of "Attention Is All You Need": [n_positions, d_model]."""
    _check_size("positions", n_positions, MAX_POSITIONS)
    _check_size("dim", d_model, MAX_DIM)
    pos = np.arange(n_positions, dtype=np.float64)[:, None]
    i2 = np.arange(0, d_model, 2, dtype=np.float64)[None, :]  # the 2i of the formula
    angles = pos / base ** (i2 / d_model)
    pe = np.empty((n_positions, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe


@dataclass
class PositionScheme:
    """A model's own way of encoding positions."""

    kind: str  # "learned", "rotary" or "none" (never "sinusoidal" unless the model uses the formula)
    description: str
    table: np.ndarray | None = None  # learned: [positions, d_model], the trained vectors
    similarity: np.ndarray | None = None  # learned: cosine similarity between positions' vectors
    inv_freq: np.ndarray | None = None  # rotary: theta_i, radians per position, per pair of dimensions
    base: float | None = None  # rotary: the base of theta_i = base^(-2i/d_head)

    @property
    def wavelengths(self) -> np.ndarray | None:
        """Rotary: positions per full turn of each pair (2 pi / theta_i)."""
        return None if self.inv_freq is None else 2 * np.pi / self.inv_freq


def model_positions(subject, n_positions: int = 64) -> PositionScheme:
    """Read the position scheme from the model's own weights and buffers."""
    _check_size("positions", n_positions, MAX_POSITIONS)
    model = subject.model
    for name, param in model.named_parameters():
        if name.endswith(("wpe.weight", "position_embeddings.weight", "embed_positions.weight")):
            table = param.detach().float().numpy()[:n_positions]
            unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
            return PositionScheme(
                "learned",
                f"learned position embeddings ({name}): one trained vector of {table.shape[1]} numbers "
                f"per position, added to the token embedding; {param.shape[0]} positions at most",
                table=table,
                similarity=unit @ unit.T,
            )
    for name, buffer in model.named_buffers():
        if name.endswith("inv_freq"):
            inv_freq = buffer.detach().double().numpy()
            base = _rope_base(subject.config)
            return PositionScheme(
                "rotary",
                f"rotary position embedding (RoPE): queries and keys rotated by position x theta_i in "
                f"{inv_freq.size} pairs of dimensions per head, theta_i = {base:g}^(-2i/{2 * inv_freq.size})",
                inv_freq=inv_freq,
                base=base,
            )
    return PositionScheme("none", f"{type(model).__name__} has no position embedding pocketlm recognises")


def rotary_angles(scheme: PositionScheme, n_positions: int) -> np.ndarray:
    """cos(pos * theta_i): how far each pair of dimensions has turned at each position."""
    pos = np.arange(n_positions, dtype=np.float64)[:, None]
    return np.cos(pos * scheme.inv_freq[None, :])


def _rope_base(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def _check_size(param: str, value, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise InvalidParameter(param, f"must be an integer from 1 to {high}, got {value!r}")
