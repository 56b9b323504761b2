"""``save`` and ``load``: model weights in files that never execute code.

File layout. Every array leaf of the model is stored under its dotted key
path (``"layers.0.weight"``), next to a JSON manifest that lists each
leaf's path, shape and dtype with a format name and version. Two containers
are supported:

* ``.npz`` (the default for any other suffix): a zip archive of ``.npy``
  members, as ``numpy.savez`` writes it, plus the member
  ``__difflux_manifest__.json``. It is read with ``allow_pickle=False``, so
  loading never unpickles anything. ``numpy.load`` opens these files too.
* ``.safetensors``, when the optional ``safetensors`` package is installed
  (``pip install 'difflux-nn[safetensors]'``): the manifest goes into the
  file's metadata under the key ``"difflux"``.

Extended floating-point dtypes (``bfloat16`` and the float8 types of
``ml_dtypes``) have no ``.npy`` code, so ``.npz`` files store their raw bits as
unsigned integers and the manifest keeps the real dtype name.

Loading needs a template: a model of the expected structure (typically
freshly initialised). Each leaf of the template is replaced by the stored
array of the same path, converted to the template leaf's backend and dtype.
Writes are atomic: the file is written under a temporary name in the same
directory, flushed to disk, and renamed over the target, so a crash during
``save`` leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

import numpy as np

import difflux.core as dx

from ._paths import KeyPath, flatten_with_paths, path_string

FORMAT_NAME = "difflux-weights"
FORMAT_VERSION = 1
MANIFEST_MEMBER = "__difflux_manifest__.json"
SAFETENSORS_METADATA_KEY = "difflux"
_ZIP_MAGIC = b"PK\x03\x04"
# A leaf at the root (a model that is one array) needs a non-empty key.
_ROOT_KEY = "root"
# Mismatches listed in one error before the rest are counted.
_MAX_LISTED = 10

PathLike = str | os.PathLike[str]


class WeightsMismatchError(ValueError):
    """Raised by :func:`load` when the file's arrays do not fit the template's leaves."""


class CorruptWeightsError(ValueError):
    """Raised by :func:`load` when a file is truncated, corrupted or not a weights file."""


# --------------------------------------------------------------------------
# Leaves and the manifest
# --------------------------------------------------------------------------


def _leaf_key(keys: KeyPath) -> str:
    return path_string(keys) or _ROOT_KEY


def _array_leaves(tree: Any, owner: str) -> dict[str, tuple[int, Any]]:
    """Return ``{key: (leaf index, leaf)}`` for every array leaf of ``tree``."""
    pairs, _ = flatten_with_paths(tree)
    leaves: dict[str, tuple[int, Any]] = {}
    for index, (keys, leaf) in enumerate(pairs):
        if not dx.is_array(leaf):
            continue
        key = _leaf_key(keys)
        if key in leaves:
            raise ValueError(
                f"{owner}: two leaves share the path {key!r} (dict keys such as 1 and '1' print alike); "
                "give them distinct keys"
            )
        leaves[key] = (index, leaf)
    return leaves


def _is_extended(dtype: np.dtype) -> bool:
    """Return whether ``dtype`` (bfloat16, float8) has no ``.npy`` type code of its own."""
    return dtype.kind == "V" and dtype.fields is None


def _resolve_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        pass
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"the dtype {name!r} needs the ml_dtypes package, which JAX installs") from None
    return np.dtype(getattr(ml_dtypes, name))


def _to_numpy(leaf: Any) -> np.ndarray:
    return np.asarray(dx.stop_gradient(leaf))


def _manifest(arrays: dict[str, np.ndarray], tree: Any) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        # The structure is informational: loading compares leaves by path.
        "structure": repr(dx.tree_structure(tree)),
        "leaves": [
            {"path": key, "shape": list(array.shape), "dtype": array.dtype.name} for key, array in arrays.items()
        ],
    }


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def _fsync_directory(directory: str) -> None:
    """Flush the directory entry of a rename to disk (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file and rename it to ``path`` once it is on disk.

    The temporary file lies in the target's directory, because a rename is
    atomic only within one file system. On any error it is removed and the
    previous file at ``path``, if any, is left unchanged.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    # Checked here so that the error names the user's path, not the temporary file's.
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {target!r}: the folder {directory!r} does not exist; create it first")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write {target!r}: it is a folder; give a file name such as 'model.npz'")
    temporary = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL refuses an existing file; mode 0o666 lets the umask set the
    # permissions that a plain open() would give.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


# --------------------------------------------------------------------------
# The two containers
# --------------------------------------------------------------------------


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray], manifest: dict[str, Any], compress: bool) -> None:
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(file, mode="w", compression=compression, allowZip64=True) as archive:
        for key, array in arrays.items():
            stored = array.view(f"u{array.dtype.itemsize}") if _is_extended(array.dtype) else array
            with archive.open(f"{key}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, stored, allow_pickle=False)
        archive.writestr(MANIFEST_MEMBER, json.dumps(manifest, indent=1))


def _read_npz(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        if MANIFEST_MEMBER not in names:
            raise CorruptWeightsError(
                f"the archive has no {MANIFEST_MEMBER} member, so it was not written by nn.save "
                "(a plain numpy.savez file, say)"
            )
        manifest = json.loads(archive.read(MANIFEST_MEMBER).decode("utf-8"))
        arrays = {}
        for entry in _manifest_entries(manifest):
            member = f"{entry['path']}.npy"
            if member not in names:
                raise CorruptWeightsError(f"the manifest lists {entry['path']!r} but the archive has no {member}")
            # archive.read checks the member's CRC-32, so flipped bits raise.
            array = np.lib.format.read_array(io.BytesIO(archive.read(member)), allow_pickle=False)
            dtype = _resolve_dtype(entry["dtype"])
            arrays[entry["path"]] = array.view(dtype) if _is_extended(dtype) else array
    return manifest, arrays


def _safetensors_module() -> Any:
    try:
        # Imported by name so that type checkers without the optional package pass.
        module = importlib.import_module("safetensors.numpy")
    except ImportError:
        raise ImportError(
            "nn.save and nn.load use the safetensors format for .safetensors files, which needs the "
            "safetensors package: `pip install 'difflux-nn[safetensors]'`. Or use a .npz file."
        ) from None
    return module


def _safetensors_bytes(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> bytes:
    extended = [key for key, array in arrays.items() if _is_extended(array.dtype)]
    if extended:
        raise TypeError(
            f"nn.save: the leaf {extended[0]!r} has dtype {arrays[extended[0]].dtype.name}, which the "
            "safetensors NumPy writer does not support; save to a .npz file instead"
        )
    module = _safetensors_module()
    # np.ascontiguousarray would turn 0-d arrays into 1-d ones.
    contiguous = {key: array if array.flags.c_contiguous else array.copy(order="C") for key, array in arrays.items()}
    return module.save(contiguous, metadata={SAFETENSORS_METADATA_KEY: json.dumps(manifest)})


def _read_safetensors(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    # The header is an 8-byte little-endian length followed by that much JSON;
    # the metadata dict sits under "__metadata__".
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length].decode("utf-8"))
    text = header.get("__metadata__", {}).get(SAFETENSORS_METADATA_KEY)
    if text is None:
        raise CorruptWeightsError("the safetensors file has no difflux manifest, so it was not written by nn.save")
    manifest = json.loads(text)
    _manifest_entries(manifest)
    return manifest, dict(_safetensors_module().load(data))


def _manifest_entries(manifest: Any) -> list[dict[str, Any]]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CorruptWeightsError(f"the manifest does not describe a {FORMAT_NAME} file")
    version = manifest.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CorruptWeightsError(
            f"the file has format version {version!r}, but this difflux-nn reads versions up to "
            f"{FORMAT_VERSION}; upgrade difflux-nn"
        )
    return list(manifest["leaves"])


def _check_manifest(manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Raise CorruptWeightsError unless the stored arrays are those the manifest lists."""
    entries = _manifest_entries(manifest)
    listed = {entry["path"] for entry in entries}
    if listed != set(arrays):
        extra = sorted(set(arrays) ^ listed)
        raise CorruptWeightsError(f"the arrays stored do not match the manifest (first difference: {extra[0]!r})")
    for entry in entries:
        array = arrays[entry["path"]]
        if list(array.shape) != list(entry["shape"]) or array.dtype.name != entry["dtype"]:
            raise CorruptWeightsError(
                f"{entry['path']!r} is stored with shape {array.shape} and dtype {array.dtype.name}, but the "
                f"manifest lists shape {tuple(entry['shape'])} and dtype {entry['dtype']}"
            )


_READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    struct.error,
)


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with open(path, "rb") as file:
        data = file.read()
    try:
        if data[:4] == _ZIP_MAGIC:
            manifest, arrays = _read_npz(data)
        elif len(data) > 8 and data[8:9] == b"{":
            manifest, arrays = _read_safetensors(data)
        else:
            raise CorruptWeightsError("the file starts with neither a zip nor a safetensors header")
        _check_manifest(manifest, arrays)
        return manifest, arrays
    except CorruptWeightsError as error:
        raise CorruptWeightsError(f"nn.load: {path} is not a readable weights file: {error}") from error
    except _READ_ERRORS + _safetensors_errors() as error:
        raise CorruptWeightsError(
            f"nn.load: could not read {path}: the file is truncated or corrupted ({type(error).__name__}: "
            f"{error}). Save the model again with nn.save, or restore the file from a backup."
        ) from error


def _safetensors_errors() -> tuple[type[BaseException], ...]:
    try:
        module = importlib.import_module("safetensors")
    except ImportError:
        return ()
    return (module.SafetensorError,)


# --------------------------------------------------------------------------
# The public functions
# --------------------------------------------------------------------------


def save(path: PathLike, model: Any, *, compress: bool = False) -> None:
    """Save every array leaf of ``model`` to ``path``, atomically.

    A path ending in ``.safetensors`` is written in the safetensors format,
    which needs the ``safetensors`` package. Any other path gets a ``.npz``
    zip archive, exactly at ``path`` (no suffix is added). Leaves are stored
    under their dotted key paths, ``"layers.0.weight"``, with a JSON manifest
    of paths, shapes and dtypes. Leaves that are not arrays (Python numbers
    inside lists, say) and static fields are not stored: they come from the
    template when loading.

    Args:
        path: the file to write; the directory must exist.
        model: a ``dx.Module`` or any structure of arrays (an optimiser
            state, a dict).
        compress: whether to deflate the members of a ``.npz`` file.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from difflux import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "weights.npz")
        >>> nn.save(path, {"w": np.ones(3)})
        >>> nn.load(path, {"w": np.zeros(3)})["w"].tolist()
        [1.0, 1.0, 1.0]
    """
    leaves = _array_leaves(model, "nn.save")
    arrays = {key: _to_numpy(leaf) for key, (_, leaf) in leaves.items()}
    manifest = _manifest(arrays, model)
    if os.fspath(path).endswith(".safetensors"):
        data = _safetensors_bytes(arrays, manifest)
        atomic_write(path, lambda file: file.write(data))
    else:
        atomic_write(path, lambda file: _write_npz(file, arrays, manifest, compress))


def _dtype_kind(dtype: Any) -> str:
    """Return ``"float"``, ``"complex"``, ``"int"`` or ``"bool"``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return "int"
    if dtype.kind == "b":
        return "bool"
    if dtype.kind == "c":
        return "complex"
    return "float"


def _compare(path: str, leaves: dict[str, tuple[int, Any]], arrays: dict[str, np.ndarray]) -> None:
    """Raise WeightsMismatchError listing every difference between template and file."""
    problems = [f"missing from the file: {key!r}" for key in leaves if key not in arrays]
    problems += [f"not in the template: {key!r}" for key in arrays if key not in leaves]
    for key, (_, leaf) in leaves.items():
        stored = arrays.get(key)
        if stored is None:
            continue
        expected_shape = tuple(leaf.shape)
        if stored.shape != expected_shape:
            problems.append(f"{key!r} has shape {stored.shape} in the file but {expected_shape} in the template")
        elif _dtype_kind(stored.dtype) != _dtype_kind(leaf.dtype):
            problems.append(
                f"{key!r} has dtype {stored.dtype.name} in the file but {np.dtype(leaf.dtype).name} in the template"
            )
    if not problems:
        return
    listed = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise WeightsMismatchError(
        f"nn.load: the weights in {path} do not fit the template ({len(problems)} differences):\n  {listed}{more}\n"
        "Build the template with the same architecture and sizes as the saved model."
    )


def load(path: PathLike, template: Any) -> Any:
    """Return ``template`` with every array leaf replaced by the one saved at ``path``.

    The file must hold exactly the template's array leaves, by dotted path,
    with the same shapes. Each array comes back on the template leaf's
    backend and in its dtype: a float64 file loads into a float32 template
    as float32. A change of kind (float to int, say) is a mismatch.

    Raises:
        WeightsMismatchError: listing the paths missing from the file, those
            the template lacks, and each shape or dtype-kind difference.
        CorruptWeightsError: when the file is truncated, corrupted or was not
            written by :func:`save`.
        FileNotFoundError: when there is no file at ``path``.
    """
    text = os.fspath(path)
    _, arrays = _read(text)
    leaves = _array_leaves(template, "nn.load")
    _compare(text, leaves, arrays)

    flat, treedef = dx.tree_flatten(template)
    for key, (index, leaf) in leaves.items():
        stored = arrays[key]
        backend = "jax" if not isinstance(leaf, np.ndarray | np.generic) else "numpy"
        flat[index] = dx.asarray(stored.astype(np.dtype(leaf.dtype), copy=False), backend=backend)
    return dx.tree_unflatten(treedef, flat)
