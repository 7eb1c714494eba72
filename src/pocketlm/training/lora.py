"""LoRA: train small low-rank adapters instead of every weight, then keep them apart or merge them.

An adapter directory (adapter_config.json + adapter_model.safetensors + tokenizer)
is a few hundred KB to a few MB and names its base model by path
(``base_model_name_or_path``). ``merge_adapter`` folds it into the base weights
and writes a plain Hugging Face directory, which every pocketlm path (llama.cpp
conversion included) can serve.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from pocketlm.errors import InvalidParameter, ModelLoadError


def add_lora(model, cfg):
    """Wrap ``model`` with trainable LoRA adapters; every other weight is frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets) or None,  # None: peft's default for the architecture
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2 stores its projections transposed (Conv1D)
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        raise InvalidParameter("lora_targets", f"LoRA could not be attached to {model.config.model_type} ({e}); name "
                                               "the linear layers to adapt with --lora-target (e.g. q_proj)") from None


def is_adapter_dir(path: Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def merge_adapter(adapter_dir: str | Path, dst: str | Path) -> Path:
    """Write base + adapter, merged, as a plain HF directory ``dst`` (written aside, then renamed)."""
    from peft import PeftModel

    from pocketlm.models.hf import inspect_hf_dir, load_model, load_tokenizer

    adapter_dir, dst = Path(adapter_dir), Path(dst)
    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise ModelLoadError(f"{adapter_dir} is a LoRA adapter for base model {base!r}, which is not a directory on "
                             "this machine; copy the base model there, or fine-tune again with --merge")
    hf = inspect_hf_dir(base)
    model = PeftModel.from_pretrained(load_model(hf), str(adapter_dir)).merge_and_unload()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        model.save_pretrained(tmp)
        load_tokenizer(inspect_hf_dir(base)).save_pretrained(tmp)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
