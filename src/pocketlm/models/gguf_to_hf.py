"""A GGUF file as a Hugging Face directory, for what needs transformers rather than llama.cpp.

The torch backend, fine-tuning and looking inside a model all load Hugging Face
directories. transformers reads a GGUF and dequantizes it to fp32; what is left
here is undoing what it gets wrong or refuses: the pre-tokenizer it does not read
from the file, and the "quantized" mark that stops ``save_pretrained``. The
directory is written aside and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path

from pocketlm.errors import InvalidParameter, ModelLoadError
from pocketlm.files import atomic_path
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.vocab import set_pre_tokenizer


def gguf_to_hf(src: str | Path, dst: str | Path) -> Path:
    """Write the GGUF file ``src`` as an fp32 safetensors HF directory ``dst`` (which must not exist)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, dst = Path(src), Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InvalidParameter("dst", f"{dst} exists and is not empty; choose a new directory")
    info = read_gguf_info(src)  # clear errors for a missing / non-GGUF / damaged file
    try:
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    except Exception as e:
        raise ModelLoadError(f"transformers cannot read {src} (architecture '{info.architecture}'): {e}") from None
    set_pre_tokenizer(tokenizer, info.metadata.get("tokenizer.ggml.pre"))
    # The model remembers it came from a GGUF "quantizer", and save_pretrained refuses to serialise such a
    # model; the weights are plain fp32 now, so forget it.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(dst, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return dst
