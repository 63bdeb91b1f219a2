"""Narrative files: narratives/*.toml, each validated on load with file:line errors.

A narrative may name a TSV of training examples (`examples = "examples/<id>.tsv"`, relative to
its file): rows `label<TAB>lang<TAB>text` where label is `claim` (says it), `report` (reports
someone saying it) or `counter` (the same topic without the claim). Claims and reports join
the statements; counters join the counter-examples; all of them train its classifier.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.config.files import ConfigError, describe, line_of, read_toml
from bot.matching.guard import KeywordGuard


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Text = Annotated[str, Field(min_length=3, max_length=2000)]
Terms = list[Annotated[str, Field(min_length=1, max_length=100)]]
LABELS = ("claim", "report", "counter")
MAX_EXAMPLES = 5000


class Example(_Strict):
    """One training example of a narrative's examples file."""

    label: Literal["claim", "report", "counter"]
    lang: str = Field(pattern=r"^[a-z]{2,3}$")
    text: Text


class Narrative(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    title: str = Field(min_length=1, max_length=200)
    title_ru: str | None = Field(default=None, min_length=1, max_length=200)  # in Russian chats
    statements: list[Text] = Field(min_length=1)
    counter_examples: list[Text] = Field(default_factory=list)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    # keyword guard: the article must name one of these (literal, whole word, `*` = prefix)
    require_any: Terms = Field(default_factory=list, max_length=500)
    # what the claim is about, in every language (same syntax): a passage supports the
    # narrative only when it names its subject, or names no narrative's subject while the
    # article's title names this one
    subject: Terms = Field(default_factory=list, max_length=500)
    examples: Path | None = None  # TSV of training examples, relative to this file
    enabled: bool = True
    source_file: Path | None = Field(default=None, exclude=True)
    training: tuple[Example, ...] = Field(default=(), exclude=True)  # read from `examples`

    @field_validator("require_any", "subject")
    @classmethod
    def _terms(cls, v: list[str]) -> list[str]:
        KeywordGuard(v)  # raises ValueError naming a bad term
        return v

    def title_in(self, language: str) -> str:
        """The title shown to a chat that reads `language` (`title_<lang>`, else `title`)."""
        return (self.title_ru if language == "ru" else None) or self.title

    @property
    def positives(self) -> list[str]:
        """Texts that carry the narrative: the statements, then the claim and report examples."""
        return [*self.statements, *(e.text for e in self.training if e.label != "counter")]

    @property
    def negatives(self) -> list[str]:
        """Texts on its topic that do not: the counter-examples, then the counter examples."""
        return [*self.counter_examples,
                *(e.text for e in self.training if e.label == "counter")]


def load_narratives(directory: Path) -> list[Narrative]:
    """Every *.toml under `directory`, validated; ids must be unique across files."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: narratives_dir is not a folder")
    narratives: list[Narrative] = []
    seen: dict[str, Path] = {}
    for file in sorted(directory.glob("*.toml")):
        narrative = load_narrative(file)
        if narrative.id in seen:
            line = line_of(file, ("id",))
            raise ConfigError(f"{file}:{line}: key 'id': {narrative.id!r} is already used by "
                              f"{seen[narrative.id]}")
        seen[narrative.id] = file
        narratives.append(narrative)
    return [n for n in narratives if n.enabled]


def load_narrative(file: Path) -> Narrative:
    """One narrative file, validated; raises ConfigError naming file, line, key, reason."""
    try:
        narrative = Narrative.model_validate(read_toml(file))
    except ValidationError as exc:
        raise ConfigError(describe(exc, file)) from None
    training: tuple[Example, ...] = ()
    if narrative.examples is not None:
        path = narrative.examples
        training = read_examples(path if path.is_absolute() else file.parent / path, file)
    return narrative.model_copy(update={"source_file": file, "training": training})


def read_examples(path: Path, owner: Path) -> tuple[Example, ...]:
    """The rows of an examples TSV (header `label, lang, text`); a bad row names its line."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise ConfigError(f"{owner}: key 'examples': {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not rows or [c.strip() for c in rows[0]] != ["label", "lang", "text"]:
        raise ConfigError(f"{path}:1: the header must be label<TAB>lang<TAB>text")
    if len(rows) - 1 > MAX_EXAMPLES:
        raise ConfigError(f"{path}: more than {MAX_EXAMPLES} examples")
    examples = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise ConfigError(f"{path}:{number}: expected 3 tab-separated columns, got {len(row)}")
        try:
            examples.append(Example(label=row[0].strip(), lang=row[1].strip(),  # type: ignore[arg-type]
                                    text=row[2].strip()))
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}:{number}: {reason}") from None
    return tuple(examples)
