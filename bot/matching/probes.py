"""What is embedded for a passage (its probes), and the centred space scores live in.

A passage's probes are its own text, the quoted spans inside it (news that reports a narrative
quotes its headline; the quote alone says it more plainly than the paragraph) and, when it has
several, its sentences, so that one claim sentence inside a long paragraph is not diluted.
Vectors are "centred" when a background mean is given: subtracting the mean embedding of
ordinary news and re-normalising removes what every news sentence shares.
Some probes are *headlines* (`headline_probes`): a quoted span, a question, or a passage that
is nothing but one quoted line. They help find a narrative; they are weak evidence for it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.embedding import normalise
from bot.feeds import split_sentences
from bot.models import Passage


@dataclass(frozen=True)
class Centering:
    """Subtract a background mean and re-normalise; identity when `mean` is None."""

    mean: np.ndarray | None = None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        if self.mean is None:
            return vectors
        return normalise(vectors - self.mean)


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
