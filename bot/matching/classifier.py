"""A narrative's claim classifier: does a passage say the claim, or only talk about its topic?

Cosine similarity to a statement measures how close a passage is in topic and wording; on its
own it cannot tell "Kazakhstan is historically Chinese land" from a history paper on the same
people. Each narrative therefore also gets a linear classifier over the (centred) embedding,
trained at start-up on its own texts: the statements, claim and report examples (positives)
against its counter-examples, ordinary news and the other narratives' positives (negatives).
It is a logistic regression: a few hundred rows, a few milliseconds to fit by Newton steps,
deterministic, and nothing to ship but the examples themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEWTON_STEPS = 25
RIDGE = 10.0  # L2 strength, per example: keeps 384 weights sane with a few hundred texts


@dataclass(frozen=True)
class ClaimClassifier:
    """P(claim | vector) = sigmoid(vector · weights + bias)."""

    weights: np.ndarray
    bias: float

    @classmethod
    def fit(cls, positives: np.ndarray, negatives: np.ndarray,
            ridge: float = RIDGE) -> ClaimClassifier:
        """Balanced logistic regression: both classes weigh the same however many rows each has."""
        if not len(positives) or not len(negatives):
            return cls(np.zeros(positives.shape[1] if positives.ndim == 2 else 0), 0.0)
        x = np.vstack([positives, negatives]).astype(np.float64)
        x = np.hstack([x, np.ones((len(x), 1))])
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        sample = np.where(y == 1, 0.5 / len(positives), 0.5 / len(negatives))
        penalty = np.eye(x.shape[1]) * ridge / len(x)
        penalty[-1, -1] = 0.0  # the bias is not shrunk
        w = np.zeros(x.shape[1])
        for _ in range(NEWTON_STEPS):
            p = _sigmoid(x @ w)
            gradient = x.T @ (sample * (p - y)) + penalty @ w
            hessian = (x * (sample * p * (1 - p))[:, None]).T @ x + penalty
            step = np.linalg.solve(hessian + 1e-9 * np.eye(len(w)), gradient)
            w -= step
            if np.abs(step).max() < 1e-7:
                break
        return cls(w[:-1].astype(np.float32), float(w[-1]))

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """One probability per row of `vectors` (0.5 everywhere when it was never trained)."""
        if not self.weights.size:
            return np.full(len(vectors), 0.5, dtype=np.float32)
        return _sigmoid(vectors @ self.weights + self.bias).astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))
