"""Alert buttons: callback_data within 64 bytes, signed, and refused when tampered with."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.models import Alert, Evidence
from bot.storage.store import Store
from bot.telegram.buttons import MUTE, RELEVANT, WRONG, ButtonSigner, Press


def alert(narratives: int) -> Alert:
    evidence = tuple(Evidence(f"narrative-{i}", f"Narrative {i}", 0.8, "passage")
                     for i in range(narratives))
    return Alert(id=123456789012, chat_id="@c", source="S", article_title="T",
                 article_url="https://x", evidence=evidence)


def test_round_trip_and_size() -> None:
    signer = ButtonSigner(b"k" * 32)
    for action in (RELEVANT, WRONG, MUTE):
        data = signer.encode(action, 123456789012, 7, chat_id="-1001234567890")
        assert len(data.encode()) <= 64
        assert signer.decode(data, "-1001234567890") == Press(action, 123456789012, 7)


@pytest.mark.parametrize("data", [None, "", "garbage", "r:1:0", "x:1:0:AAAAAAAAAAA",
                                  "r:1:0:AAAAAAAAAAA", "r:1:0:" + "A" * 200])
def test_malformed_or_unsigned_data_is_refused(data: str | None) -> None:
    assert ButtonSigner(b"k" * 32).decode(data, "@c") is None


def test_tampering_with_any_field_breaks_the_signature() -> None:
    signer = ButtonSigner(b"k" * 32)
    data = signer.encode(WRONG, 41, 0, chat_id="@c")
    action, alert_id, index, signature = data.split(":")
    for forged in (f"{RELEVANT}:{alert_id}:{index}:{signature}",
                   f"{action}:42:{index}:{signature}", f"{action}:{alert_id}:1:{signature}"):
        assert signer.decode(forged, "@c") is None
    assert ButtonSigner(b"other key").decode(data, "@c") is None


def test_a_press_verifies_only_in_the_chat_the_alert_was_sent_to() -> None:
    """Finding 6: a callback replayed in another chat than the alert's counted as a vote."""
    signer = ButtonSigner(b"k" * 32)
    data = signer.encode(WRONG, 41, 0, chat_id="@c")
    assert signer.decode(data, "@c") == Press(WRONG, 41, 0)
    for elsewhere in ("-1009999", "7", "@other", ""):
        assert signer.decode(data, elsewhere) is None


def test_key_persists_in_state(tmp_path: Path) -> None:
    data = ButtonSigner.from_store(Store(tmp_path / "s.sqlite3")).encode(MUTE, 5, chat_id="7")
    signer = ButtonSigner.from_store(Store(tmp_path / "s.sqlite3"))
    assert signer.decode(data, "7") == Press(MUTE, 5, 0)


def test_keyboard_has_one_wrong_button_per_narrative() -> None:
    signer = ButtonSigner(b"k" * 32)
    single = signer.keyboard(alert(1)).inline_keyboard
    assert [b.text for row in single for b in row] == [
        "👍 relevant", "🔇 mute source", "👎 not this narrative"]
    several = signer.keyboard(alert(3)).inline_keyboard
    wrong = several[1]
    assert [signer.decode(b.callback_data, "@c").narrative_index for b in wrong] == [0, 1, 2]
    assert all(len(b.callback_data.encode()) <= 64 for row in several for b in row)
