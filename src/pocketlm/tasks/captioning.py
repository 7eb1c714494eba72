"""Image captioning with transformers' image-to-text models (ViT-GPT2, BLIP, ...).

No package ships captioning weights, so captioning works when the user has a
model: a local directory or a hub id already in the local cache (``models.prepare``
prepares it as it does text models, and refuses anything but an image-to-text
model). The model is loaded once per name (``models.loaded``) and used under a
lock: one torch forward pass already uses every core.

Images are checked before they are decoded: Pillow's ``Image.open`` reads only
the header, so an image bomb (a small file that claims 100,000 x 100,000
pixels) is refused from its header dimensions before a single pixel is
decompressed.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
import warnings
from dataclasses import dataclass

from pocketlm.errors import InvalidParameter, ModelLoadError, ModelNotFound
from pocketlm.models.loaded import Loaded

FORMATS = ("PNG", "JPEG", "WEBP")
MAX_IMAGE_BYTES = 20 << 20  # 20 MiB (the server's --max-body-bytes applies first)
MAX_PIXELS = 40_000_000  # width x height
MAX_SIDE = 12_000  # pixels, either side
MAX_NEW_TOKENS = 64
NO_MODEL = (
    "no captioning model is configured: start the server with `pocketlm serve --caption-model DIR` "
    "(or set POCKETLM_CAPTION_MODEL=DIR), or pass --model DIR to `pocketlm caption`; DIR is a Hugging Face "
    "image-to-text model such as nlpconnect/vit-gpt2-image-captioning or Salesforce/blip-image-captioning-base"
)


# ----------------------------------------------------------------------------- images


def image_bytes(value: str, param: str = "image") -> bytes:
    """A data URL (``data:image/png;base64,...``) or plain base64 -> bytes."""
    value = value.strip()
    match = re.fullmatch(r"data:([\w/+.-]*)(;[\w=-]+)*;base64,(.*)", value, re.S)
    if value.startswith("data:") and not match:
        raise InvalidParameter(param, "a data URL must be base64: data:image/png;base64,...")
    payload = match.group(3) if match else value
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidParameter(param, f"the image is over {MAX_IMAGE_BYTES >> 20} MiB")
    try:
        return base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter(param, "is neither a data URL nor base64 image bytes") from None


def open_image(data: bytes, param: str = "image"):
    """Bytes of a PNG, JPEG or WebP within the limits -> an RGB PIL image; anything else -> InvalidParameter."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidParameter(param, "is empty: send a PNG, JPEG or WebP image")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidParameter(param, f"the image has {len(data)} bytes; at most {MAX_IMAGE_BYTES}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        except UnidentifiedImageError:
            raise InvalidParameter(param, "is not a PNG, JPEG or WebP image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidParameter(param, f"the image claims too many pixels; at most {MAX_PIXELS:,}") from None
        except (OSError, SyntaxError, ValueError) as e:  # a damaged header, an oversized metadata chunk
            raise InvalidParameter(param, f"is not a readable PNG, JPEG or WebP image ({e})") from None
        width, height = image.size
        if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
            raise InvalidParameter(
                param,
                f"the image is {width}x{height} pixels; at most {MAX_SIDE} per side and "
                f"{MAX_PIXELS:,} in all (resize it first)",
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise InvalidParameter(param, f"the {image.format} image is damaged or truncated ({e})") from None
    return image.convert("RGB")


# ----------------------------------------------------------------------------- the model


@dataclass
class Captioner:
    name: str
    model: object
    processor: object
    tokenizer: object
    lock: threading.Lock

    def caption(self, image, max_new_tokens: int = 30) -> str:
        import torch

        pixels = self.processor(images=image, return_tensors="pt").pixel_values
        with self.lock, torch.inference_mode():
            ids = self.model.generate(pixel_values=pixels, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
        return self.tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def load_captioner(name: str) -> Captioner:
    """A local directory or cached hub id with an image-to-text model, image processor and tokenizer."""
    from pocketlm.models.hf import inspect_hf_dir
    from pocketlm.models.prepare import prepare
    from pocketlm.models.registry import IMAGE_TO_TEXT

    prepared = prepare(name, "torch", tasks=(IMAGE_TO_TEXT,))
    hf = inspect_hf_dir(prepared.path)
    try:
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
    except ImportError:
        raise ModelLoadError("captioning needs the 'torch' extra: pip install 'pocketlm[torch,tasks]'") from None
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            str(hf.path), dtype=torch.float32, use_safetensors=not hf.pickle
        )
        processor = AutoImageProcessor.from_pretrained(str(hf.path))
        tokenizer = AutoTokenizer.from_pretrained(str(hf.path))
    except Exception as e:  # transformers raises many types; the user needs one line
        raise ModelLoadError(
            f"{hf.path} is not an image-to-text model transformers can load ({hf.architecture}): {e}"
        ) from None
    return Captioner(prepared.name, model.eval().requires_grad_(False), processor, tokenizer, threading.Lock())


_captioners: Loaded[str, Captioner] = Loaded()


def captioner(name: str | None, param: str = "model") -> Captioner:
    """The captioning model ``name``, loaded once per process; None: no model was given (an error saying how)."""
    if not name:
        raise InvalidParameter(param, NO_MODEL)
    return _captioners.get(name, lambda: load_captioner(name))


def loaded() -> list[str]:
    return _captioners.keys()


def model_name(name: str) -> str:
    """The name a captioning model answers to (``Captioner.name``): its directory's name for a local path."""
    from pocketlm.models.registry import served_name

    return served_name(name)


def check_model(asked: str | None, name: str) -> None:
    """Only the configured model ``name``: a client names no files (a path would load any model
    on the server's disk)."""
    if asked in (None, "", name, model_name(name)):
        return
    raise ModelNotFound(f"model '{asked}': this server captions with '{model_name(name)}' only")


def check_max_new_tokens(value: int) -> int:
    if not 1 <= value <= MAX_NEW_TOKENS:
        raise InvalidParameter("max_new_tokens", f"{value} is out of range; use 1 to {MAX_NEW_TOKENS}")
    return value
