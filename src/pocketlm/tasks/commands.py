"""The tasks on the command line.

    pocketlm translate "Bom dia a todos" --to en
    pocketlm speak "Hello there" -o hello.wav
    pocketlm caption photo.jpg --model ./vit-gpt2-image-captioning
    pocketlm describe photo.jpg --model ./vit-gpt2-image-captioning -o description.wav

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


COMMANDS = (translate, speak, caption, describe)
