"""The language models' text: the standard-library corpus is built the same way every time and
says when it is not the recorded one; any UTF-8 file works; vocabulary and windows."""
import shutil

import numpy as np
import pytest

from scratchgen.data import text
from scratchgen.data.text import (PYTHON_STDLIB, UNKNOWN, CorpusMismatchWarning, TextDataError, load_text,
                                  read_stdlib_corpus, windows)


def test_the_corpus_builder_is_deterministic_and_records_every_file():
    first, provenance = read_stdlib_corpus()
    second, again = read_stdlib_corpus()
    assert first == second and provenance == again
    assert [entry["path"] for entry in provenance["files"]] == [path for path, _ in PYTHON_STDLIB]
    assert provenance["sha256"] == text.sha256(first.encode("utf-8"))
    assert provenance["matches_recorded"] == (provenance["sha256"] == text.PYTHON_STDLIB_SHA256)
    assert 0.9e6 < len(first) < 1.2e6


def test_a_changed_standard_library_is_named_in_a_warning(tmp_path):
    folder = text.stdlib_folder()
    for relative, _ in PYTHON_STDLIB:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f"{folder}/{relative}", tmp_path / relative)
    with open(tmp_path / "heapq.py", "a", encoding="utf-8") as handle:
        handle.write("# one more line\n")
    with pytest.warns(CorpusMismatchWarning, match=r"1 of 20 files changed \(heapq.py\)"):
        _, provenance = read_stdlib_corpus(str(tmp_path))
    assert not provenance["matches_recorded"]
    assert [entry["path"] for entry in provenance["files"] if not entry["matches"]] == ["heapq.py"]

    (tmp_path / "csv.py").unlink()
    with pytest.raises(TextDataError, match="csv.py.*--data text:PATH"):
        read_stdlib_corpus(str(tmp_path))


def test_any_utf8_file_splits_ninety_ten_with_an_unknown_symbol(tmp_path):
    path = tmp_path / "notes.txt"
    body = "abcab cabba\n" * 30 + "the end: é"   # 'é', 't', 'h'... only in the last 10%
    path.write_text(body, encoding="utf-8")
    data = load_text(f"text:{path}", context=8)
    split = round(len(body) * 0.9)
    assert len(data.train_ids) == split and len(data.valid_ids) == len(body) - split
    assert data.vocabulary.characters == (UNKNOWN, "\n", " ", "a", "b", "c")
    assert data.vocabulary.decode(data.train_ids) == body[:split]
    known = "".join(c if c in "\n abc" else UNKNOWN for c in body[split:])
    assert data.vocabulary.decode(data.valid_ids) == known
    assert data.provenance["sha256"] == text.sha256(body.encode("utf-8"))

    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1") * 20)
    with pytest.raises(TextDataError, match="expected a UTF-8 file"):
        load_text(f"text:{tmp_path / 'latin1.txt'}")
    with pytest.raises(TextDataError, match="expected data 'python-stdlib' or 'text:PATH'"):
        load_text("shakespeare")


def test_windows_overlap_by_one_character_and_subsets_cut_the_text():
    ids = np.arange(23)
    cut = windows(ids, 5)                                   # (23 - 1) // 5 = 4 windows of 6
    assert cut.shape == (4, 6)
    assert np.array_equal(cut[:, 0], [0, 5, 10, 15]) and np.array_equal(cut[1], np.arange(5, 11))
    data = load_text(context=16)
    small = data.subset(train=3, test=2)
    assert small.train_arrays[0].shape == (3, 17) and len(small.valid_ids) == 2 * 16 + 1
    assert np.array_equal(small.train_arrays[0], data.train_arrays[0][:3])
