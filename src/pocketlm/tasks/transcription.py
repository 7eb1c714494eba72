"""Speech to text with Whisper base on CTranslate2 (faster-whisper): transcription, and translation to English.

The model is the registry's alias ``whisper-base``: two PyPI packages each ship part
of OpenAI's Whisper base converted for CTranslate2, joined once into the cache
(``models.registry``; size and SHA-256 checked at every use like every cache entry).
It runs int8 on the CPU, loaded once (``models.loaded``); CTranslate2 releases the
GIL, so the event loop keeps serving while it listens.

Audio is decoded with PyAV (FFmpeg's decoders, which faster-whisper depends on) to
16 kHz mono: wav, mp3, flac, ogg, webm, m4a and whatever else FFmpeg reads. Uploads
are bounded before they are decoded (bytes) and while they are decoded (seconds),
so a small file that claims hours of audio is refused before it fills the memory;
anything that is not audio is a 400 that says so.

What the answers say (OpenAI's shapes): ``json`` and ``text`` the text; ``srt``
and ``vtt`` subtitles, one cue per segment; ``verbose_json`` the segments with
their times and scores, the detected language, and the words with their times when
``timestamp_granularities`` asks for them (that costs an alignment pass, so only
then). Whisper's own greedy decoding with its temperature fallback is what
``temperature=0`` means, as in OpenAI's API.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pocketlm.errors import InvalidParameter, ModelLoadError, ModelNotFound
from pocketlm.models.loaded import Loaded
from pocketlm.settings import cores

MODEL_ID = "whisper-base"  # the registry's alias
MODEL_ALIASES = ("whisper-1",)  # OpenAI's name, so unchanged clients work
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
CONTAINERS = ("wav", "mp3", "flac", "ogg", "webm", "m4a")  # what the documentation promises; FFmpeg reads more
MAX_AUDIO_BYTES = 25 << 20  # OpenAI's limit (the server's --max-body-bytes applies first)
MAX_SECONDS = 600  # ten minutes: about two minutes of work on two cores
SAMPLE_RATE = 16_000  # what Whisper listens at
# temperature=0: greedy, then these when the text looks wrong (repetitive, unlikely): Whisper's own fallback
FALLBACK = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# No speech makes more text tokens a second than this (a fast Mandarin speaker, about 15), so a short clip of noise
# cannot keep the model writing a hallucinated loop at every fallback temperature: seconds of work for nothing.
TOKENS_PER_SECOND = 25
SHORT_CLIP = 8.0  # seconds; longer clips keep Whisper's own bound (224 tokens a 30-second window)
NOT_AUDIO = f"is not audio pocketlm can read: send {', '.join(CONTAINERS)}"


# ----------------------------------------------------------------------------- audio in


def decode(data: bytes, param: str = "file") -> np.ndarray:
    """Audio file bytes -> float32 samples at 16 kHz mono; refused when not audio, empty or too long."""
    import av

    if not data:
        raise InvalidParameter(param, "is empty: send an audio file")
    if len(data) > MAX_AUDIO_BYTES:
        raise InvalidParameter(param, f"has {len(data)} bytes; at most {MAX_AUDIO_BYTES} (25 MiB)")
    limit = MAX_SECONDS * SAMPLE_RATE
    chunks, n = [], 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidParameter(param, f"has no sound in it ({NOT_AUDIO})")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in _frames(container):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    n += len(chunks[-1])
                if n > limit:
                    raise InvalidParameter(param, f"is longer than {MAX_SECONDS // 60} minutes: split the recording")
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.error.FFmpegError:
        raise InvalidParameter(param, NOT_AUDIO) from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if len(samples) < SAMPLE_RATE // 10:
        raise InvalidParameter(param, "holds less than 0.1 s of sound: record a little longer")
    return samples.astype(np.float32, copy=False)


def _frames(container) -> Iterator:
    """The audio frames of the first audio stream; a damaged frame ends the audio there (as players do)."""
    import av

    stream = container.streams.audio[0]
    try:
        yield from container.decode(stream)
    except av.error.InvalidDataError:
        return


# ----------------------------------------------------------------------------- the request's options


@dataclass(frozen=True)
class Options:
    task: str  # transcribe | translate (to English)
    language: str | None  # ISO 639-1; None: detected
    prompt: str | None
    temperature: float
    words: bool  # word timestamps


def check_model(asked: str | None, served: str) -> None:
    """The served recognizer, by its name or OpenAI's; a client names no files."""
    if asked in (None, "", served, *MODEL_ALIASES):
        return
    raise ModelNotFound(f"model '{asked}' is not a speech-to-text model here; use '{served}' (or whisper-1)")


def _whisper_languages() -> frozenset[str] | None:
    """The language codes Whisper knows, from faster-whisper; None without the 'tasks' extra (a server without it
    still starts and documents this route; a request then learns what to install when the model loads)."""
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return None
    return frozenset(_LANGUAGE_CODES)


def check_language(language: str | None, param: str = "language") -> str | None:
    """An ISO 639-1 code Whisper knows; a region is dropped (pt-BR is pt), case is ignored."""
    if language is None or language == "":
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    known = _whisper_languages()
    if known is not None and code not in known:
        raise InvalidParameter(param, f"'{language}' is not a language Whisper knows; give an ISO 639-1 code (en, pt)")
    return code


def language_pattern() -> str:
    """What ``check_language`` accepts, as a JSON Schema pattern (no flags there: each letter is [xX]); empty is
    accepted (detected). Without faster-whisper, any code of two or three letters."""
    known = _whisper_languages()
    codes = (
        "[A-Za-z]{2,3}"
        if known is None
        else "|".join("".join(f"[{c}{c.upper()}]" for c in code) for code in sorted(known))
    )
    return rf"^(\s*({codes})([-_][A-Za-z0-9]*)*\s*)?$"


def check_options(response_format: str, granularities: list[str], temperature: float, stream: bool) -> bool:
    """Every check that needs no audio; whether word timestamps were asked for."""
    if response_format not in RESPONSE_FORMATS:
        raise InvalidParameter(
            "response_format", f"'{response_format}' is not supported; use one of: {', '.join(RESPONSE_FORMATS)}"
        )
    if not 0.0 <= temperature <= 1.0:
        raise InvalidParameter("temperature", f"{temperature} is out of range; use 0 to 1")
    unknown = [g for g in granularities if g not in GRANULARITIES]
    if unknown:
        raise InvalidParameter("timestamp_granularities[]", f"'{unknown[0]}' is not one of: {', '.join(GRANULARITIES)}")
    if "word" in granularities and response_format != "verbose_json":
        raise InvalidParameter(
            "timestamp_granularities[]", "word needs response_format=verbose_json (the only format with words)"
        )
    if stream and response_format not in ("json", "text"):
        raise InvalidParameter(
            "stream", f"streams text events; use response_format json or text with it, not {response_format}"
        )
    return "word" in granularities


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word]


@dataclass(frozen=True)
class Heard:
    """What the recognizer knows before the first segment: the language and the audio's length."""

    language: str  # ISO 639-1 code, detected or given
    language_probability: float
    duration: float  # seconds


class Recognizer:
    """Whisper on CTranslate2, loaded once; ``num_workers`` lets that many requests decode at once."""

    def __init__(self, name: str):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelLoadError("speech recognition needs the 'tasks' extra: pip install 'pocketlm[tasks]'") from None
        from pocketlm.models.prepare import prepare
        from pocketlm.models.registry import SPEECH_TO_TEXT

        prepared = prepare(name, tasks=(SPEECH_TO_TEXT,))
        self.name = prepared.name
        try:
            # int8: CTranslate2's quantized CPU kernels (the file's float16 weights are converted as they load)
            self.model = WhisperModel(
                str(prepared.path), device="cpu", compute_type="int8", cpu_threads=cores(), num_workers=2
            )
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"CTranslate2 cannot load {prepared.path} as a Whisper model: {e}") from None

    def listen(self, audio: np.ndarray, options: Options) -> tuple[Heard, Iterator[Segment]]:
        """The language and length at once, then the segments as they are decoded."""
        temperature = FALLBACK if options.temperature == 0 else options.temperature
        seconds = len(audio) / SAMPLE_RATE
        most = int(TOKENS_PER_SECOND * seconds) + 8 if seconds < SHORT_CLIP else None
        segments, info = self.model.transcribe(
            audio,
            task=options.task,
            language=options.language,
            initial_prompt=options.prompt or None,
            temperature=temperature,
            word_timestamps=options.words,
            beam_size=5,
            max_new_tokens=most,
        )
        heard = Heard(info.language, float(info.language_probability), float(info.duration))
        return heard, (_segment(s) for s in segments)


def _segment(s) -> Segment:
    words = [Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3)) for w in s.words or ()]
    return Segment(
        s.id - 1,  # faster-whisper counts from 1, OpenAI from 0
        int(s.seek),
        round(float(s.start), 3),
        round(float(s.end), 3),
        s.text,
        list(s.tokens),
        float(s.temperature),
        float(s.avg_logprob),
        float(s.compression_ratio),
        float(s.no_speech_prob),
        words,
    )


_recognizers: Loaded[str, Recognizer] = Loaded()


def recognizer(name: str | None = None) -> Recognizer:
    name = name or MODEL_ID
    return _recognizers.get(name, lambda: Recognizer(name))


def loaded() -> list[str]:
    return _recognizers.keys()


# ----------------------------------------------------------------------------- answers


def language_name(code: str) -> str:
    """OpenAI answers the language by its English name in lower case ("english"); the code where none is known."""
    from lingua import IsoCode639_1, Language

    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code)).name.lower()
    except ValueError:
        return code


def answer(heard: Heard, segments: list[Segment], options: Options, response_format: str) -> str | dict:
    """What OpenAI's API answers in ``response_format``: JSON (as a dict) or text (text, srt, vtt)."""
    text = text_of(segments)
    usage = {"type": "duration", "seconds": round(heard.duration, 3)}
    if response_format == "json":
        return {"text": text, "usage": usage}
    if response_format == "verbose_json":
        verbose = {
            "task": options.task,
            # a translation is in English whatever was spoken
            "language": "english" if options.task == "translate" else language_name(heard.language),
            "duration": round(heard.duration, 3),
            "text": text,
            "segments": [{k: v for k, v in vars(s).items() if k != "words"} for s in segments],
            "usage": usage,
        }
        if options.words:
            verbose["words"] = [vars(w) for s in segments for w in s.words]
        return verbose
    return text + "\n" if response_format == "text" else subtitles(segments, response_format)


def text_of(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments).strip()


def subtitles(segments: list[Segment], kind: str) -> str:
    """SubRip (srt) or WebVTT (vtt) cues, one per segment."""
    comma = kind == "srt"
    cues = []
    for number, s in enumerate(segments, 1):
        times = f"{_clock(s.start, comma)} --> {_clock(s.end, comma)}"
        cues.append(f"{number}\n{times}\n{s.text.strip()}\n" if comma else f"{times}\n{s.text.strip()}\n")
    return "\n".join(cues) if comma else "WEBVTT\n\n" + "\n".join(cues)


def _clock(seconds: float, comma: bool) -> str:
    ms = int(round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{',' if comma else '.'}{ms:03d}"
