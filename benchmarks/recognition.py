"""Is the synthesized English understood? An independent recognizer listens to the Joe voice.

    python benchmarks/recognition.py     # words heard / words spoken over five sentences

The recognizer is CMU PocketSphinx with the US English model its PyPI package ships
(so it runs offline); it knows nothing of piper. No Portuguese recognizer ships
offline, so the Portuguese voice cannot be checked this way.
"""

from __future__ import annotations

import io
import wave

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call me tomorrow morning at the office",
    "the weather today is sunny and warm",
    "i would like a cup of coffee with milk",
    "open the door and turn on the light",
]


def recognized_words(wav: bytes) -> list[str]:
    """The words PocketSphinx hears in 16-bit mono WAV bytes (resampled to its 16 kHz model)."""
    import numpy as np
    from pocketsphinx import Decoder

    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    n = int(len(audio) * 16000 / rate)
    pcm = np.interp(np.arange(n) * rate / 16000, np.arange(len(audio)), audio).astype("<i2").tobytes()
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr.split() if decoder.hyp() else []


def main():
    from pocketlm.tasks import speech

    speaker = speech.speaker()
    spoken = heard = 0
    for sentence in SENTENCES:
        wav = speech.encode(speaker.synthesize(sentence, "joe"), speaker.sample_rate, "wav")
        words = recognized_words(wav)
        spoken += len(sentence.split())
        heard += sum(word in words for word in sentence.split())
        print(f"said:  {sentence}\nheard: {' '.join(words)}")
    print(f"{heard} of {spoken} words heard ({heard / spoken:.1%})")


if __name__ == "__main__":
    main()
