"""Request and response bodies of the task routes.

Translation follows LibreTranslate (what self-hosted translation clients speak),
speech, speech recognition and embeddings follow OpenAI's routes; captioning and
the pipeline are pocketlm's own, in the same style.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pocketlm.service.quantities import DURATION_PATTERN, keep_alive_seconds
from pocketlm.tasks import captioning, embeddings, speech, transcription, translation
from pocketlm.wire_types import Integer

# What the checks in speech, translation and captioning enforce, stated for the OpenAPI document.
SOME_TEXT = {"minLength": 1, "pattern": r"\S"}  # not empty, not only whitespace


def _texts(schema: dict) -> None:
    """``q``: one text, or 1 to MAX_TEXTS texts, each not only whitespace, at most MAX_TEXT_CHARS in all."""
    text = {**SOME_TEXT, "maxLength": translation.MAX_TEXT_CHARS}
    for branch in schema["anyOf"]:
        if branch["type"] == "string":
            branch.update(text)
        else:
            branch.update(minItems=1, maxItems=translation.MAX_TEXTS)
            branch["items"].update(text)


# ----------------------------------------------------------------------------- LibreTranslate


class TranslateRequest(BaseModel):
    """LibreTranslate's ``POST /translate``, as JSON or as a form."""

    q: str | list[str] = Field(
        ...,
        description=f"Text to translate, or an array of up to {translation.MAX_TEXTS} texts "
        f"(translated in one call), {translation.MAX_TEXT_CHARS:,} characters in all.",
        json_schema_extra=_texts,
    )
    source: str = Field(
        "auto",
        description="en, pt (pt-BR, pt_BR, pb accepted) or auto (detected per text).",
        json_schema_extra={"pattern": translation.language_pattern(allow_auto=True)},
    )
    target: str = Field(
        ...,
        description="en or pt (pt-BR, pt_BR, pb accepted).",
        json_schema_extra={"pattern": translation.language_pattern()},
    )
    format: Literal["text", "html"] = Field(
        "text", description="html: tags are kept, only the text between them is translated."
    )
    alternatives: Integer = Field(0, description="Accepted for LibreTranslate clients; no alternatives are produced.")
    api_key: str | None = Field(
        None,
        description=(
            "The server's API key (`--api-key`), where LibreTranslate clients send it "
            "(also accepted in the query string); "
            "or use the `Authorization: Bearer` header, which wins when both are sent. Not needed on an open server."
        ),
    )


class DetectedLanguage(BaseModel):
    confidence: float = Field(..., description="0 to 100.")
    language: str = Field(..., description="ISO 639-1 code.")


class TranslateResponse(BaseModel):
    translatedText: str | list[str] = Field(..., description="A string for a string `q`, an array for an array.")
    detectedLanguage: DetectedLanguage | list[DetectedLanguage] | None = Field(
        None, description="With source=auto: the detected language (one per text for an array)."
    )


class DetectRequest(BaseModel):
    q: str = Field(..., description="Text whose language to detect.", json_schema_extra=SOME_TEXT)
    api_key: str | None = Field(
        None, description="The server's API key, as for POST /translate (or the Bearer header)."
    )


class Language(BaseModel):
    code: str = Field(..., description="The canonical code, as answered everywhere.")
    name: str = Field(..., description="The language's name in English.")
    targets: list[str] = Field(..., description="Codes this language translates into.")


# ----------------------------------------------------------------------------- OpenAI speech


SPEED = {"minimum": speech.SPEED_RANGE[0], "maximum": speech.SPEED_RANGE[1]}


def _one_of(*values: str):
    """An optional string field that takes only ``values``."""

    def only(schema: dict) -> None:
        for branch in schema["anyOf"]:
            if branch.get("type") == "string":
                branch["enum"] = list(values)

    return only


class SpeechRequest(BaseModel):
    """OpenAI's ``POST /v1/audio/speech``, plus the download-link flow."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as its JSON Schema reads: "1" is not a speed

    model: str | None = Field(
        None,
        description=f"'{speech.MODEL_ID}'; OpenAI's {', '.join(speech.MODEL_ALIASES)} name it too.",
        json_schema_extra=_one_of(speech.MODEL_ID, *speech.MODEL_ALIASES),
    )
    input: str = Field(
        ...,
        description=f"Text to speak, at most {speech.MAX_INPUT_CHARS} characters, with at least one word.",
        json_schema_extra={"minLength": 1, "maxLength": speech.MAX_INPUT_CHARS, "pattern": r"\w"},
    )
    voice: str = Field(
        "joe",
        description=f"One of {', '.join(speech.VOICES)} (GET /v1/audio/voices).",
        json_schema_extra={"enum": list(speech.VOICES)},
    )
    response_format: str = Field(
        "mp3",
        description="wav, mp3, flac, or pcm (raw 24 kHz 16-bit little-endian mono, streamed as synthesized).",
        json_schema_extra={"enum": list(speech.FORMATS)},
    )
    speed: float = Field(
        1.0,
        description=f"{speech.SPEED_RANGE[0]} to {speech.SPEED_RANGE[1]}; 1 is the voice's own pace.",
        json_schema_extra=SPEED,
    )
    stream_format: Literal["audio"] | None = Field(None, description="Only 'audio' (OpenAI's 'sse' is not supported).")
    instructions: str | None = Field(
        None, description="Not supported by this voice: null or empty.", json_schema_extra=_one_of("")
    )
    return_download_link: bool | Literal["json"] = Field(
        False,
        description=(
            "true: the audio as usual plus an `X-Download-URL` header; "
            '"json": a JSON body with the URL instead of audio.'
        ),
    )


class AudioFile(BaseModel):
    id: str = Field(..., description="File id for GET /v1/audio/files/{id}.")
    url: str = Field(..., description="Absolute URL of the stored audio.")
    format: str = Field(..., description="wav, mp3, flac or pcm.")
    sample_rate: int = Field(..., description="Samples per second of the audio (pcm: 24000).")
    duration_seconds: float = Field(..., description="Length of the audio.")
    bytes: int = Field(..., description="Size of the file.")
    expires_in_seconds: int = Field(
        ..., description="The file may be removed after this long (or sooner, when newer files need room)."
    )


class VoiceCard(BaseModel):
    id: str = Field(..., description="The value of `voice`.")
    name: str = Field(..., description="A name to show people.")
    language: str = Field(..., description="BCP 47 tag of the language it speaks.")
    description: str = Field(..., description="What it sounds like.")
    sample_rate: int = Field(..., description="Samples per second of its wav, mp3 and flac audio.")


class VoiceList(BaseModel):
    voices: list[VoiceCard] = Field(..., description="Every voice of POST /v1/audio/speech.")


# ----------------------------------------------------------------------------- captioning and the pipeline


class CaptionRequest(BaseModel):
    """JSON form of ``POST /v1/images/captions`` (a multipart upload takes the same fields, the image as a file)."""

    image: str = Field(
        ...,
        description="The image as a data URL (data:image/png;base64,...) or plain base64; PNG, JPEG or WebP.",
        json_schema_extra={"minLength": 1, "format": "byte", "contentMediaType": "image/*"},
    )
    model: str | None = Field(
        None, description="The captioning model: the server's --caption-model (the default), by name."
    )
    max_new_tokens: Integer = Field(
        30,
        description=f"Longest caption, in tokens (1 to {captioning.MAX_NEW_TOKENS}).",
        json_schema_extra={"minimum": 1, "maximum": captioning.MAX_NEW_TOKENS},
    )


class CaptionResponse(BaseModel):
    object: Literal["image.caption"] = Field("image.caption", description="Always image.caption.")
    model: str = Field(..., description="The captioning model used.")
    caption: str = Field(..., description="One English sentence describing the image.")
    width: int = Field(..., description="Width of the image, pixels.")
    height: int = Field(..., description="Height of the image, pixels.")


class DescribeRequest(CaptionRequest):
    """Image -> caption -> translation -> speech."""

    language: str = Field(
        "pt",
        description="Language of the spoken description: pt (default) or en (pt-BR, pt_BR, pb accepted).",
        json_schema_extra={"pattern": translation.language_pattern()},
    )
    voice: str | None = Field(
        None,
        description="Default (omitted or empty): joe-pt-br for pt, joe for en.",
        json_schema_extra=_one_of(*speech.VOICES, ""),
    )
    speed: float = Field(1.0, description="Speech speed, 0.25 to 4.", json_schema_extra=SPEED)
    response_format: str = Field(
        "wav",
        description="Audio format of the stored file: wav, mp3, flac or pcm.",
        json_schema_extra={"enum": list(speech.FORMATS)},
    )


class DescribeResponse(BaseModel):
    object: Literal["pipeline.describe"] = Field("pipeline.describe", description="Always pipeline.describe.")
    model: str = Field(..., description="The captioning model used.")
    caption: str = Field(..., description="Stage 1: the English caption.")
    translation: str = Field(..., description="Stage 2: the caption in `language`.")
    language: str = Field(..., description="Canonical code of the translation's language.")
    voice: str = Field(..., description="The voice that spoke it.")
    audio: AudioFile = Field(..., description="Stage 3: the spoken translation, stored for download.")


# ----------------------------------------------------------------------------- OpenAI embeddings


def _embedding_input(schema: dict) -> None:
    """``input``: a text, 1 to MAX_INPUTS texts, token ids, or 1 to MAX_INPUTS lists of them; none empty."""
    for branch in schema["anyOf"]:
        if branch["type"] == "string":
            branch.update(SOME_TEXT)
            continue
        branch.update(minItems=1)
        items = branch["items"]
        if items["type"] == "string":
            items.update(SOME_TEXT)
            branch["maxItems"] = embeddings.MAX_INPUTS
        elif items["type"] == "integer":
            items["minimum"] = 0
        else:
            items.update(minItems=1)
            items["items"]["minimum"] = 0
            branch["maxItems"] = embeddings.MAX_INPUTS


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str | list[str] | list[Integer] | list[list[Integer]] = Field(
        ...,
        description=f"A text, an array of up to {embeddings.MAX_INPUTS} texts, or the same as token ids of the "
        "model's vocabulary (without its special tokens). None may be empty or longer than the model reads.",
        json_schema_extra=_embedding_input,
    )
    model: str | None = Field(None, description="The server's embeddings model (`--embedding-model`); the default.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: arrays of numbers; base64: each vector's little-endian float32 bytes."
    )
    dimensions: Integer | None = Field(
        None,
        description="Shorter vectors (truncated and normalised again): only for a Matryoshka model; any other "
        "model takes only its own size.",
        json_schema_extra={"minimum": 1},
    )
    user: str | None = Field(None, description="Accepted for OpenAI's clients; not used.")


class Embedding(BaseModel):
    object: Literal["embedding"] = Field("embedding", description="Always `embedding`.")
    index: int = Field(..., description="Position of the input it belongs to.")
    embedding: list[float] | str = Field(..., description="The vector: numbers, or base64 (`encoding_format`).")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int = Field(..., description="Tokens the model read, its special tokens included.")
    total_tokens: int = Field(..., description="The same: an encoder writes none.")


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Embedding] = Field(..., description="One vector per input, in the inputs' order.")
    model: str = Field(..., description="The model that made the vectors.")
    usage: EmbeddingsUsage = Field(..., description="Tokens read.")


# ----------------------------------------------------------------------------- Ollama's embeddings


def _ollama_input(schema: dict) -> None:
    """``input``: a text or up to MAX_INPUTS texts, none only whitespace; "" or [] only loads the encoder."""
    for branch in schema["anyOf"]:
        if branch["type"] == "array":
            branch["items"].update(SOME_TEXT)
            branch["maxItems"] = embeddings.MAX_INPUTS


def _keep_alive(schema: dict) -> None:
    schema.clear()
    schema.update(
        description="Ollama's keep-alive (seconds, or a duration such as '5m'; negative: forever): checked, and "
        "no effect here: the encoder, like every task model, stays loaded once loaded.",
        anyOf=[{"type": "null"}, {"type": "number"}, {"type": "string", "pattern": DURATION_PATTERN}],
    )


class _OllamaEmbedBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(
        "",
        description="The server's embeddings model (`--embedding-model`); 'name:latest' is 'name'; empty: the same.",
    )
    options: dict[str, Any] | None = Field(
        None, description="Accepted, no effect: an encoder does not sample, and reads as much as it was made to."
    )
    keep_alive: float | str | None = Field(None, json_schema_extra=_keep_alive)

    def checked_model(self, served: str) -> None:
        if self.keep_alive is not None:
            keep_alive_seconds(self.keep_alive)  # a bad duration is refused, as Ollama refuses it
        embeddings.check_model(self.model.removesuffix(":latest"), served)


class OllamaEmbedRequest(_OllamaEmbedBase):
    """Ollama's ``POST /api/embed``."""

    input: str | list[str] = Field(
        "",
        description=f"A text or an array of up to {embeddings.MAX_INPUTS} texts; empty: only load the encoder.",
        json_schema_extra=_ollama_input,
    )
    truncate: bool = Field(
        True, description="Cut an input longer than the model reads to its start (Ollama's default); false: refuse it."
    )
    dimensions: Integer | None = Field(
        None,
        description="Shorter vectors (truncated and normalised again): only for a Matryoshka model.",
        json_schema_extra={"minimum": 1},
    )


class OllamaEmbedResponse(BaseModel):
    model: str = Field(description="The model that made the vectors.")
    embeddings: list[list[float]] = Field(description="One vector per input, in the inputs' order.")
    total_duration: int = Field(description="Nanoseconds from the request to its answer.")
    load_duration: int = Field(description="Nanoseconds spent loading the encoder (0 once it is loaded).")
    prompt_eval_count: int = Field(description="Tokens the model read, its special tokens included.")


class OllamaEmbeddingsRequest(_OllamaEmbedBase):
    """Ollama's older ``POST /api/embeddings``: one text."""

    prompt: str = Field("", description="The text; empty: only load the encoder (and answer an empty vector).")


class OllamaEmbeddingsResponse(BaseModel):
    embedding: list[float] = Field(description="The text's vector (empty for an empty prompt).")


# ----------------------------------------------------------------------------- OpenAI speech to text


class TranslationRequest(BaseModel):
    """OpenAI's ``POST /v1/audio/translations`` (multipart): speech in any language to English text."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    file: str = Field(
        ...,
        description=f"The audio file: {', '.join(transcription.CONTAINERS)} (whatever FFmpeg reads), at most "
        f"{transcription.MAX_AUDIO_BYTES >> 20} MiB and {transcription.MAX_SECONDS // 60} minutes.",
        json_schema_extra={"format": "binary"},
    )
    model: str | None = Field(
        None,
        description=f"The server's speech-to-text model (`--transcription-model`, default {transcription.MODEL_ID}); "
        "OpenAI's whisper-1 names it too.",
    )
    prompt: str | None = Field(
        None, description="Text that came before, or words to spell as given (its last 223 tokens are read)."
    )
    response_format: str = Field(
        "json",
        description="json, text, srt, vtt, or verbose_json (segments, language, duration).",
        json_schema_extra={"enum": list(transcription.RESPONSE_FORMATS)},
    )
    temperature: float = Field(
        0.0,
        description="0: greedy, trying higher temperatures only where the text looks wrong (Whisper's fallback).",
        json_schema_extra={"minimum": 0.0, "maximum": 1.0},
    )


class TranscriptionRequest(TranslationRequest):
    """OpenAI's ``POST /v1/audio/transcriptions`` (multipart): speech to text in its own language."""

    language: str | None = Field(
        None,
        description="ISO 639-1 code of the speech (en, pt; pt-BR accepted). Default: detected.",
        json_schema_extra=lambda schema: schema["anyOf"][0].update(pattern=transcription.language_pattern()),
    )
    timestamp_granularities: list[Literal["segment", "word"]] | None = Field(
        None,
        alias="timestamp_granularities[]",
        description="With verbose_json: `word` adds every word's start and end (one more pass over the audio).",
    )
    stream: bool = Field(
        False,
        description="Server-sent events as segments are heard: `transcript.text.delta`, then `transcript.text.done`"
        " (json or text).",
    )


class AudioUsage(BaseModel):
    type: Literal["duration"] = Field("duration", description="Always `duration`: audio is counted in seconds.")
    seconds: float = Field(..., description="Length of the audio heard.")


class Transcription(BaseModel):
    text: str = Field(..., description="Everything heard, as one text.")
    usage: AudioUsage = Field(..., description="Seconds of audio heard.")


class TranscriptionSegment(BaseModel):
    id: int = Field(..., description="Position of the segment, from 0.")
    seek: int = Field(..., description="Where in the audio (in 10 ms frames) the window that heard it began.")
    start: float = Field(..., description="Start, in seconds from the beginning of the audio.")
    end: float = Field(..., description="End, in seconds from the beginning of the audio.")
    text: str = Field(..., description="What was heard in it.")
    tokens: list[int] = Field(..., description="The recognizer's token ids for the text.")
    temperature: float = Field(..., description="The temperature that wrote it (above 0 after a fallback).")
    avg_logprob: float = Field(..., description="Mean log-probability of its tokens (below -1: doubtful).")
    compression_ratio: float = Field(..., description="Text length over its gzip length (above 2.4: repetitive).")
    no_speech_prob: float = Field(..., description="Probability that the window held no speech.")


class TranscriptionWord(BaseModel):
    word: str = Field(..., description="The word, with the space before it.")
    start: float = Field(..., description="Start, in seconds from the beginning of the audio.")
    end: float = Field(..., description="End, in seconds from the beginning of the audio.")


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe", "translate"] = Field(..., description="transcribe, or translate (to English).")
    language: str = Field(..., description="The language heard, in English and lower case (english, portuguese).")
    duration: float = Field(..., description="Length of the audio, in seconds.")
    text: str = Field(..., description="Everything heard, as one text.")
    segments: list[TranscriptionSegment] = Field(..., description="The text in the windows that heard it.")
    words: list[TranscriptionWord] | None = Field(None, description="With timestamp_granularities[]=word.")
    usage: AudioUsage = Field(..., description="Seconds of audio heard.")
