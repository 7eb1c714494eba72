"""The course's last step in one call: image -> English caption -> Portuguese -> speech.

Each stage's output is returned, so a client can show the caption and its
translation beside the audio it plays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pocketlm.tasks import captioning, speech, translation


@dataclass(frozen=True)
class Description:
    caption: str  # English, from the captioning model
    translation: str  # the caption in the target language
    language: str  # canonical code of the translation
    audio: np.ndarray  # float32 mono, the translation spoken
    sample_rate: int
    voice: str


def check(language: str, voice: str | None, speed: float, response_format: str) -> tuple[str, str]:
    """(canonical language, voice) after checking everything that needs no model."""
    language = translation.canonical_language(language, "language")
    voice = voice or speech.DEFAULT_VOICE[language]
    speech.check_request("text", voice, speed, response_format)  # the text comes later
    return language, voice


def describe(
    image,
    *,
    model: str | None = None,
    language: str = "pt",
    voice: str | None = None,
    speed: float = 1.0,
    max_new_tokens: int = 30,
) -> Description:
    """Blocking: run it in a thread from async code. ``image`` is an RGB PIL image (``captioning.open_image``)."""
    language, voice = check(language, voice, speed, "wav")
    caption = captioning.captioner(model).caption(image, max_new_tokens)
    if caption.strip():
        translated = translation.translator().translate_many([caption], "en", language)[0]
    else:
        translated = ""  # a model may see nothing to say; there is then nothing to translate or speak
    spoken = speech.speaker()
    audio = (
        spoken.synthesize(translated, voice, speed)
        if any(ch.isalnum() for ch in translated)
        else np.zeros(0, np.float32)
    )
    return Description(caption, translated, language, audio, spoken.sample_rate, voice)
