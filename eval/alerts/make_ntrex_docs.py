"""Build ordinary-news negative documents for the alert eval sets from NTREX-128.

Standard library only; deterministic. Reads the aligned sentences in
/work/shared/eval/parallel/ (`<lang>.tsv` + `meta.tsv`), picks whole NTREX documents by
doc_id, renders each in one language (rotating over the seven languages), and writes

    eval/alerts/docs/ntrex-<lang>-<docid>.txt            (dev half)
    eval/alerts-holdout/docs/ntrex-<lang>-<docid>.txt    (held-out half)

with the first kept sentence as title and the rest grouped into paragraphs of three
sentences (at most MAX_SENTENCES sentences per document). Each is labelled `none`: the
`ntrex-*` rows of both labels.tsv files are replaced, all other rows are kept as they are.

Sentences used for embedding centering (bot/data/background.txt) are skipped, in every
language: if any translation of a sentence id is in the background file, that id is left
out, so the eval text never overlaps the centering text.

NTREX-128: Federmann, Kocmi & Xin (2022), CC BY-SA 4.0; see eval/alerts/README.md.

Usage (from the repository root):  python3 eval/alerts/make_ntrex_docs.py
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

PARALLEL = Path("/work/shared/eval/parallel")
ROOT = Path(__file__).resolve().parents[2]
BACKGROUND = ROOT / "bot" / "data" / "background.txt"
SETS = [ROOT / "eval" / "alerts", ROOT / "eval" / "alerts-holdout"]  # index = i % 2
LANGS = [("ru", "rus_Cyrl"), ("zh", "zho_Hans"), ("kk", "kaz_Cyrl"), ("ky", "kir_Cyrl"),
         ("uz", "uzn_Latn"), ("tg", "tgk_Cyrl"), ("en", "eng_Latn")]
SEED = 20240917
N_DOCS = 30
MIN_SENTENCES = 5
MAX_SENTENCES = 12
PER_PARAGRAPH = 3


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\t", " ")).strip()


def main() -> None:
    texts = {code: {r["id"]: clean(r["text"]) for r in read_tsv(PARALLEL / f"{code}.tsv")}
             for _, code in LANGS}
    background = {line.strip() for line in BACKGROUND.read_text("utf-8").splitlines()
                  if line.strip() and not line.startswith("#")}
    banned = {sid for by_id in texts.values() for sid, t in by_id.items() if t in background}

    docs: dict[str, list[str]] = {}
    for row in read_tsv(PARALLEL / "meta.tsv"):
        docs.setdefault(row["doc_id"], []).append(row["id"])
    for sids in docs.values():
        sids.sort()

    order = sorted(docs)
    random.Random(SEED).shuffle(order)
    picked = []
    for doc_id in order:
        kept = [s for s in docs[doc_id]
                if s not in banned and all(texts[c].get(s) for _, c in LANGS)]
        if len(kept) >= MIN_SENTENCES:
            picked.append((doc_id, kept[:MAX_SENTENCES]))
        if len(picked) == N_DOCS:
            break

    rows: list[list[tuple[str, str]]] = [[], []]
    for folder in SETS:
        (folder / "docs").mkdir(parents=True, exist_ok=True)
        for old in (folder / "docs").glob("ntrex-*.txt"):
            old.unlink()
    for i, (doc_id, sids) in enumerate(picked):
        lang, code = LANGS[i % len(LANGS)]
        sentences = [texts[code][s] for s in sids]
        title, rest = sentences[0], sentences[1:]
        sep = "" if lang == "zh" else " "
        paragraphs = [sep.join(rest[k:k + PER_PARAGRAPH])
                      for k in range(0, len(rest), PER_PARAGRAPH)]
        name = f"ntrex-{lang}-{re.sub(r'[^A-Za-z0-9]+', '-', doc_id)}"
        folder = SETS[i % 2]
        text = "\n".join([title, *paragraphs]) + "\n"
        (folder / "docs" / f"{name}.txt").write_text(text, "utf-8")
        rows[i % 2].append((name, lang))

    for folder, new in zip(SETS, rows, strict=True):
        labels = folder / "labels.tsv"
        header = ["doc\tnarratives\tevidence"]
        lines = labels.read_text("utf-8").splitlines() if labels.exists() else header
        lines = [ln for ln in lines if ln.strip() and not ln.startswith("ntrex-")]
        lines += [f"{name}\tnone\t" for name, _ in new]
        labels.write_text("\n".join(lines) + "\n", "utf-8")
        print(f"{folder.relative_to(ROOT)}: {len(new)} NTREX docs",
              {lang: sum(1 for _, got in new if got == lang) for lang, _ in LANGS})


if __name__ == "__main__":
    main()
