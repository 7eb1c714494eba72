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
from pathlib import Path

import click

from pocketlm.errors import InvalidParameter
from pocketlm.files import atomic_path


def _text_argument(text: str) -> str:
    """'-' reads the text from standard input."""
    return sys.stdin.read() if text == "-" else text


@click.command()
@click.argument("text")
@click.option("--to", "target", required=True, help="Target language: en or pt (pt-BR, pt_BR, pb accepted).")
@click.option("--from", "source", default="auto", show_default=True, help="Source language: en, pt or auto (detected).")
@click.option(
    "--html", "html_format", is_flag=True, help="TEXT is HTML: keep the tags, translate the text between them."
)
def translate(text, target, source, html_format):
    """Translate TEXT between English and Brazilian Portuguese ('-' reads standard input)."""
    from pocketlm.tasks import translation

    text = _text_argument(text)
    translation.check_texts([text], param="TEXT")
    target = translation.canonical_language(target, "--to")
    source = translation.canonical_language(source, "--from", allow_auto=True)
    if source == "auto":
        source, _ = translation.detect_source(text, param="TEXT")
    click.echo(translation.translator().translate_many([text], source, target, html_format=html_format)[0])


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


@click.command()
@click.argument("text")
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Audio file to write."
)
@click.option("--voice", default=None, help="joe (English) or joe-pt-br (Portuguese); default: joe.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="0.25 to 4.")
@click.option(
    "--format", "response_format", default=None, help="wav, mp3, flac or pcm (default: from the file's suffix)."
)
def speak(text, out, voice, speed, response_format):
    """Speak TEXT into an audio file ('-' reads standard input)."""
    from pocketlm.tasks import speech

    text = _text_argument(text)
    response_format = _format_of(out, response_format)
    voice = voice or "joe"
    speech.check_request(text, voice, speed, response_format, input_param="TEXT")
    speaker = speech.speaker()
    samples = speaker.synthesize(text, voice, speed)
    _write(out, speech.encode(samples, speaker.sample_rate, response_format))
    click.echo(f"{out}: {len(samples) / speaker.sample_rate:.1f} s of audio, voice {voice}", err=True)


def _image(path: Path):
    from pocketlm.tasks import captioning

    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidParameter("IMAGE", f"cannot read {path}: {e.strerror}") from None
    return captioning.open_image(data, param="IMAGE")


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-m",
    "--model",
    default=None,
    envvar="POCKETLM_CAPTION_MODEL",
    help="Image-to-text model: a Hugging Face directory or cached hub id (ViT-GPT2, BLIP).",
)
@click.option("--max-new-tokens", type=int, default=30, show_default=True)
def caption(image, model, max_new_tokens):
    """Describe IMAGE (PNG, JPEG or WebP) in one English sentence."""
    from pocketlm.tasks import captioning

    captioning.check_max_new_tokens(max_new_tokens)
    picture = _image(image)
    if not model:
        raise InvalidParameter("--model", captioning.NO_MODEL)
    click.echo(captioning.captioner(model).caption(picture, max_new_tokens))


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-m", "--model", default=None, envvar="POCKETLM_CAPTION_MODEL", help="Image-to-text model (as for `caption`)."
)
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Audio file to write."
)
@click.option("--language", default="pt", show_default=True, help="Language of the spoken description: pt or en.")
@click.option("--voice", default=None, help="Default: joe-pt-br for pt, joe for en.")
@click.option("--speed", type=float, default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print every stage's output as JSON.")
def describe(image, model, out, language, voice, speed, as_json):
    """IMAGE -> English caption -> translation -> speech: the course's pipeline in one command."""
    from pocketlm.tasks import captioning, pipeline, speech

    response_format = _format_of(out, None)
    pipeline.check(language, voice, speed, response_format)
    picture = _image(image)
    if not model:
        raise InvalidParameter("--model", captioning.NO_MODEL)
    result = pipeline.describe(picture, model=model, language=language, voice=voice, speed=speed)
    _write(out, speech.encode(result.audio, result.sample_rate, response_format))
    stages = {
        "caption": result.caption,
        "translation": result.translation,
        "language": result.language,
        "voice": result.voice,
        "audio": str(out),
        "duration_seconds": round(len(result.audio) / result.sample_rate, 3),
    }
    if as_json:
        click.echo(json.dumps(stages, ensure_ascii=False, indent=2))
    else:
        click.echo(
            f"caption:     {result.caption}\ntranslation: {result.translation}\naudio:       {out} "
            f"({stages['duration_seconds']:.1f} s, voice {result.voice})"
        )


COMMANDS = (translate, speak, caption, describe)
