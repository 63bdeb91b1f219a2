"""Pick the NTREX-128 ordinary-news documents of the alert eval sets; write their label rows.

Standard library only; deterministic. Reads the aligned sentences in the shared data
(`eval/parallel/<lang>.tsv` + `meta.tsv`; the shared folder is $NARRATIVE_BOT_SHARED, else
`shared` beside the checkout), picks whole NTREX documents by doc_id, assigns each one
language (rotating over the seven languages) and one set (alternating dev / held-out), and
writes one row per document into that set's labels.tsv:

    ntrex-<lang>-<docid> <TAB> none <TAB> <TAB> ntrex:<lang file>:<title>|<paragraph>|…

The `source` reference lists NTREX sentence numbers: the first kept sentence is the title,
the rest are grouped into paragraphs of three (at most MAX_SENTENCES sentences per
document). `narrative-bot eval` reads the sentences from the shared data at run time, so no
NTREX text is stored in the repository. The `ntrex-*` rows of both labels.tsv files are
replaced; all other rows are kept as they are.

Sentences used for embedding centering (bot/data/background.txt) are skipped, in every
language: if any translation of a sentence id is in the background file, that id is left
out, so the eval text never overlaps the centering text.

NTREX-128: Federmann, Kocmi & Xin (2022), CC BY-SA 4.0; see eval/alerts/README.md.

Usage (from the repository root):  python3 eval/alerts/make_ntrex_docs.py
"""

from __future__ import annotations

import csv
import os
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NARRATIVE_BOT_SHARED") or ROOT.parent / "shared")
PARALLEL = SHARED / "eval" / "parallel"
BACKGROUND = ROOT / "bot" / "data" / "background.txt"
SETS = [ROOT / "eval" / "alerts", ROOT / "eval" / "alerts-holdout"]  # index = i % 2
LANGS = [("ru", "rus_Cyrl"), ("zh", "zho_Hans"), ("kk", "kaz_Cyrl"), ("ky", "kir_Cyrl"),
         ("uz", "uzn_Latn"), ("tg", "tgk_Cyrl"), ("en", "eng_Latn")]
SEED = 20240917
N_DOCS = 30
MIN_SENTENCES = 5
MAX_SENTENCES = 12
PER_PARAGRAPH = 3
HEADER = "doc\tnarratives\tevidence\tsource"


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\t", " ")).strip()


def pick_documents() -> list[tuple[str, list[str]]]:
    """(NTREX doc_id, kept sentence ids) in the seeded order, N_DOCS of them."""
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
    return picked


def reference(code: str, sids: list[str]) -> str:
    """`ntrex:<code>:<title>|<paragraph>|…` with sentence numbers (`ntrex-0042` → 42)."""
    numbers = [str(int(sid.removeprefix("ntrex-"))) for sid in sids]
    groups = [numbers[:1]] + [numbers[k:k + PER_PARAGRAPH]
                              for k in range(1, len(numbers), PER_PARAGRAPH)]
    return f"ntrex:{code}:" + "|".join(",".join(group) for group in groups)


def main() -> None:
    rows: list[list[tuple[str, str]]] = [[], []]
    for i, (doc_id, sids) in enumerate(pick_documents()):
        lang, code = LANGS[i % len(LANGS)]
        name = f"ntrex-{lang}-{re.sub(r'[^A-Za-z0-9]+', '-', doc_id)}"
        rows[i % 2].append((name, reference(code, sids)))

    for folder, new in zip(SETS, rows, strict=True):
        labels = folder / "labels.tsv"
        lines = labels.read_text("utf-8").splitlines() if labels.exists() else [HEADER]
        lines = [ln for ln in lines if ln.strip() and not ln.startswith("ntrex-")]
        lines += [f"{name}\tnone\t\t{source}" for name, source in new]
        labels.write_text("\n".join(lines) + "\n", "utf-8")
        print(f"{folder.relative_to(ROOT)}: {len(new)} NTREX documents",
              {lang: sum(1 for name, _ in new if name.startswith(f"ntrex-{lang}-"))
               for lang, _ in LANGS})


if __name__ == "__main__":
    main()
