"""Text for the language models: Python's own standard library as an embedded corpus, or any
UTF-8 file (``--data text:PATH``), as character ids split 90/10 by position.

    data = load_text("python-stdlib", context=64)   # or "text:notes.txt"
    data.train_ids, data.valid_ids                   # (N,) int64 ids of characters
    data.train_arrays                                # ((n, context + 1) windows,): what the loader batches
    data.vocabulary.decode(data.valid_ids[:80])      # back to a string

The corpus is ``PYTHON_STDLIB``: twenty modules of the standard library read from the running
Python's own ``lib/python3.X`` and concatenated in the fixed order below (about 1 MB; validation
is the last 10%, which is most of ``argparse.py``). The standard library changes between Python
releases, so each file's SHA-256 and the corpus's are recorded here for the Python 3.11.7 the
numbers in ``docs/language_models.md`` were measured with; when they differ, loading warns
(``CorpusMismatchWarning`` on stderr) and the run's ``config.json`` and final metrics say so.
Results on another Python are still valid measurements, just of a slightly different corpus.

The vocabulary is the training split's characters, sorted, after an unknown symbol (id 0,
shown as U+FFFD) that stands for any character the training split lacks.
"""
import dataclasses
import functools
import hashlib
import os
import sys
import sysconfig
import warnings

import numpy as np

CORPUS_NAME = "python-stdlib"
VALID_SHARE = 0.1
UNKNOWN = "\ufffd"   # the replacement character: what a character outside the vocabulary reads as

# (path under the standard library folder, SHA-256 of the file's bytes on Python 3.11.7)
PYTHON_STDLIB = (
    ("string.py", "24aeae1f0526250f442022022bf98df9a823b1cb330543ee79e70e44907462e9"),
    ("textwrap.py", "62867e40cdea6669b361f72af4d7daf0359f207c92cbeddfc7c7506397c1f31c"),
    ("heapq.py", "6d43277e5c76fc0f073cd388fcff852d14d068f6bb6d4886c340f8b75a1229a9"),
    ("csv.py", "6c68a5186e3b85e6e267a7ef96479327a45ae2b40bf5e9f2017e4b2282b3f5b1"),
    ("fractions.py", "b11e850e354808b882d13a70a911c29accd1dbdd41757566704e3b7206c74edb"),
    ("random.py", "b931a2d452db89ab9e1f79d59b66ce194dbd6748049cfe44699726da52b9c956"),
    ("contextlib.py", "d732c045bc7450997f97b2f79cfdb1546b68d2655e89ab3170f3b19b3930d83c"),
    ("functools.py", "6d80018a3fa9fed44c5b78f881987ee3ab3fb1238b077b4e6dcb4b76da7db73b"),
    ("statistics.py", "889a066f1b8063e73387ceb84018efc507a89b365b56c6afb9cc15b2ed25c2d9"),
    ("pathlib.py", "3b21ac188fd9ac20bacc8ccd976fabd5d8ccf5000f8e157d3dfff005b228fb3d"),
    ("collections/__init__.py", "303701de55e434c0fbcc478ae8a79a28537d9ebe83b3150508438ffd6e3e14c7"),
    ("configparser.py", "4a70cecccb55031a413b79e6ced2e63ca031f770cd25a4882980ecdeab67f6ff"),
    ("shutil.py", "d0dbfcd96ba06684aaf5d55e941aaaf36bb3a22cf537ea9d46317b363bcc5792"),
    ("dataclasses.py", "4b7e1c99ebea53b546317d218a0261895a1769f83a6b95dc0136f13578066a7f"),
    ("ast.py", "c513073798bdbf3cdef09327d0d2d381a53213a13a4ba3f02729695327539406"),
    ("enum.py", "84fc683aa71da233cf0f6a1bd59ffedc2bc7adb3a40f9339052141176071b6d6"),
    ("difflib.py", "0c6afc23568d55b3e9ac914f9c5361e3033e778aa5b58d3cc82835fc5c638679"),
    ("tarfile.py", "d6957647c11b6592e58e37d4e9f02f6cf9ee695cb0653b1072b542b8afac700d"),
    ("typing.py", "115d96e966bf35cf97126f98dd1fa854a00dd832733fc01ede58cfd4fa490660"),
    ("argparse.py", "dc1eba8adfdf615986421f981337458ba1072d3e718a0f76e3224940fd74118b"),
)
# SHA-256 of the whole corpus (the files' text concatenated, as UTF-8) on Python 3.11.7
PYTHON_STDLIB_SHA256 = "f7def2009441491e1164160e9aaa8f67824b30008f0294db21ae09352646eb0a"


class CorpusMismatchWarning(UserWarning):
    """The standard library files differ from the ones whose hashes are recorded."""


class TextDataError(ValueError):
    """A text source that cannot be used (missing file, not UTF-8, too short)."""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---- the corpus ----------------------------------------------------------------------------------
def stdlib_folder():
    return sysconfig.get_path("stdlib")


def read_stdlib_corpus(folder=None):
    """(text, provenance): the ``PYTHON_STDLIB`` files concatenated in order, and a JSON-friendly
    record of where they came from, their hashes and whether those match the recorded ones."""
    folder = folder or stdlib_folder()
    parts, files = [], []
    for relative, recorded in PYTHON_STDLIB:
        path = os.path.join(folder, relative)
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as error:
            raise TextDataError(f"text: expected the standard library file {path} (the embedded corpus), got "
                                f"{error.strerror}; train on another file with --data text:PATH") from error
        parts.append(content.decode("utf-8"))
        files.append({"path": relative, "sha256": sha256(content), "matches": sha256(content) == recorded})
    text = "".join(parts)
    corpus_hash = sha256(text.encode("utf-8"))
    provenance = {"corpus": CORPUS_NAME, "python": sys.version.split()[0], "folder": folder,
                  "sha256": corpus_hash, "recorded_sha256": PYTHON_STDLIB_SHA256,
                  "matches_recorded": corpus_hash == PYTHON_STDLIB_SHA256, "files": files}
    if not provenance["matches_recorded"]:
        changed = [entry["path"] for entry in files if not entry["matches"]]
        warnings.warn(f"text: the standard library of Python {provenance['python']} in {folder} differs from "
                      f"the recorded corpus (Python 3.11.7): {len(changed)} of {len(files)} files changed "
                      f"({', '.join(changed)}); results are not comparable with the documented ones",
                      CorpusMismatchWarning, stacklevel=2)
    return text, provenance


def read_text_file(path):
    """(text, provenance) of a UTF-8 file."""
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as error:
        raise TextDataError(f"text: cannot read {path}: {error.strerror}") from error
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TextDataError(f"text: expected a UTF-8 file, got {path} with an invalid byte at offset "
                            f"{error.start}") from error
    return text, {"corpus": f"text:{path}", "sha256": sha256(content), "characters": len(text)}


# ---- vocabulary ----------------------------------------------------------------------------------
class Vocabulary:
    """Characters <-> ids; id 0 is the unknown symbol, the rest are sorted characters."""

    def __init__(self, characters):
        self.characters = (UNKNOWN,) + tuple(sorted(set(characters) - {UNKNOWN}))
        self.index = {character: position for position, character in enumerate(self.characters)}

    def __len__(self):
        return len(self.characters)

    def encode(self, text):
        """(len(text),) int64 ids; a character outside the vocabulary becomes 0 (unknown)."""
        return np.fromiter((self.index.get(character, 0) for character in text), dtype=np.int64,
                           count=len(text))

    def decode(self, ids):
        return "".join(self.characters[int(i)] for i in ids)

    def code_points(self):
        """The vocabulary as an int array (what a checkpoint stores to check it later)."""
        return np.array([ord(character) for character in self.characters], dtype=np.int64)


# ---- the data set --------------------------------------------------------------------------------
def windows(ids, context):
    """(n, context + 1) consecutive windows of ``ids`` that overlap by one character (window i
    holds inputs ids[i T : i T + T] and their targets one further), n = (len(ids) - 1) // T;
    the last (len(ids) - 1) % T characters are left out."""
    count = (len(ids) - 1) // context
    return ids[np.arange(count)[:, None] * context + np.arange(context + 1)]


@dataclasses.dataclass(frozen=True)
class TextData:
    """Character ids of a text split 90/10 by position, as the runner expects of a data set
    (``name``, ``train_arrays``, ``subset``)."""
    name: str
    vocabulary: Vocabulary
    train_ids: np.ndarray   # (N_train,) int64
    valid_ids: np.ndarray   # (N_valid,) int64
    context: int            # characters per training window (the model's BPTT length or block size)
    provenance: dict        # where the text came from (written to config.json)

    @property
    def train_arrays(self):
        """What the training loop batches: ((n, context + 1) windows,)."""
        return (windows(self.train_ids, self.context),)

    def subset(self, train=None, test=None):
        """The text of the first ``train`` training windows and ``test`` validation windows (a dry run)."""
        def cut(ids, count):
            return ids if count is None else ids[:count * self.context + 1]
        return dataclasses.replace(self, train_ids=cut(self.train_ids, train),
                                   valid_ids=cut(self.valid_ids, test))


def read_source(source):
    """(text, provenance) of "python-stdlib" or "text:PATH"."""
    if source == CORPUS_NAME:
        return read_stdlib_corpus()
    if source.startswith("text:") and len(source) > len("text:"):
        return read_text_file(source[len("text:"):])
    raise TextDataError(f"text: expected data {CORPUS_NAME!r} or 'text:PATH', got {source!r}")


@functools.lru_cache(maxsize=4)
def encoded_source(source):
    """(vocabulary, read-only ids, where validation starts, provenance) of ``source``, cached: a
    process reads and encodes each text once."""
    text, provenance = read_source(source)
    split = round(len(text) * (1 - VALID_SHARE))
    if min(split, len(text) - split) < 2:
        raise TextDataError(f"text: expected a text of at least 20 characters, got {len(text)} in {source}")
    vocabulary = Vocabulary(text[:split])
    ids = vocabulary.encode(text)
    ids.flags.writeable = False  # shared by every caller through the cache
    return vocabulary, ids, split, provenance


def load_text(source=CORPUS_NAME, context=64):
    """The ``TextData`` of ``source``: the first 90% of its characters for training, the rest for
    validation, with training windows of ``context`` characters."""
    vocabulary, ids, split, provenance = encoded_source(source)
    if split - 1 < context:
        raise TextDataError(f"text: expected more than {context} training characters (one window), got "
                            f"{split} in {source}")
    return TextData(source, vocabulary, ids[:split], ids[split:], context, provenance)
