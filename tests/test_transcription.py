"""Speech recognition: OpenAI's /v1/audio/transcriptions and /translations, and `pocketlm transcribe`.

One `pocketlm serve` for the module. The speech is made by pocketlm's own English voice
(POST /v1/audio/speech on the same server) from sentences of the speech benchmark, and
heard by the registry's Whisper base (joined once from its two packages). Clips are a
few seconds long, so each transcription takes about a second on two cores.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys

import httpx
import numpy as np
import pytest

from api_server import Server, assert_openai_error, sse_events
from speech_and_embeddings import sentences, word_error_rate, words

SAID = " ".join(sentences("en")[:2])  # two sentences, about seven seconds
SHORT = sentences("en")[11]  # "Could you turn off the lights before you go to bed?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server("--slots", "1", "--threads", "1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def speech_wav(client) -> bytes:
    return client.audio.speech.create(model="tts-1", voice="joe", input=SAID, response_format="wav").content


@pytest.fixture(scope="module")
def short_wav(client) -> bytes:
    return client.audio.speech.create(model="tts-1", voice="joe", input=SHORT, response_format="wav").content


def transcribe(server, data: bytes, name: str = "speech.wav", **fields) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/audio/transcriptions", files={"file": (name, data)}, data=fields, timeout=300)


def encoded(wav: bytes, container: str, codec: str, rate: int) -> bytes:
    """The WAV's audio encoded by FFmpeg (PyAV) as ``container``/``codec``: what a browser or phone uploads."""
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as source, av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono", rate=rate)
        for frame in source.decode(audio=0):
            for part in resampler.resample(frame):
                target.mux(stream.encode(part))
        for part in resampler.resample(None):
            target.mux(stream.encode(part))
        target.mux(stream.encode(None))
    return out.getvalue()


def test_openai_sdk_hears_pocketlms_english_voice_with_at_most_10_percent_word_errors(client, speech_wav):
    answer = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", speech_wav))
    assert word_error_rate([SAID], [answer.text]) <= 0.10, answer.text
    assert answer.usage.type == "duration" and 4 < answer.usage.seconds < 15


def test_verbose_json_has_segments_the_language_and_with_word_granularity_the_words(client, speech_wav):
    answer = client.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", speech_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert answer.language == "english" and 4 < answer.duration < 15
    starts = [s.start for s in answer.segments]
    assert answer.segments and starts == sorted(starts) and all(s.end > s.start for s in answer.segments)
    assert "".join(s.text for s in answer.segments).strip() == answer.text
    assert [w for w in words(" ".join(w.word for w in answer.words))] == words(answer.text)
    times = [t for w in answer.words for t in (w.start, w.end)]
    assert times == sorted(times) and times[-1] <= answer.duration + 0.5


CUE = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)"


def spoken(subtitles: str) -> str:
    """The words of SubRip or WebVTT cues, without the header, the cue numbers and the times."""
    lines = subtitles.splitlines()
    return " ".join(line for line in lines if line and line != "WEBVTT" and not re.fullmatch(rf"\d+|{CUE}", line))


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt"])
def test_text_and_subtitles(client, short_wav, response_format):
    answer = client.audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", short_wav), response_format=response_format
    )
    assert isinstance(answer, str) and word_error_rate([SHORT], [spoken(answer)]) <= 0.10, answer
    if response_format == "text":
        return
    cues = re.findall(CUE, answer)
    assert cues and ("," in answer.splitlines()[1]) == (response_format == "srt")
    assert answer.startswith("WEBVTT\n\n") if response_format == "vtt" else answer.startswith("1\n")


def test_stream_sends_deltas_then_the_whole_text(client, server, short_wav):
    events = list(client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", short_wav), stream=True))
    assert [e.type for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1) and len(events) >= 2
    assert events[-1].type == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    assert word_error_rate([SHORT], [events[-1].text]) <= 0.10
    raw = transcribe(server, short_wav, stream="true", response_format="text")
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert sse_events(raw.text.splitlines())[-1]["type"] == "transcript.text.done"


@pytest.mark.parametrize(
    "container, codec, rate, name",
    [
        ("mp3", "libmp3lame", 22050, "speech.mp3"),
        ("flac", "flac", 22050, "speech.flac"),
        ("ogg", "libopus", 48000, "speech.ogg"),
        ("webm", "libopus", 48000, "speech.webm"),  # what a browser's MediaRecorder makes
        ("ipod", "aac", 44100, "speech.m4a"),
    ],
)
def test_every_upload_format_is_heard(server, short_wav, container, codec, rate, name):
    answer = transcribe(server, encoded(short_wav, container, codec, rate), name, response_format="json")
    assert answer.status_code == 200, answer.text
    assert word_error_rate([SHORT], [answer.json()["text"]]) <= 0.10


def test_translation_to_english(client, short_wav):
    answer = client.audio.translations.create(
        model="whisper-1", file=("speech.wav", short_wav), response_format="verbose_json"
    )
    assert answer.language == "english" and word_error_rate([SHORT], [answer.text]) <= 0.10


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 128, 255)).save(out, "PNG")
    return out.getvalue()


def silence_flac(seconds: int) -> bytes:
    """Hours of silence fit in a few kilobytes of FLAC: the duration limit must hold while decoding."""
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, np.zeros(seconds * 8000, dtype=np.int16), 8000, format="FLAC")
    return out.getvalue()


@pytest.mark.parametrize(
    "data, name, why",
    [
        (b"", "empty.wav", "empty"),
        (b"these are words, not sound", "notes.txt", "not audio"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "broken.wav", "not audio"),
        (png(), "picture.png", "no sound"),
        (np.zeros(400, dtype="<i2").tobytes(), "raw.pcm", "not audio"),
    ],
)
def test_what_is_not_audio_is_refused_naming_file(server, data, name, why):
    error = assert_openai_error(transcribe(server, data, name), 400, "file")
    assert why in error["message"]


def test_a_small_file_that_holds_hours_is_refused_by_its_duration(server):
    data = silence_flac(601)
    assert len(data) < 200_000
    error = assert_openai_error(transcribe(server, data, "long.flac"), 400, "file")
    assert "10 minutes" in error["message"]


@pytest.mark.parametrize(
    "fields, status, param",
    [
        ({"response_format": "doc"}, 400, "response_format"),
        ({"temperature": "1.5"}, 400, "temperature"),
        ({"temperature": "warm"}, 400, "temperature"),
        ({"language": "klingon"}, 400, "language"),
        ({"timestamp_granularities[]": "word"}, 400, "timestamp_granularities[]"),
        ({"timestamp_granularities[]": "phoneme", "response_format": "verbose_json"}, 400, None),
        ({"stream": "true", "response_format": "srt"}, 400, "stream"),
        ({"model": "gpt-4o-transcribe"}, 404, None),
        ({"model": "/etc/passwd"}, 404, None),
        ({"colour": "blue"}, 400, "colour"),
    ],
)
def test_bad_fields_are_refused_naming_them(server, short_wav, fields, status, param):
    assert_openai_error(transcribe(server, short_wav, **fields), status, param)


def test_a_body_without_a_file_says_how_to_send_one(server):
    for response in (
        httpx.post(f"{server.url}/v1/audio/transcriptions", json={"model": "whisper-1"}, timeout=30),
        httpx.post(f"{server.url}/v1/audio/translations", data={"model": "whisper-1"}, timeout=30),
    ):
        assert "multipart/form-data" in assert_openai_error(response, 400, "file")["message"]


def test_a_language_with_its_region_and_segment_granularity_are_accepted(server, short_wav):
    fields = {"language": "EN-us", "timestamp_granularities[]": "segment", "response_format": "verbose_json"}
    answer = transcribe(server, short_wav, **fields)
    assert answer.status_code == 200 and word_error_rate([SHORT], [answer.json()["text"]]) <= 0.10
    assert answer.json()["segments"] and "words" not in answer.json()  # words only when asked for


def test_whisper_is_joined_once_into_a_checked_cache_entry(tmp_path, monkeypatch):
    from pocketlm.files import entry_intact
    from pocketlm.models.registry import EMBEDDED

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    model = EMBEDDED["whisper-base"]
    path = model.path()
    assert path == tmp_path / "models" / "whisper-base" and entry_intact(path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    with open(path / "model.bin", "r+b") as f:  # damaged since: made again, never loaded
        f.truncate(1000)
    assert not entry_intact(path)
    assert model.path().joinpath("model.bin").stat().st_size == 145_217_532 and entry_intact(path)


def test_cli_transcribe_writes_subtitles(tmp_path, short_wav):
    audio = tmp_path / "speech.wav"
    audio.write_bytes(short_wav)
    out = tmp_path / "speech.vtt"
    result = subprocess.run(
        [sys.executable, "-m", "pocketlm", "transcribe", str(audio), "--format", "vtt", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith("WEBVTT") and re.search(CUE, text) and word_error_rate([SHORT], [spoken(text)]) <= 0.1
    notes = tmp_path / "notes.txt"
    notes.write_text("not sound")
    refused = subprocess.run(
        [sys.executable, "-m", "pocketlm", "transcribe", str(notes), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0 and "AUDIO" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stdout == ""
