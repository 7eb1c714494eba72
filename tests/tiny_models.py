"""Small random Hugging Face models for tests: real tokenizers, tiny weights.

No package ships GPT-2 weights and tests may not use the network, so tests build
their own models. They use the real tokenizers (GPT-2's byte-level BPE from
../shared/data, SmolLM2's from the embedded GGUF) so tokenization paths are the
real ones; only the weights are random.
"""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2_TOKENIZER = SHARED / "gpt2-tokenizer"
SHAKESPEARE = SHARED / "shakespeare"


def build_tiny_gpt2(out: Path, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 256, seed: int = 0) -> Path:
    """A randomly initialised GPT-2 with the real GPT-2 tokenizer, saved as safetensors."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    # transformers 5 takes the files as `vocab=` / `merges=` (other names are silently ignored).
    tokenizer = GPT2Tokenizer(vocab=str(GPT2_TOKENIZER / "vocab.json"), merges=str(GPT2_TOKENIZER / "merges.txt"))
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_llama(out: Path, *, n_layer: int = 2, hidden: int = 64, n_head: int = 4, n_kv_head: int = 2, max_positions: int = 512, seed: int = 0) -> Path:
    """A randomly initialised Llama with SmolLM2's real tokenizer (taken from the embedded GGUF)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pocketlm.models import resolve
    from pocketlm.models.convert import set_pre_tokenizer

    gguf = resolve(None).path
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    set_pre_tokenizer(tokenizer, "smollm")  # transformers drops SmolLM2's digit splitting when reading a GGUF
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=n_layer,
        num_attention_heads=n_head, num_key_value_heads=n_kv_head, max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
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
    config = GPTNeoConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=4,
                          attention_types=[[["global", "local"], 1]], max_position_embeddings=128, window_size=16,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    GPTNeoForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


_BUILT: dict[str, Path] = {}


def tiny_model_dir(kind: str) -> Path:
    """A tiny model built once per test process ("gpt2" or "llama"), in a temporary directory removed at exit."""
    import atexit
    import shutil
    import tempfile

    if kind not in _BUILT:
        root = Path(tempfile.mkdtemp(prefix=f"pocketlm-tiny-{kind}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        build = {"gpt2": build_tiny_gpt2, "llama": build_tiny_llama}[kind]
        _BUILT[kind] = build(root / f"tiny-{kind}")
    return _BUILT[kind]
