"""Hugging Face model directories: check them before anything loads them.

A directory is checked for what users get wrong most often, each with an error
that says how to fix it:

- weights: safetensors only by default. ``.bin`` / ``.pt`` checkpoints are
  pickles, and unpickling runs arbitrary code from the file, so they load only
  with an explicit opt-in (``allow_pickle=True``, from ``--allow-pickle`` or
  ``POCKETLM_ALLOW_PICKLE=1``, see ``pocketlm.models.options``);
- a truncated or corrupt ``.safetensors`` file (an interrupted download), found
  from its header alone, without reading the weights;
- missing tokenizer files (fine-tuning scripts often save only the model);
- code shipped with the model (``auto_map``) runs only with ``trust_remote_code``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from pocketlm.errors import ModelLoadError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Any one of these sets is enough for AutoTokenizer to build a tokenizer.
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",), ("vocab.txt",))


@dataclass(frozen=True)
class HFDir:
    """A checked Hugging Face model directory."""

    path: Path
    config: dict
    architecture: str  # e.g. "GPT2LMHeadModel", "LlamaForCausalLM"
    model_type: str  # e.g. "gpt2", "llama"
    weights: tuple[Path, ...]
    pickle: bool  # the weights are pickle checkpoints (only with allow_pickle)

    @property
    def needs_remote_code(self) -> bool:
        return "auto_map" in self.config


def model_files(hf: HFDir) -> list[Path]:
    """The files that decide the model's outputs: config, tokenizer, chat template, weights (for cache keys)."""
    small = (p for p in hf.path.iterdir() if p.is_file() and p.suffix in (".json", ".txt", ".model", ".jinja"))
    return sorted({*hf.weights, *small})


def is_adapter_dir(path: str | Path) -> bool:
    """A LoRA adapter alone; a full model directory that also keeps an adapter config is served as it is."""
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def inspect_hf_dir(path: str | Path, *, allow_pickle: bool = False) -> HFDir:
    """Check ``path`` is a loadable HF causal-LM directory; raise ModelLoadError saying how to fix it if not."""
    path = Path(path)
    config = read_config(path)
    weights, is_pickle = _find_weights(path, allow_pickle)
    for file in weights:
        if file.suffix == ".safetensors":
            check_safetensors(file)
    check_tokenizer_files(path)
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    return HFDir(path, config, architectures[0], config.get("model_type", ""), tuple(weights), is_pickle)


def read_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise ModelLoadError(
            f"{path} has no config.json: a Hugging Face model directory needs config.json, "
            "weights (*.safetensors) and tokenizer files; save it with `model.save_pretrained(DIR)`"
        )
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{file} is not valid JSON ({e}); re-download or re-save the model") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{file} must hold a JSON object; re-download or re-save the model")
    return config


def _find_weights(path: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    safetensors = _indexed(path, "model.safetensors.index.json") or sorted(path.glob("*.safetensors"))
    if safetensors:
        return safetensors, False
    pickles = _indexed(path, "pytorch_model.bin.index.json") or sorted(
        p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name != "training_args.bin"
    )
    if not pickles:
        raise ModelLoadError(
            f"{path} has no weights: expected model.safetensors (or sharded *.safetensors); "
            "save the model with `model.save_pretrained(DIR)`"
        )
    if not allow_pickle:
        names = ", ".join(p.name for p in pickles[:3])
        raise ModelLoadError(
            f"{path} has only pickle checkpoints ({names}). Loading a pickle runs any code hidden in the file, so "
            "pocketlm refuses it by default. Convert it once to safetensors "
            "(`AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR)` in a sandbox you trust), or, only if "
            "you trust where the file came from, pass --allow-pickle (or set POCKETLM_ALLOW_PICKLE=1)"
        )
    return pickles, True


def _indexed(path: Path, index_name: str) -> list[Path]:
    """The shard files a ``*.index.json`` names; each must exist."""
    index = path / index_name
    if not index.is_file():
        return []
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{index} is damaged ({e}); re-download the model") from None
    shards = [path / name for name in sorted(set(weight_map.values()))]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise ModelLoadError(
            f"{path} is missing weight shards {', '.join(missing)} listed in {index_name}; "
            "the download is incomplete: download it again"
        )
    return shards


def check_safetensors(file: Path) -> None:
    """Read only the header: its tensors must end exactly where the file ends."""
    size = file.stat().st_size
    fix = "the file is incomplete or corrupt (an interrupted download or copy?): download or save it again"
    try:
        n, tensors = _safetensors_header(file)
        end = max((t["data_offsets"][1] for t in tensors.values()), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise ModelLoadError(f"{file} is not a valid safetensors file ({e}); {fix}") from None
    if 8 + n + end != size:
        raise ModelLoadError(
            f"{file} is truncated: its header describes {8 + n + end:,} bytes but the file has {size:,}; {fix}"
        )


def _safetensors_header(file: Path) -> tuple[int, dict]:
    """(header size, tensor name -> {dtype, shape, data_offsets}) of a safetensors file.

    Layout: an 8-byte little-endian header size N, N bytes of JSON mapping each
    tensor to ``data_offsets`` [begin, end) in the data that follows.
    """
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("shorter than its 8-byte header size")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ValueError(f"header says {n} bytes but the file has {size - 8} after it")
        header = json.loads(f.read(n))
    return n, {name: t for name, t in header.items() if name != "__metadata__"}


def weights_summary(hf: HFDir) -> tuple[int, str]:
    """(parameter count, the dtype most of them are stored in, e.g. "F32"), from the safetensors headers alone."""
    counts: dict[str, int] = {}
    for file in hf.weights:
        for t in _safetensors_header(file)[1].values():
            counts[t["dtype"]] = counts.get(t["dtype"], 0) + math.prod(t["shape"])
    return sum(counts.values()), max(counts, key=counts.get, default="-")


def check_tokenizer_files(path: Path) -> None:
    if any(all((path / name).is_file() for name in names) for names in TOKENIZER_FILE_SETS):
        return
    raise ModelLoadError(
        f"{path} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt, or tokenizer.model). "
        "Training scripts often save only the model: copy the tokenizer of the model you started from, e.g. "
        "`AutoTokenizer.from_pretrained(BASE).save_pretrained(DIR)`"
    )


def load_tokenizer(hf: HFDir, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(hf.path), trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers raises many types; the user needs one message
        raise ModelLoadError(f"could not load the tokenizer of {hf.path}: {e}") from None


def load_model(
    hf: HFDir,
    *,
    trust_remote_code: bool = False,
    dtype=None,
    attn_implementation: str | None = None,
    causal: bool = True,
):
    """``AutoModelForCausalLM`` on the checked directory, eval mode, no gradients.

    ``attn_implementation="eager"``: attention computed as an explicit softmax, so its weights can be
    returned (pocketlm.inspection). ``causal=False``: the bare ``AutoModel`` (an encoder such as BERT).
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    if hf.needs_remote_code and not trust_remote_code:
        raise ModelLoadError(
            f"{hf.path} ships its own Python code (config.json has auto_map) for '{hf.architecture}'. pocketlm "
            "does not run downloaded code by default: read that code first, then pass --trust-remote-code "
            "(or set POCKETLM_TRUST_REMOTE_CODE=1)"
        )
    try:
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(
            str(hf.path),
            dtype=dtype or torch.float32,
            trust_remote_code=trust_remote_code,
            use_safetensors=not hf.pickle,
            **extra,
        )
    except Exception as e:
        raise ModelLoadError(f"transformers could not load {hf.path} ({hf.architecture}): {e}") from None
    return model.eval().requires_grad_(False)


# Files worth downloading: weights as safetensors only (pickles are never fetched), config, tokenizer.
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "merges.txt", "vocab.txt", "*.jinja"]


def download_hub_model(repo_id: str) -> Path | None:
    """Download a hub model into the Hugging Face cache; None when offline, disabled, or not on the hub.

    Never called by tests (they set POCKETLM_OFFLINE=1): pocketlm must work with no network at all.
    """
    if _env_flag("HF_HUB_OFFLINE") or _env_flag("POCKETLM_OFFLINE") or not _looks_like_hub_id(repo_id):
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=5))
    except Exception:  # no network, unknown repo, gated repo: all mean "not available here"
        return None
    return path if (path / "config.json").is_file() else None


def _looks_like_hub_id(name: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name) is not None and not name.endswith(".gguf")
