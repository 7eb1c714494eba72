"""The tasks on the command line.

    pocketlm translate "Bom dia a todos" --to en
    pocketlm speak "Hello there" -o hello.wav
    pocketlm caption photo.jpg --model ./vit-gpt2-image-captioning
    pocketlm describe photo.jpg --model ./vit-gpt2-image-captioning -o description.wav
    pocketlm embed "The cat sat on the mat." "A dog slept on the rug."
    pocketlm transcribe hello.wav --format srt

(``pocketlm serve --caption-model DIR`` is a server setting, declared with the other serve flags.)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import click

from pocketlm.commandline import options
from pocketlm.errors import InvalidParameter
from pocketlm.files import atomic_path
from pocketlm.settings import Declared, setting


def _text_argument(text: str) -> str:
    """'-' reads the text from standard input."""
    return sys.stdin.read() if text == "-" else text


@dataclass(frozen=True)
class TranslateOptions(Declared):
    COMMAND: ClassVar[str] = "translate"

    to: str = setting(help="Target language: en or pt (pt-BR, pt_BR, pb accepted).")
    from_: str = setting("auto", help="Source language: en, pt or auto (detected).")
    html: bool = setting(False, help="TEXT is HTML: keep the tags, translate the text between them.")


@click.command()
@click.argument("text")
@options(TranslateOptions, "own")
def translate(text, own: TranslateOptions):
    """Translate TEXT between English and Brazilian Portuguese ('-' reads standard input)."""
    from pocketlm.tasks import translation

    text = _text_argument(text)
    translation.check_texts([text], param="TEXT")
    target = translation.canonical_language(own.to, "--to")
    source = translation.canonical_language(own.from_, "--from", allow_auto=True)
    if source == "auto":
        source, _ = translation.detect_source(text, param="TEXT")
    click.echo(translation.translator().translate_many([text], source, target, html_format=own.html)[0])


def _format_of(out: Path, given: str | None) -> str:
    from pocketlm.tasks import speech

    response_format = given or out.suffix.lstrip(".").lower() or "wav"
    if response_format not in speech.FORMATS:
        raise InvalidParameter(
            "--format", f"cannot tell the audio format from '{out.name}'; give --format ({', '.join(speech.FORMATS)})"
        )
    return response_format


def _write(out: Path, data: bytes) -> None:
    import os

    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(out) as tmp:  # an interrupted run leaves no half-written audio file
        tmp.write_bytes(data)
        tmp.chmod(0o666 & ~umask)  # a user's file, not the scratch file's private 0600


@dataclass(frozen=True)
class SpeakOptions(Declared):
    COMMAND: ClassVar[str] = "speak"

    output: Path = setting(short="-o", help="Audio file to write.")
    voice: str | None = setting(None, help="joe (English) or joe-pt-br (Portuguese); default: joe.")
    speed: float = setting(1.0, help="0.25 to 4.")
    format: str | None = setting(None, help="wav, mp3, flac or pcm (default: from the file's suffix).")


@click.command()
@click.argument("text")
@options(SpeakOptions, "own")
def speak(text, own: SpeakOptions):
    """Speak TEXT into an audio file ('-' reads standard input)."""
    from pocketlm.tasks import speech

    text = _text_argument(text)
    response_format = _format_of(own.output, own.format)
    voice = own.voice or "joe"
    speech.check_request(text, voice, own.speed, response_format, input_param="TEXT")
    speaker = speech.speaker()
    samples = speaker.synthesize(text, voice, own.speed)
    _write(own.output, speech.encode(samples, speaker.sample_rate, response_format))
    click.echo(f"{own.output}: {len(samples) / speaker.sample_rate:.1f} s of audio, voice {voice}", err=True)


def _image(path: Path):
    from pocketlm.tasks import captioning

    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidParameter("IMAGE", f"cannot read {path}: {e.strerror}") from None
    return captioning.open_image(data, param="IMAGE")


@dataclass(frozen=True)
class Captioner(Declared):
    """The image-to-text model of `caption` and `describe`: the server's --caption-model, by its variable."""

    model: str | None = setting(
        None,
        short="-m",
        env="POCKETLM_CAPTION_MODEL",
        help="Image-to-text model: a Hugging Face directory or cached hub id (ViT-GPT2, BLIP).",
    )


@dataclass(frozen=True)
class CaptionOptions(Declared):
    COMMAND: ClassVar[str] = "caption"

    max_new_tokens: int = setting(30, help="Length of the caption, in tokens at most.")


_IMAGE = click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))


@click.command()
@_IMAGE
@options(Captioner, "captioner")
@options(CaptionOptions, "own")
def caption(image, captioner: Captioner, own: CaptionOptions):
    """Describe IMAGE (PNG, JPEG or WebP) in one English sentence."""
    from pocketlm.tasks import captioning

    captioning.check_max_new_tokens(own.max_new_tokens)
    picture = _image(image)
    if not captioner.model:
        raise InvalidParameter("--model", captioning.NO_MODEL)
    click.echo(captioning.captioner(captioner.model).caption(picture, own.max_new_tokens))


@dataclass(frozen=True)
class DescribeOptions(Declared):
    COMMAND: ClassVar[str] = "describe"

    output: Path = setting(short="-o", help="Audio file to write.")
    language: str = setting("pt", help="Language of the spoken description: pt or en.")
    voice: str | None = setting(None, help="Default: joe-pt-br for pt, joe for en.")
    speed: float = setting(1.0, help="0.25 to 4.")
    json: bool = setting(False, help="Print every stage's output as JSON.")


@click.command()
@_IMAGE
@options(Captioner, "captioner")
@options(DescribeOptions, "own")
def describe(image, captioner: Captioner, own: DescribeOptions):
    """IMAGE -> English caption -> translation -> speech: the course's pipeline in one command."""
    from pocketlm.tasks import captioning, pipeline, speech

    response_format = _format_of(own.output, None)
    pipeline.check(own.language, own.voice, own.speed, response_format)
    picture = _image(image)
    if not captioner.model:
        raise InvalidParameter("--model", captioning.NO_MODEL)
    result = pipeline.describe(picture, model=captioner.model, language=own.language, voice=own.voice, speed=own.speed)
    _write(own.output, speech.encode(result.audio, result.sample_rate, response_format))
    stages = {
        "caption": result.caption,
        "translation": result.translation,
        "language": result.language,
        "voice": result.voice,
        "audio": str(own.output),
        "duration_seconds": round(len(result.audio) / result.sample_rate, 3),
    }
    if own.json:
        click.echo(json.dumps(stages, ensure_ascii=False, indent=2))
    else:
        click.echo(
            f"caption:     {result.caption}\ntranslation: {result.translation}\naudio:       {own.output} "
            f"({stages['duration_seconds']:.1f} s, voice {result.voice})"
        )


@dataclass(frozen=True)
class Encoder(Declared):
    """The encoder of `embed`: the server's --embedding-model, by its variable."""

    model: str | None = setting(
        None,
        short="-m",
        env="POCKETLM_EMBEDDING_MODEL",
        help="Encoder: a sentence-transformers directory or alias (default all-minilm-l6-v2).",
    )


@dataclass(frozen=True)
class EmbedOptions(Declared):
    COMMAND: ClassVar[str] = "embed"

    dimensions: int | None = setting(None, low=1, help="Shorter vectors (Matryoshka models only).")
    json: bool = setting(False, help="Print OpenAI's answer (data, model, usage) instead of one vector per line.")


@click.command()
@click.argument("texts", nargs=-1, required=True)
@options(Encoder, "encoder")
@options(EmbedOptions, "own")
def embed(texts, encoder: Encoder, own: EmbedOptions):
    """Turn each of TEXTS into a vector, printed as one JSON array per line ('-' reads one text per line of
    standard input)."""
    from pocketlm.tasks import embeddings

    if texts == ("-",):
        texts = tuple(line for line in sys.stdin.read().splitlines() if line.strip())
    inputs = embeddings.check_inputs(list(texts), param="TEXTS")
    model = embeddings.encoder(encoder.model)
    embeddings.check_dimensions(own.dimensions, model, param="--dimensions")
    rows = model.token_ids(inputs, param="TEXTS")
    vectors = embeddings.shorten(model.embed(rows), own.dimensions)
    if not own.json:
        for vector in vectors:
            click.echo(json.dumps([round(float(x), 7) for x in vector]))
        return
    n_tokens = sum(len(r) for r in rows)
    data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": n_tokens, "total_tokens": n_tokens}
    click.echo(json.dumps({"object": "list", "data": data, "model": model.name, "usage": usage}))


@dataclass(frozen=True)
class Listener(Declared):
    """The recognizer of `transcribe`: the server's --transcription-model, by its variable."""

    model: str | None = setting(
        None,
        short="-m",
        env="POCKETLM_TRANSCRIPTION_MODEL",
        help="Speech-to-text model: a Whisper for CTranslate2, directory or alias (default whisper-base).",
    )


@dataclass(frozen=True)
class TranscribeOptions(Declared):
    COMMAND: ClassVar[str] = "transcribe"

    language: str | None = setting(None, help="Language spoken (en, pt, ...); default: detected.")
    translate: bool = setting(False, help="Write English, whatever language is spoken.")
    format: str = setting(
        "text", choices=("json", "text", "srt", "vtt", "verbose_json"), help="What to write (OpenAI's formats)."
    )
    words: bool = setting(False, help="With --format verbose_json: every word's start and end.")
    prompt: str | None = setting(None, help="Text that came before, or words to spell as given.")
    output: Path | None = setting(None, short="-o", help="File to write (default: standard output).")


@click.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@options(Listener, "listener")
@options(TranscribeOptions, "own")
def transcribe(audio, listener: Listener, own: TranscribeOptions):
    """Write down what is said in AUDIO (wav, mp3, flac, ogg, webm, m4a)."""
    from pocketlm.tasks import transcription

    words = transcription.check_options(own.format, ["word"] if own.words else [], 0.0, False)
    task = "translate" if own.translate else "transcribe"
    language = transcription.check_language(own.language, "--language")
    samples = transcription.decode(audio.read_bytes(), param="AUDIO")
    options = transcription.Options(task, language, own.prompt, 0.0, words)
    heard, segments = transcription.recognizer(listener.model).listen(samples, options)
    body = transcription.answer(heard, list(segments), options, own.format)
    text = json.dumps(body, ensure_ascii=False, indent=2) + "\n" if isinstance(body, dict) else body
    if own.output is None:
        click.echo(text, nl=False)
    else:
        _write(own.output, text.encode("utf-8"))


COMMANDS = (translate, speak, caption, describe, embed, transcribe)
