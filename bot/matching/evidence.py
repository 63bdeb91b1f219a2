"""Which passage an alert quotes: the one that states the claim itself most plainly.

Plainness is closeness to the claim's own wording (the narrative's statements and `claim`
examples, not the reports of it) plus the claim classifier's probability. The pool, in order:
the body passages that support the narrative with an assertion; else the quotable body
passages (about the subject, on the claim, held back by nothing but a counter-example) with
one; else as if headlines asserted too (supported body passages; when only the title
supports, quotable body passages, else the title). Headlines — quoted spans, questions
(bot/matching/probes.headline_probes) — name the claim rather than state it: reports on a
narrative quote them, and they sit nearly word for word on its statements.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.models import Passage


def assertions(claim: np.ndarray, prob: np.ndarray, pos: np.ndarray, ok: np.ndarray,
               headline: np.ndarray, starts: np.ndarray, thresholds: np.ndarray,
               min_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """(passages × narratives) plainness of each passage's best probe that asserts rather than
    names the claim (not a headline), -inf where none: among its supporting probes (`ok`), and
    among its probes on the claim (over the threshold, claim-like) that a counter-example may
    hold back. `claim`, `prob`, `pos`: (probes × narratives) claim cosine, probability, score.
    Without a claim classifier (`min_probability` 0) nothing tells an assertion from a
    sentence on the same topic, and the headline stays the safer evidence: all -inf."""
    if min_probability <= 0:
        nothing = np.full((len(starts), ok.shape[1]), -np.inf)
        return nothing, nothing
    plainness = np.where(headline[:, None], -np.inf, claim + prob)
    on_claim = (pos >= thresholds) & (prob >= min_probability)
    supporting = np.maximum.reduceat(np.where(ok, plainness, -np.inf), starts, axis=0)
    on = np.maximum.reduceat(np.where(on_claim, plainness, -np.inf), starts, axis=0)
    return supporting, on


def evidence_passage(passages: Sequence[Passage], plainness: np.ndarray, supported: np.ndarray,
                     quotable: np.ndarray, asserted: tuple[np.ndarray, np.ndarray]) -> int:
    """The index of the passage one narrative's alert quotes; `plainness` of each passage's
    deciding probe, `supported` (not empty) and `quotable` masks, `asserted` from
    `assertions` (this narrative's columns)."""
    body = np.array([not p.title for p in passages])
    i = plainest(body & supported, asserted[0])
    i = plainest(body & quotable, asserted[1]) if i is None else i
    if i is None:
        pool = body & supported
        if not pool.any():
            pool = (body & quotable) if (body & quotable).any() else supported
        i = plainest(pool, plainness)
    if i is None:
        raise ValueError("no passage supports the narrative")
    return i


def plainest(pool: np.ndarray, plainness: np.ndarray) -> int | None:
    """The passage of `pool` (a mask) with the highest finite plainness, None if none has one."""
    candidates = np.flatnonzero(pool & np.isfinite(plainness))
    return int(candidates[plainness[candidates].argmax()]) if len(candidates) else None
