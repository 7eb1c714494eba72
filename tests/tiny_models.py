"""Small random Hugging Face models for tests: real tokenizers, tiny weights.

No package ships GPT-2 weights and tests may not use the network, so tests build
their own models. They use the real tokenizers (GPT-2's byte-level BPE, whose files
ship in the package; SmolLM2's from the embedded GGUF) so tokenization paths are the
real ones; only the weights are random.
"""

from __future__ import annotations

from pathlib import Path

from pocketlm import datasets

GPT2_TOKENIZER = datasets.gpt2_tokenizer_dir()


def build_tiny_gpt2(
    out: Path, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 256, seed: int = 0
) -> Path:
    """A randomly initialised GPT-2 with the real GPT-2 tokenizer, saved as safetensors."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    # transformers 5 takes the files as `vocab=` / `merges=` (other names are silently ignored).
    tokenizer = GPT2Tokenizer(vocab=str(GPT2_TOKENIZER / "vocab.json"), merges=str(GPT2_TOKENIZER / "merges.txt"))
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_llama(
    out: Path,
    *,
    n_layer: int = 2,
    hidden: int = 64,
    n_head: int = 4,
    n_kv_head: int = 2,
    max_positions: int = 512,
    seed: int = 0,
) -> Path:
    """A randomly initialised Llama with SmolLM2's real tokenizer (taken from the embedded GGUF)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pocketlm.models import resolve
    from pocketlm.models.vocab import set_pre_tokenizer

    gguf = resolve(None).path
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    set_pre_tokenizer(tokenizer, "smollm")  # transformers drops SmolLM2's digit splitting when reading a GGUF
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=n_kv_head,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_gpt_neo(out: Path, *, seed: int = 0) -> Path:
    """A tiny GPT-Neo (an architecture pocketlm does not convert to GGUF) with the GPT-2 tokenizer."""
    import torch
    from transformers import GPT2Tokenizer, GPTNeoConfig, GPTNeoForCausalLM

    tokenizer = GPT2Tokenizer(vocab=str(GPT2_TOKENIZER / "vocab.json"), merges=str(GPT2_TOKENIZER / "merges.txt"))
    config = GPTNeoConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        max_position_embeddings=128,
        window_size=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    GPTNeoForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


_BUILT: dict[str, Path] = {}


def tiny_model_dir(kind: str) -> Path:
    """A tiny model built once per test process ("gpt2", "llama" or "spm-llama"), in a temporary directory removed
    at exit. "spm-llama" has a vocabulary of 1,200 tokens: where the tokenizer is not what a test is about, its
    GGUF converts to a Hugging Face directory in under a second (SmolLM2's 49k vocabulary takes ~12 s there)."""
    import atexit
    import shutil
    import tempfile

    if kind not in _BUILT:
        root = Path(tempfile.mkdtemp(prefix=f"pocketlm-tiny-{kind}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        build = {"gpt2": build_tiny_gpt2, "llama": build_tiny_llama, "spm-llama": build_tiny_spm_llama}[kind]
        _BUILT[kind] = build(root / f"tiny-{kind}")
    return _BUILT[kind]


def build_tiny_spm_llama(out: Path, *, vocab_size: int = 1200, seed: int = 0) -> Path:
    """A tiny Llama with a TinyLlama/Llama-2 style tokenizer (SentencePiece BPE with byte fallback).

    No such tokenizer ships offline, so one is trained on Shakespeare (~1 s) and handed to
    transformers' LlamaTokenizerFast, which builds the same normalizer/decoder as for TinyLlama.
    """
    import json

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizerFast

    text = datasets.resolve("shakespeare:train").read_text(encoding="utf-8")[:300_000]
    bpe = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]  # Llama's first 259 ids
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    bpe.train_from_iterator([text[i : i + 2000] for i in range(0, len(text), 2000)], trainer)
    spec = json.loads(bpe.to_str())["model"]
    tokenizer = LlamaTokenizerFast(vocab=spec["vocab"], merges=[tuple(m) for m in spec["merges"]])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_captioner(out: Path, *, seed: int = 2, short: bool = False) -> Path:
    """A tiny random ViT encoder + GPT-2 decoder (the ViT-GPT2 captioning architecture), GPT-2's real tokenizer.

    Seed 2 writes words (some seeds end the caption at once: an empty caption is a correct but dull answer), one
    word repeated up to ``max_new_tokens``. ``short``: its generation config makes the end of text ever likelier
    from the second token (transformers' exponential length penalty), so captions are a few words, however many
    tokens are allowed: what the fuzz needs, whose describe requests would otherwise speak 30 words at a quarter
    of the speed, ~15 s each on one core."""
    import torch
    from transformers import (
        GPT2Config,
        GPT2Tokenizer,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = GPT2Tokenizer(vocab=str(GPT2_TOKENIZER / "vocab.json"), merges=str(GPT2_TOKENIZER / "merges.txt"))
    encoder = ViTConfig(
        image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    decoder = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = config.pad_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    if short:
        model.generation_config.exponential_decay_length_penalty = (1, 100.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def build_tiny_adapter(out: Path, base: Path, *, seed: int = 0) -> Path:
    """A LoRA adapter directory for the tiny GPT-2 ``base``, as `finetune --lora` writes one (adapter + tokenizer).

    Its B matrices are random rather than zero, so merging it changes the weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    config = LoraConfig(task_type="CAUSAL_LM", r=4, fan_in_fan_out=True, init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
