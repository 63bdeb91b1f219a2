"""The benchmark's news: multilingual articles built from shared/eval/parallel and shared/seeds.

Articles are runs of up to 8 consecutive paragraphs (3–8 where the document has them; NTREX
documents are short, so some articles are 1–2 paragraphs) of one NTREX-128 news document in one
of seven languages (en, ru, kk, ky, tg, uz, zh); a paragraph is the sentences that make about 65
English words, the same sentences in every language. The title is the paragraph's first sentence.
As in real feeds, outlets end many items with their own boilerplate paragraph, some items are
syndicated copies of another outlet's item, and a few are the seed articles (two of which carry
the narratives and alert). Everything is drawn from a seeded RNG: the same sizes give the same
feeds.

NTREX has 1,004 sentences per language, so a big load repeats them and a vector cache answers
most of it. Real news does not repeat itself (beyond copies and footers), so `fresh` news tells
every sentence anew: its opening half joined to the closing half of another sentence of the same
language. The words, scripts and lengths stay those of real news; the texts become unique, and
the model has to encode each one, as it would in production.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

LANGS = ("eng_Latn", "rus_Cyrl", "kaz_Cyrl", "kir_Cyrl", "tgk_Cyrl", "uzn_Latn", "zho_Hans")
PARAGRAPH_WORDS = 65
# One outlet footer per language (written for the benchmark): the same paragraph under many items.
BOILERPLATE = {
    "eng_Latn": "Subscribe to our Telegram channel to get the news first. Reprinting is allowed "
                "only with an active link to the source. All rights reserved.",
    "rus_Cyrl": "Подписывайтесь на наш Telegram-канал, чтобы первыми узнавать новости. "
                "Перепечатка разрешена только с активной ссылкой на источник.",
    "kaz_Cyrl": "Жаңалықтарды бірінші болып білу үшін Telegram-арнамызға жазылыңыз. Материалды "
                "көшіріп басу тек дереккөзге белсенді сілтеме болған жағдайда рұқсат етіледі.",
    "kir_Cyrl": "Жаңылыктарды биринчи болуп билүү үчүн Telegram-каналыбызга жазылыңыз. "
                "Материалды көчүрүп басууга булакка активдүү шилтеме менен гана уруксат.",
    "tgk_Cyrl": "Ба канали Telegram-и мо обуна шавед, то хабарҳоро аввал гиред. Нашри такрорӣ "
                "танҳо бо истиноди фаъол ба манбаъ иҷозат дода мешавад.",
    "uzn_Latn": "Yangiliklarni birinchi bo'lib bilish uchun Telegram kanalimizga obuna bo'ling. "
                "Materiallardan faqat manbaga faol havola bilan foydalanish mumkin.",
    "zho_Hans": "欢迎订阅我们的Telegram频道，第一时间获取新闻。"
                "转载须注明出处并附上有效链接。版权所有。",
}
SEED_TITLES = {  # the seed articles' titles (the seeds themselves are read from shared/)
    "000": "Chinese claims that Central Asia wants to 'return' to China threaten sovereignty, "
           "analysts say",
    "001": "How the CCP's money buys influence in Central Asia",
    "002": "Beijing charm offensive in Central Asia",
    "003": "China's Security Management Towards Central Asia",
    "004": "China–Kazakhstan relations",
}
BOILERPLATE_SHARE = 0.3
SYNDICATED_SHARE = 0.1
SEED_SHARE = 0.01


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    paragraphs: tuple[str, ...]
    kind: str  # "news", "syndicated", "seed"


@dataclass(frozen=True)
class Paragraphs:
    """Per language, per document: paragraphs (lists of sentences), aligned across languages."""

    by_lang: dict[str, list[list[list[str]]]]

    def documents(self) -> int:
        return len(self.by_lang[LANGS[0]])

    def sentences(self, lang: str) -> list[str]:
        return [s for doc in self.by_lang[lang] for para in doc for s in para]


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = path.read_text("utf-8").splitlines()[1:]
    return [tuple(row.split("\t", 1)) for row in rows if "\t" in row]  # type: ignore[misc]


def load_paragraphs(parallel: Path) -> Paragraphs:
    """Group each document's sentences into ~65-word paragraphs, the same way in every language."""
    doc_of = {sid: rest.split("\t")[0] for sid, rest in _read_tsv(parallel / "meta.tsv")}
    texts = {lang: dict(_read_tsv(parallel / f"{lang}.tsv")) for lang in LANGS}
    english = texts["eng_Latn"]
    docs: dict[str, list[list[str]]] = {}
    for sid in english:
        group = docs.setdefault(doc_of.get(sid, "?"), [[]])
        if sum(len(english[s].split()) for s in group[-1]) >= PARAGRAPH_WORDS:
            group.append([])
        group[-1].append(sid)
    by_lang = {lang: [[[texts[lang][s] for s in para] for para in paras]
                      for paras in docs.values()] for lang in LANGS}
    return Paragraphs(by_lang)


def _join(lang: str, sentences: list[str]) -> str:
    return ("" if lang == "zho_Hans" else " ").join(sentences)


def load_seeds(seeds: Path) -> list[Item]:
    items = []
    for prefix, title in SEED_TITLES.items():
        path = next(seeds.glob(f"{prefix}_*.txt"))
        paragraphs = tuple(p.strip() for p in path.read_text("utf-8").splitlines() if p.strip())
        items.append(Item(f"seed-{prefix}", title, paragraphs, "seed"))
    return items


def splice(opening: str, closing: str, lang: str) -> str:
    """The first half of `opening` and the second half of `closing` (words; characters in
    Chinese): a new sentence with the words and length of real ones."""
    if lang == "zho_Hans":
        return opening[:len(opening) // 2] + closing[len(closing) // 2:]
    first, second = opening.split(), closing.split()
    return " ".join(first[:max(1, len(first) // 2)] + second[len(second) // 2:])


def _retold(lang: str, paragraph: list[str], pool: list[str], rng: random.Random) -> list[str]:
    return [splice(sentence, rng.choice(pool), lang) for sentence in paragraph]


def make_feeds(paragraphs: Paragraphs, seeds: list[Item], feeds: int, items: int,
               documents: int | None = None, rng_seed: int = 20261123, *,
               fresh: bool = False, first_feed: int = 0) -> list[list[Item]]:
    """`feeds` lists of `items` items, newest first. `documents` limits the paragraph pool
    (fewer distinct texts to embed); `fresh` tells every news sentence anew (module doc).
    `first_feed` numbers the guids, so that two loads served side by side never share one."""
    rng = random.Random(rng_seed)
    pools = {lang: paragraphs.sentences(lang) for lang in LANGS} if fresh else {}
    doc_count = min(documents or paragraphs.documents(), paragraphs.documents())
    out: list[list[Item]] = []
    made: list[Item] = []
    for f in range(feeds):
        feed_lang = LANGS[f % len(LANGS)]
        feed_items: list[Item] = []
        for i in range(items):
            guid = f"urn:bench:{first_feed + f}:{i}"
            roll = rng.random()
            if roll < SEED_SHARE:
                seed = rng.choice(seeds)
                feed_items.append(Item(guid, seed.title, seed.paragraphs, "seed"))
                continue
            if roll < SEED_SHARE + SYNDICATED_SHARE and made:
                copy = rng.choice(made)
                feed_items.append(Item(guid, copy.title, copy.paragraphs, "syndicated"))
                continue
            lang = feed_lang if rng.random() < 0.7 else rng.choice(LANGS)
            doc = paragraphs.by_lang[lang][rng.randrange(doc_count)]
            start = rng.randrange(len(doc))
            chosen = doc[start:start + rng.randint(3, 8)]
            if fresh:
                chosen = [_retold(lang, para, pools[lang], rng) for para in chosen]
            texts = [_join(lang, p) for p in chosen]
            if rng.random() < BOILERPLATE_SHARE:
                texts.append(BOILERPLATE[lang])
            item = Item(guid, chosen[0][0], tuple(texts), "news")
            made.append(item)
            feed_items.append(item)
        out.append(feed_items)
    return out


def claim_item(paragraphs: Paragraphs, k: int, rng: random.Random) -> Item:
    """A new narrative-bearing item for the latency runs: a quoted claim amid ordinary news."""
    lang = rng.choice(LANGS)
    doc = paragraphs.by_lang[lang][rng.randrange(paragraphs.documents())]
    news = [_join(lang, p) for p in doc[:2]]
    claim = ('A Chinese website published an article titled "Why Kazakhstan is eager to return '
             f'to China", report number {k} on the subject this month.')
    return Item(f"urn:bench:claim:{k}:{rng.random()}",
                f"Why Kazakhstan is eager to return to China (#{k})", (claim, *news), "claim")


def sixty_five_word_paragraphs(paragraphs: Paragraphs, count: int) -> list[str]:
    """`count` paragraphs of ~65 words spread over the seven languages (the model's yardstick)."""
    out: list[str] = []
    d = 0
    while len(out) < count:
        for lang in LANGS:
            doc = paragraphs.by_lang[lang][d % paragraphs.documents()]
            out.append(_join(lang, doc[0]))
        d += 1
    return out[:count]
