"""bot.feeds.language: declared codes normalised, and the letter heuristic on watched languages."""

from __future__ import annotations

import pytest

from bot.feeds.language import guess_language, normalize_language


@pytest.mark.parametrize(("text", "code"), [
    ("Казахстан хочет вернуться в состав Китая.", "ru"),
    ("Қазақстан Қытайға қайтып оралғысы келеді", "kk"),
    ("Әлемдегі жаңалықтар", "kk"),
    ("Кыргызстан өзүнүн тарыхый мекенине кайтууга тийиш", "ky"),
    ("Тоҷикистон ба Чин ҳамроҳ мешавад", "tg"),
    ("哈萨克斯坦为何急于回归中国？", "zh"),
    ("Sohu: 哈萨克斯坦为何急于回归中国", "zh"),
    ("Qozogʻiston Xitoyga qaytishni xohlaydi", "uz"),
    ("Bu haqida Xitoy va O'zbekiston rasmiylari bilan kelishildi", "uz"),
    ("Kazakhstan wants to return to China", "en"),
    ("Україна і Китай підписали угоду про співпрацю", "uk"),
    ("12345 — !!!", "und"),
    ("", "und"),
])
def test_guess_language(text: str, code: str) -> None:
    assert guess_language(text) == code


def test_a_quoted_name_does_not_change_a_long_russian_text() -> None:
    text = "Президент Касым-Жомарт Токаев провёл встречу с делегацией. " * 10 + "Тоқаев"
    assert guess_language(text) == "ru"


@pytest.mark.parametrize(("code", "expected"), [
    ("ru-RU", "ru"), ("RUS", "ru"), ("zh_Hans", "zh"), ("kk-Cyrl-KZ", "kk"), ("kaz", "kk"),
    ("uzn", "uz"), (" en ", "en"), ("und", None), ("", None), (None, None), ("x", None),
    ("english", None), (42, None),
])
def test_normalize_language(code: object, expected: str | None) -> None:
    assert normalize_language(code) == expected
