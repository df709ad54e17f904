"""Which language a text is in, so BM25 can stem and drop stopwords the way that language needs.

Detection is py3langid's (a maintained fork of langid.py: an offline naive-Bayes model over byte n-grams,
97 languages, about a millisecond a chunk), limited to the languages ragline can analyse: the ones
PyStemmer has a Snowball stemmer for, and Chinese, Japanese and Korean, whose text is split into
character bigrams instead of stemmed. A text too short or too unlike any of them to call with confidence
gets ``None``, and the caller falls back (a chunk to its document's language, a document to English), so
a code listing or a table of numbers in an English manual is not re-analysed as Estonian.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

ENGLISH = "en"

STEMMERS: dict[str, str] = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "eo": "esperanto",
    "et": "estonian",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "no": "norwegian",
    "fa": "persian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}
"""ISO 639-1 code -> PyStemmer's Snowball algorithm (the languages py3langid also knows)."""

CJK = frozenset({"zh", "ja", "ko"})
LANGUAGES = frozenset(STEMMERS) | CJK

MIN_LETTERS = 24
"""Fewer letters than this and no language is called: a heading or a line of code says too little."""
MIN_PROBABILITY = 0.9
"""py3langid's normalised probability a call needs; below it the fallback language is used."""
QUERY_PROBABILITY = 0.5
"""A query is short; its likeliest language is used when it is at least this likely."""
SAMPLE_CHARS = 4000
"""Detection reads at most this much of a text: a document's opening says its language."""
CHUNK_SAMPLE_CHARS = 500
"""... and this much of a chunk's own text (about a third of a 200-token window): py3langid's time grows
with the text, and at ingest it ran on every chunk, 2 ms each, a tenth of the int8 embedder's time. On a
sample of the Debian folder (1,702 chunks) 300 characters already called every chunk as the whole did."""


_LOADING = threading.Lock()


def _identifier() -> Any:
    """The model, loaded once even when a warm-up thread and the first detection ask for it together."""
    with _LOADING:
        return _load_identifier()


def warm_up() -> threading.Thread:
    """Load the model in the background (0.6 s, a decompression that releases the GIL), so the first
    document of a sync does not wait for it while the parser workers start."""
    thread = threading.Thread(target=_identifier, name="ragline-langid", daemon=True)
    thread.start()
    return thread


@lru_cache(maxsize=1)
def _load_identifier() -> Any:
    """py3langid's model, decompressed in memory: its own loader streams it through a temporary file, which
    fails in the middle of a sync under a file-size limit or on a full /tmp."""
    import io
    import lzma
    from array import array
    from pathlib import Path

    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    def table(values: Any) -> array:  # what py3langid's loader hands the identifier: an unsigned array
        out = array({2: "H", 4: "I", 8: "L"}[values.dtype.itemsize])
        out.frombytes(np.ascontiguousarray(values).tobytes())
        return out

    path = Path(MODEL_FILE) if Path(MODEL_FILE).is_absolute() else Path(MODEL_DIR) / MODEL_FILE
    with lzma.open(path) as packed, np.load(io.BytesIO(packed.read()), allow_pickle=False) as data:
        identifier = LanguageIdentifier(
            np.asarray(data["ptc"]),
            np.asarray(data["pc"]),
            data["classes"].tolist(),
            table(data["nextmove"]),
            data["out_feat"].tolist(),
            norm_probs=True,
            tk_row=table(data["nextmove_row"]),
        )
    identifier.set_languages(sorted(LANGUAGES))
    return identifier


def detect(text: str, sample_chars: int = SAMPLE_CHARS) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or None when it cannot be told with confidence."""
    sample = text[:sample_chars]
    if sum(c.isalpha() for c in sample) < MIN_LETTERS:
        return None
    language, probability = _identifier().classify(sample)
    return str(language) if probability >= MIN_PROBABILITY else None


def guess(text: str) -> str | None:
    """The likeliest language of a short text (a query), when it is at least an even bet: a query is
    analysed as English and as this language both, so a misjudged query still matches what an English one
    would, and a confident German one matches German stems."""
    if not any(c.isalpha() for c in text):
        return None
    language, probability = _identifier().classify(text)
    return str(language) if probability >= QUERY_PROBABILITY else None


def chunk_languages(document_text: str, texts: list[str]) -> list[str]:
    """Each chunk's language: its own when it can be told (``texts`` are the chunks' own words, without the
    title and heading lines the index adds, which may be in another language), else its document's, else
    English."""
    fallback = detect(document_text) or ENGLISH
    return [detect(text, CHUNK_SAMPLE_CHARS) or fallback for text in texts]
