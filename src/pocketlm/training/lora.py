"""LoRA: train small low-rank adapters instead of every weight.

The adapter directory this writes (adapter_config.json + adapter_model.safetensors
+ tokenizer) names its base model by path; ``pocketlm.models.adapters`` serves it
as base + adapter, and ``--merge`` folds it into the weights at the end of training.
"""

from __future__ import annotations

from pocketlm.errors import InvalidParameter


def add_lora(model, cfg):
    """Wrap ``model`` with trainable LoRA adapters; every other weight is frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets) or None,  # None: peft's default for the architecture
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2 stores its projections transposed (Conv1D)
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        raise InvalidParameter(
            "lora_targets",
            f"LoRA could not be attached to {model.config.model_type} ({e}); name "
            "the linear layers to adapt with --lora-target (e.g. q_proj)",
        ) from None
