"""One preparation: from the model a user names to the files a backend loads.

    name --resolve--> files --merge adapter--> one set of weights --convert--> the backend's format

A model is named one way everywhere (``--model``): a built-in alias, a ``.gguf``
file, a Hugging Face directory, a hub id or a LoRA adapter directory. Everything
in pocketlm that loads a model asks ``prepare`` for it (serving and eval through
``backends.load_backend``, inspection, fine-tuning, captioning), so a name means
the same model everywhere and each conversion is made once, into the cache
(``models.conversions``, checked at every use). The rules, for the backend asked:

- llama.cpp runs GGUF. A GGUF runs as ``--quantization`` says, else as its alias
  asks (the embedded SmolLM2 and Gemma 3: q8_0), else as it is; a Hugging Face directory is
  converted to ``--quantization``, else to ``RUN_QUANTIZATION`` (q8_0).
- torch runs Hugging Face directories; a GGUF is converted to one (fp32).
- ``auto`` is llama.cpp when the model can run there, else torch; ``--backend
  llama.cpp`` on an architecture that does not convert is an error that says so.
- a LoRA adapter is merged into its base first, whatever the backend.
- a CTranslate2 directory (the Whisper speech recognizer) runs on CTranslate2 as it is.
- a model is for a task (text generation, embeddings, image-to-text, speech-to-text): a
  caller that cannot use it is refused before anything is converted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pocketlm.errors import ModelLoadError
from pocketlm.models.conversions import gguf_for, hf_dir_for, merged_for, requantized
from pocketlm.models.hf import is_adapter_dir
from pocketlm.models.options import ModelOptions
from pocketlm.models.quantization import RUN_QUANTIZATION
from pocketlm.models.registry import EMBEDDINGS, IMAGE_TO_TEXT, SPEECH_TO_TEXT, TEXT_GENERATION, ModelRef, resolve

# What a model of each task is, for the error that refuses one where another is needed.
_TASK_WORDS = {
    TEXT_GENERATION: "a text-generation model (a decoder: an alias such as smollm2-135m-instruct, a .gguf file "
    "or a Hugging Face causal LM)",
    EMBEDDINGS: "an embeddings model (an encoder: it turns text into vectors and writes none)",
    IMAGE_TO_TEXT: "an image-to-text model (a Hugging Face directory with an image processor, such as "
    "nlpconnect/vit-gpt2-image-captioning)",
    SPEECH_TO_TEXT: "a speech-to-text model (a Whisper for CTranslate2, such as the alias whisper-base)",
}


@dataclass(frozen=True)
class PreparedModel:
    """A model ready for one backend: the files it opens, and what to call the model."""

    name: str  # the id served to clients: the alias, the file's stem, the directory's name or the hub id
    path: Path  # a .gguf file for llama.cpp, a Hugging Face directory for torch, a CTranslate2 directory
    backend: Literal["llama.cpp", "torch", "ctranslate2"]
    source: str  # where it came from and what was made of it, in words
    task: str  # what the caller uses it for: text-generation (a causal decoder), embeddings (an encoder), ...

    @property
    def format(self) -> Literal["gguf", "hf", "ctranslate2"]:
        return {"llama.cpp": "gguf", "torch": "hf", "ctranslate2": "ctranslate2"}[self.backend]


def prepare(
    model: ModelOptions | str | Path | None = None,
    backend: str | None = None,
    *,
    tasks: tuple[str, ...] = (TEXT_GENERATION,),
) -> PreparedModel:
    """Make ``model`` ready for ``backend`` ("auto", "llama.cpp", "torch"; None: ``model.backend``).

    ``model``: the command's ``ModelOptions`` (its quantization, threads and opt-ins
    apply), or just a name (None: the embedded default). ``tasks``: what the caller
    can do with a model, in its order of preference.
    """
    options = model if isinstance(model, ModelOptions) else ModelOptions(model=None if model is None else str(model))
    if backend is not None:
        options = replace(options, backend=backend)  # checked as --backend is
    ref = resolve(options.model)
    task = _task(ref, tasks)
    path, steps = ref.path, [ref.source]
    if ref.format == "hf" and is_adapter_dir(path):
        path = merged_for(path, allow_pickle=options.allow_pickle)
        steps.append("merged into its base")
    path, chosen, step = _for_backend(ref, path, task, options)
    return PreparedModel(ref.name, path, chosen, ", ".join([*steps, *([step] if step else [])]), task)


def prepare_apart(
    model: ModelOptions | str | Path | None = None,
    backend: str | None = None,
    *,
    tasks: tuple[str, ...] = (TEXT_GENERATION,),
) -> PreparedModel:
    """``prepare``, in a child process: for a server that prepares a model while it serves others.

    A conversion is seconds to minutes of Python and numpy holding the interpreter's lock, during which
    the process's other threads (the engines of the models already loaded, the event loop) barely run.
    In a child process it costs them a core at most; what it makes lands in the cache, shared by both.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    # spawn, not fork: the server has threads (engines, llama.cpp's), which a fork would copy mid-step
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as child:
        return child.submit(prepare, model, backend, tasks=tasks).result()


def _task(ref: ModelRef, tasks: tuple[str, ...]) -> str:
    """The first of the caller's ``tasks`` the model can do."""
    for task in tasks:
        if task in ref.tasks:
            return task
    raise ModelLoadError(
        f"model '{ref.name}' is {_TASK_WORDS[ref.tasks[0]]}; this needs "
        + " or ".join(_TASK_WORDS[task] for task in tasks)
    )


def _for_backend(ref: ModelRef, path: Path, task: str, options: ModelOptions) -> tuple[Path, str, str | None]:
    """(what the backend opens, which backend, the conversion made for it in words or None)."""
    quantization = options.quantization or ref.run_quantization
    if ref.format == "ctranslate2":
        if options.backend != "auto":
            raise ModelLoadError(
                f"model '{ref.name}' is {_TASK_WORDS[task]}, which runs on CTranslate2 only: leave --backend as auto"
            )
        return path, "ctranslate2", None
    if ref.format == "gguf" and options.backend == "torch":
        return hf_dir_for(path), "torch", "converted to a Hugging Face directory"
    if ref.format == "gguf":
        served = requantized(path, quantization, n_threads=options.threads) if quantization else path
        return served, "llama.cpp", f"requantized to {quantization}" if served != path else None
    if task != TEXT_GENERATION:  # pocketlm converts decoders only
        if options.backend == "llama.cpp":
            raise ModelLoadError(
                f"model '{ref.name}' is {_TASK_WORDS[task]}, which pocketlm runs on torch only: use `--backend torch`"
            )
        return path, "torch", None
    if options.backend != "torch":
        quantization = quantization or RUN_QUANTIZATION
        gguf = gguf_for(
            path, required=options.backend == "llama.cpp", quantization=quantization, allow_pickle=options.allow_pickle
        )
        if gguf is not None:
            return gguf, "llama.cpp", f"converted to GGUF {quantization}"
    return path, "torch", None
