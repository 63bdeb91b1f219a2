"""What is embedded for a passage (its probes), and the centred space scores live in.

A passage's probes are its own text, the quoted spans inside it (news that reports a narrative
quotes its headline; the quote alone says it more plainly than the paragraph) and, when it has
several, its sentences, so that one claim sentence inside a long paragraph is not diluted.
Vectors are "centred" when a background mean is given: subtracting the mean embedding of
ordinary news and re-normalising removes what every news sentence shares; a text is centred on
the mean of its own language's news where the background has enough of it (`Centering.of`).
Some probes are *headlines* (`headline_probes`): a quoted span, a question, or a passage that
is nothing but one quoted line. They help find a narrative; they are weak evidence for it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bot.embedding import normalise
from bot.feeds import split_sentences
from bot.models import Passage

MIN_LANGUAGE_TEXTS = 10  # fewer background sentences of a language give a noisy mean of its own
Languages = str | Sequence[str | None] | None  # one code for all rows, one a row, or none


@dataclass(frozen=True)
class Centering:
    """Subtract a background mean and re-normalise; identity when `mean` is None.

    `by_language` holds a mean per language (already blended with the global one): what every
    Tajik news sentence shares is not what every English one shares, so a text is centred on
    its own language's mean where there is one, and on the global mean otherwise."""

    mean: np.ndarray | None = None
    by_language: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, vectors: np.ndarray, languages: Sequence[str], *, weight: float,
           min_texts: int = MIN_LANGUAGE_TEXTS) -> Centering:
        """The global mean of `vectors` and, for each language with `min_texts` of them,
        `weight` × its own mean + (1 − `weight`) × the global one."""
        mean = vectors.mean(axis=0).astype(np.float32)
        codes = np.array(languages, dtype=object)
        by_language = {} if weight <= 0 else {
            code: (weight * vectors[codes == code].mean(axis=0)
                   + (1 - weight) * mean).astype(np.float32)
            for code in sorted(set(languages)) if (codes == code).sum() >= min_texts}
        return cls(mean, by_language)

    def apply(self, vectors: np.ndarray, languages: Languages = None) -> np.ndarray:
        if self.mean is None:
            return vectors
        return normalise(vectors - self._means(self.mean, len(vectors), languages))

    def _means(self, mean: np.ndarray, rows: int, languages: Languages) -> np.ndarray:
        if not self.by_language or languages is None:
            return mean
        if isinstance(languages, str):
            return self.by_language.get(languages, mean)
        if not rows:
            return mean
        return np.stack([self.by_language.get(code or "", mean) for code in languages])


MIN_SENTENCE_CHARS = 25  # shorter sentences ("He disagreed.") carry no claim on their own


@functools.lru_cache(maxsize=4096)
def passage_probes(passage: Passage) -> tuple[str, ...]:
    """The texts scored for one passage: itself, its quoted spans, and (when it has several)
    its sentences, so that one claim sentence inside a long paragraph is not diluted.

    Cached: the pipeline asks once to embed them and scoring asks again for their rows and
    their words; sentence splitting should happen once per passage."""
    probes = (passage.text, *passage.quotes)
    sentences = split_sentences(passage.text)
    if len(sentences) > 1:
        probes += tuple(s for s in sentences
                        if len(s) >= MIN_SENTENCE_CHARS and s not in passage.quotes)
    return probes


# What a line may be wrapped in when it is a quoted headline, in the watched scripts
QUOTE_MARKS = "\"'«»“”„‘’‚‹›「」『』《》〈〉"
QUESTION_MARKS = ("?", "？")


def headline_probes(passages: Sequence[Passage]) -> np.ndarray:
    """One flag per text of `probe_texts(passages)`: the probe is a headline rather than an
    assertion. Reports quote the piece they report on by its headline, and such headlines
    are questions ("Why is Kazakhstan eager to return to China?"): close to a narrative's
    own statements, yet they name the claim rather than say it."""
    flags: list[bool] = []
    for p in passages:
        bare = p.text.strip().strip(QUOTE_MARKS).strip()
        one_quote = any(q.strip() == bare for q in p.quotes)
        for text in passage_probes(p):
            flags.append(text in p.quotes or (one_quote and text == p.text)
                         or text.strip().rstrip(QUOTE_MARKS).rstrip().endswith(QUESTION_MARKS))
    return np.array(flags, dtype=bool)


def passage_rows(passages: Sequence[Passage]) -> np.ndarray:
    """Where each passage's own text sits among the rows of `probe_texts(passages)`."""
    return segment_starts([len(passage_probes(p)) for p in passages])


def probe_texts(passages: Sequence[Passage]) -> list[str]:
    """The texts to embed for `passages`: each passage's probes, in order."""
    return [text for p in passages for text in passage_probes(p)]


def segment_starts(sizes: Sequence[int]) -> np.ndarray:
    return np.cumsum([0, *sizes[:-1]]).astype(int) if len(sizes) else np.zeros(0, dtype=int)
