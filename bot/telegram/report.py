"""What one delivery round did: the record every sink returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    paused_for: float = 0.0
