"""Checkpoints: ``save(obj, path)`` and ``load(path)`` — one ``.npz`` file, written atomically.

``obj`` is a dict such as ``{"model": model.state_dict(), "optim": optimizer.state_dict(),
"ema": ema.state_dict(), "meta": {"kind": "vae", "config": {...}, "step": 1200, "epoch": 3}}``.
Inside the file every array is its own ``.npy`` member named by its path — ``model/<param>``,
``optim/state/0/exp_avg``, ``ema/<param>`` — and ``__meta__`` holds one JSON document:

    {"format_version": 1, "scratchgen_version": "0.1.0",
     "kind": ..., "config": ..., "step": ..., "epoch": ..., "rng_state": ...,   (the "meta" dict)
     "entries": {"model": {"fc.weight": {"__array__": "model/fc.weight"}, ...}, "optim": {...}}}

``entries`` is the structure of everything but the arrays (numbers, strings, lists, nested dicts);
arrays appear in it as ``{"__array__": member}``, tuples as ``{"__tuple__": [...]}`` and dicts with
non-string keys (an optimizer's state is keyed by parameter index) as ``{"__items__": [[k, v], ...]}``,
so ``load`` rebuilds the very same structure, bit for bit. Loading never unpickles
(``allow_pickle=False``): a checkpoint cannot run code.

Atomic: the file is written under a temporary name in the same folder and renamed over ``path``
only once complete (``os.replace`` is atomic on POSIX and Windows), so a crash or Ctrl-C mid-write
leaves the previous checkpoint intact; the folder is then fsynced so the rename itself survives a
power cut. A temporary file left by a killed process is removed by the next save to ``path``.

Two layouts (docs/design.md, "Contracts"): the training checkpoint above, and a *plain state dict*,
``save(model.state_dict(), path)`` — a dict whose values are all arrays or Tensors — stored with
``"layout": "state_dict"`` in ``__meta__`` and no ``meta`` of its own; ``load`` returns it as that
dict (in its order), so ``model.load_state_dict(load(path))`` works as with ``torch.save``/``torch.load``.
A load that asks for a model kind (``scratchgen sample``/``eval``) refuses it, saying what it is.
``save_safetensors``/``load_safetensors`` read and write the ``.safetensors`` format of PyTorch and
Hugging Face tools instead (the ``safetensors`` extra).

``check_weights`` is what the command line's load paths add (``Module.load_state_dict`` stays
PyTorch-like and takes anything): a checkpoint whose arrays hold NaN/inf or complex numbers is
refused.
"""
import contextlib
import glob
import json
import os
import secrets
import zipfile
from collections import OrderedDict

import numpy as np

from . import backend
from ._faults import fault_point
from ._version import __version__
from .random import get_rng_state
from .tensor import Tensor

FORMAT_VERSION = 1
META_MEMBER = "__meta__"
_ARRAY, _TUPLE, _ITEMS = "__array__", "__tuple__", "__items__"
_RESERVED_META = ("format_version", "scratchgen_version", "entries", "layout")
STATE_DICT_LAYOUT = "state_dict"


class CheckpointError(ValueError):
    """A file that is not a usable scratchgen checkpoint (truncated, foreign, too new, wrong model)."""


# ---- save ------------------------------------------------------------------------------------------
def save(obj, path):
    """Write ``obj`` (a dict; see the module docstring) to ``path`` atomically.

    ``meta`` is optional; when it has no ``rng_state`` the global generator's state is recorded,
    so a resumed run can continue the same random stream (``scratchgen.set_rng_state``).
    """
    if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
        raise TypeError(f"save: expected a dict with string keys, got {type(obj).__name__}")
    if is_state_dict(obj):
        save_state_dict(obj, path)
        return
    meta = dict(obj.get("meta") or {})
    clashes = [key for key in meta if key in _RESERVED_META or not isinstance(key, str)]
    if clashes:
        raise ValueError(f"save: meta keys must be strings other than {list(_RESERVED_META)}, got {clashes}")
    meta.setdefault("rng_state", get_rng_state())
    arrays = {}
    header = {"format_version": FORMAT_VERSION, "scratchgen_version": __version__}
    header.update((key, _encode(value, f"meta/{key}", arrays)) for key, value in meta.items())
    header["entries"] = {key: _encode(value, key, arrays) for key, value in obj.items() if key != "meta"}
    _replace_atomically(os.fspath(path), lambda handle: write_archive(handle, arrays, json.dumps(header)))


def is_state_dict(obj):
    """A plain state dict: a non-empty dict of name -> array or Tensor (no ``meta``, no nesting)."""
    return bool(obj) and all(isinstance(value, (Tensor, np.ndarray)) or backend.is_cupy_array(value)
                             for value in obj.values())


def save_state_dict(state_dict, path):
    """The second layout: the arrays under their names, ``__meta__`` saying only what the file is."""
    arrays = {}
    header = {"format_version": FORMAT_VERSION, "scratchgen_version": __version__,
              "layout": STATE_DICT_LAYOUT,
              "entries": {name: _encode(value, name, arrays) for name, value in state_dict.items()}}
    _replace_atomically(os.fspath(path), lambda handle: write_archive(handle, arrays, json.dumps(header)))


def _encode(value, path, arrays):
    """``value`` as JSON, with every array moved into ``arrays`` under its ``path``."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
        if path in arrays or path == META_MEMBER:
            raise ValueError(f"save: two arrays would be stored under the same name {path!r}")
        array = np.array(backend.to_device(value, "cpu"), copy=True)
        if array.dtype.hasobject:
            raise TypeError(f"save: {path!r} is an object array, which cannot be stored without pickling")
        arrays[path] = array
        return {_ARRAY: path}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_encode(item, f"{path}/{i}", arrays) for i, item in enumerate(value)]
        return items if isinstance(value, list) else {_TUPLE: items}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not {_ARRAY, _TUPLE, _ITEMS} & value.keys():
            return {key: _encode(item, f"{path}/{key}", arrays) for key, item in value.items()}
        for key in value:
            if not (key is None or isinstance(key, (bool, int, float, str))):
                raise TypeError(f"save: dict keys must be strings or numbers, "
                                f"got {type(key).__name__} at {path!r}")
        return {_ITEMS: [[key, _encode(item, f"{path}/{key}", arrays)] for key, item in value.items()]}
    raise TypeError(f"save: cannot store a {type(value).__name__} at {path!r}; expected arrays, Tensors, "
                    "numbers, strings, None, lists, tuples or dicts (pass model.state_dict(), not the model)")


def _replace_atomically(path, write):
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    _remove_abandoned_temporaries(path)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        fault_point("temp-written")
        fault_point("before-rename")
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C included: never leave a half-written temporary behind
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    fault_point("after-rename")
    _fsync_folder(folder)


def _remove_abandoned_temporaries(path):
    """Delete temporaries of ``path`` whose writer (the pid in the name) is no longer running:
    what a process killed mid-save (SIGKILL, power cut) leaves behind."""
    folder, name = os.path.split(os.path.abspath(path))
    for temporary in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):
        pid = os.path.basename(temporary)[len(name) + 2:].split(".")[0]
        if pid.isdigit() and not _process_running(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)


def _process_running(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _fsync_folder(folder):
    """Make a rename inside ``folder`` durable (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_archive(handle, arrays, header_json):
    """The ``.npz`` layout ``np.savez`` writes (one uncompressed ``.npy`` member per array), but
    with member names taken verbatim, so no name can clash with ``np.savez``'s own arguments."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in {**arrays, META_MEMBER: np.array(header_json)}.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


# ---- load ------------------------------------------------------------------------------------------
def load(path, expected_kind=None, device=None):
    """Read a checkpoint written by ``save``: the same dict, arrays as NumPy arrays (or moved to
    ``device``). ``meta`` also reports ``format_version`` and ``scratchgen_version``.

    Raises ``CheckpointError`` naming the problem for a truncated or corrupt file, an ``.npz``
    that is not a scratchgen checkpoint, one written by a newer format, or (with
    ``expected_kind``) one that holds a different kind of model.
    """
    path = os.fspath(path)
    try:
        header, arrays = _read_archive(path)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise CheckpointError(f"load: {path} is truncated or corrupt "
                              f"({type(error).__name__}: {error})") from error
    version = header.get("format_version")
    if not isinstance(version, int) or not isinstance(header.get("entries"), dict):
        raise CheckpointError(f"load: {path} has a malformed {META_MEMBER} entry "
                              "(no format_version or entries)")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"load: {path} uses checkpoint format version {version}, newer than this "
                              f"scratchgen {__version__} reads (up to {FORMAT_VERSION}); upgrade scratchgen")
    if header.get("layout") == STATE_DICT_LAYOUT:
        if expected_kind is not None:
            raise CheckpointError(
                f"load: {path} is a plain state dict (written by scratchgen.save(model.state_dict(), path)), "
                f"not a training checkpoint: it holds weights only, without the model kind and config that "
                f"a {expected_kind!r} checkpoint needs. Give a run's checkpoint (RUN/last.npz), or load "
                "these "
                "weights in Python: model.load_state_dict(scratchgen.load(path))")
        if device is not None:
            arrays = {name: backend.to_device(array, device) for name, array in arrays.items()}
        return OrderedDict((key, _decode(node, arrays, path)) for key, node in header["entries"].items())
    if expected_kind is not None and header.get("kind") != expected_kind:
        raise CheckpointError(f"load: {path} holds a {header.get('kind')!r} checkpoint, "
                              f"expected {expected_kind!r}")
    if device is not None:
        arrays = {name: backend.to_device(array, device) for name, array in arrays.items()}
    obj = {key: _decode(node, arrays, path) for key, node in header.pop("entries").items()}
    obj["meta"] = {key: _decode(node, arrays, path) for key, node in header.items()}
    return obj


def _read_archive(path):
    """(the parsed ``__meta__`` JSON, name -> array) of an ``.npz``; every member is read now, so
    damage anywhere in the file shows up here."""
    archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CheckpointError(f"load: {path} is a single .npy array, not a checkpoint (.npz)")
    with archive:
        if META_MEMBER not in archive.files:
            raise CheckpointError(f"load: {path} is an .npz without a {META_MEMBER} entry: not a scratchgen "
                                  "checkpoint (scratchgen.save writes them)")
        header = json.loads(str(archive[META_MEMBER]))
        if not isinstance(header, dict):
            raise CheckpointError(f"load: {path} has a malformed {META_MEMBER} entry (not a JSON object)")
        arrays = {name: archive[name] for name in archive.files if name != META_MEMBER}
    return header, arrays


def _decode(node, arrays, path):
    if isinstance(node, list):
        return [_decode(item, arrays, path) for item in node]
    if not isinstance(node, dict):
        return node
    if node.keys() == {_ARRAY}:
        if node[_ARRAY] not in arrays:
            raise CheckpointError(f"load: {path} lacks the array {node[_ARRAY]!r} "
                                  f"that its {META_MEMBER} lists")
        return arrays[node[_ARRAY]]
    if node.keys() == {_TUPLE}:
        return tuple(_decode(item, arrays, path) for item in node[_TUPLE])
    if node.keys() == {_ITEMS}:
        return {key: _decode(item, arrays, path) for key, item in node[_ITEMS]}
    return {key: _decode(item, arrays, path) for key, item in node.items()}


def check_weights(checkpoint, path):
    """Refuse a loaded checkpoint with complex arrays or NaN/inf values (``CheckpointError``
    naming them): what the command line's load paths run before using one."""
    problems = []
    for name, array in _arrays(checkpoint, ""):
        if array.dtype.kind == "c":
            problems.append(f"{name} is complex ({array.dtype})")
        elif array.dtype.kind == "f" and not np.isfinite(array).all():
            problems.append(f"{name} holds {int((~np.isfinite(array)).sum())} NaN/inf values")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise CheckpointError(f"load: {path} is not a usable checkpoint: {shown}")


def _arrays(node, path):
    """(path, array) of every array in a loaded checkpoint's nested structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _arrays(value, f"{path}{key}/")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _arrays(value, f"{path}{i}/")
    elif isinstance(node, np.ndarray):
        yield path.rstrip("/"), node


# ---- safetensors (the `safetensors` extra) ----------------------------------------------------------
def save_safetensors(state_dict, path, metadata=None):
    """Write a state dict (name -> array or Tensor) as a ``.safetensors`` file, which
    ``safetensors.torch.load_file`` and Hugging Face tools read; atomically, as ``save``.
    ``metadata``: an optional dict of strings stored in the file's header."""
    numpy_api = _safetensors_numpy("save_safetensors")
    if not is_state_dict(state_dict):
        raise TypeError("save_safetensors: expected a state dict (a non-empty dict of name -> array or "
                        "Tensor), "
                        f"got {type(state_dict).__name__}")
    arrays = {name: np.ascontiguousarray(backend.to_device(value.data if isinstance(value, Tensor) else value,
                                                           "cpu"))
              for name, value in state_dict.items()}
    payload = numpy_api.save(arrays, metadata=metadata)
    _replace_atomically(os.fspath(path), lambda handle: handle.write(payload))


def load_safetensors(path, device=None):
    """A ``.safetensors`` file as a state dict of NumPy arrays (moved to ``device`` if given), in the
    file's order: ``model.load_state_dict(load_safetensors(path))``."""
    numpy_api = _safetensors_numpy("load_safetensors")
    from safetensors import SafetensorError
    path = os.fspath(path)
    with open(path, "rb") as handle:
        payload = handle.read()
    try:
        arrays = numpy_api.load(payload)
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(f"load_safetensors: {path} is not a valid .safetensors file "
                              f"({error})") from error
    return OrderedDict((name, array if device is None else backend.to_device(array, device))
                       for name, array in arrays.items())


def _safetensors_numpy(op):
    try:
        import safetensors.numpy
    except ImportError as error:
        raise ImportError(f"{op}: needs the safetensors package, which the `safetensors` extra installs: "
                          "pip install 'scratchgen[safetensors]'") from error
    return safetensors.numpy
