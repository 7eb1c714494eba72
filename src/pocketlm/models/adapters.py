"""LoRA adapter directories, served as base + adapter.

``pocketlm finetune --lora`` without ``--merge`` writes only the adapter
(adapter_config.json + adapter_model.safetensors + tokenizer): a few MB that
name their base model by path. A backend needs one set of weights, so the
adapter is folded into the base once (peft's ``merge_and_unload``) and kept as
a plain Hugging Face directory in the conversion cache, keyed by the adapter's
and the base's content: the next start reuses it, and llama.cpp converts it
like any other model (``conversions.merged_for`` keeps the merge).
"""

from __future__ import annotations

import json
from pathlib import Path

from pocketlm.errors import ModelLoadError
from pocketlm.files import atomic_path
from pocketlm.models.hf import HFDir, inspect_hf_dir, load_model, load_tokenizer


def adapter_base(adapter_dir: Path, *, allow_pickle: bool = False) -> HFDir:
    """The base model directory the adapter was trained on, checked like any model directory."""
    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise ModelLoadError(
            f"{adapter_dir} is a LoRA adapter for base model {base!r}, which is not a directory on "
            "this machine; copy the base model there, or fine-tune again with --merge"
        )
    return inspect_hf_dir(base, allow_pickle=allow_pickle)


def merge_adapter(adapter_dir: str | Path, dst: str | Path, *, allow_pickle: bool = False) -> Path:
    """Write base + adapter, merged, as a plain HF directory ``dst`` (written aside, then renamed)."""
    from peft import PeftModel

    adapter_dir, dst = Path(adapter_dir), Path(dst)
    base = adapter_base(adapter_dir, allow_pickle=allow_pickle)
    model = PeftModel.from_pretrained(load_model(base), str(adapter_dir)).merge_and_unload()
    with atomic_path(dst, directory=True) as tmp:
        model.save_pretrained(tmp)
        load_tokenizer(base).save_pretrained(tmp)
    return dst
