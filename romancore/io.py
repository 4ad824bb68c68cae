"""Reading and writing Roman-format ASDF files without roman_datamodels.

A Roman file is an ordinary ASDF file whose tree holds one model under the
key ``roman``, tagged ``asdf://stsci.edu/datamodels/roman/tags/<name>-<version>``
(reference files: ``.../tags/reference_files/<name>-<version>``).  Plain
``asdf`` returns such a node as a tagged dict; romancore keeps the tag and the
tree and lets the model classes interpret them.  Times, gwcs objects and
astropy tables inside are converted by asdf-astropy and gwcs as usual.

Arrays are read lazily.  Uncompressed arrays are mapped copy-on-write: pages
are read from disk only when touched, changes stay in memory, and the file on
disk is never modified.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import warnings
from pathlib import Path

import asdf
import numpy as np
from asdf.tags.core.ndarray import NDArrayType
from asdf.tagged import TaggedDict

from .errors import FileFormatError

ROMAN_TAG_PREFIX = "asdf://stsci.edu/datamodels/roman/tags/"
REFERENCE_TAG_PREFIX = ROMAN_TAG_PREFIX + "reference_files/"

__all__ = [
    "ROMAN_TAG_PREFIX",
    "REFERENCE_TAG_PREFIX",
    "parse_tag",
    "read_roman",
    "write_roman",
    "materialize",
]


def parse_tag(tag: str | None) -> tuple[str, str] | None:
    """Split a Roman tag URI into (name, version); reference files get ``ref_<name>``.

    >>> parse_tag("asdf://stsci.edu/datamodels/roman/tags/wfi_image-2.1.0")
    ('wfi_image', '2.1.0')
    >>> parse_tag("asdf://stsci.edu/datamodels/roman/tags/reference_files/flat-2.0.0")
    ('ref_flat', '2.0.0')
    """
    if not tag or not tag.startswith(ROMAN_TAG_PREFIX):
        return None
    rest = tag[len(ROMAN_TAG_PREFIX):]
    prefix = ""
    if rest.startswith("reference_files/"):
        rest = rest[len("reference_files/"):]
        prefix = "ref_"
    name, _, version = rest.rpartition("-")
    if not name:
        name, version = rest, ""
    return prefix + name, version


class _QuietRomanTags(warnings.catch_warnings):
    """Silence asdf's warnings about Roman tags and extensions it has no converter for."""

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", category=asdf.exceptions.AsdfConversionWarning)
        warnings.filterwarnings("ignore", category=asdf.exceptions.AsdfPackageVersionWarning)
        warnings.filterwarnings("ignore", message=".*roman.*", category=asdf.exceptions.AsdfWarning)
        return out


def read_roman(path) -> tuple[asdf.AsdfFile, dict, str | None]:
    """Open ``path`` and return (open AsdfFile, the ``roman`` node, its tag).

    The AsdfFile stays open so lazy arrays can be read later; close it when
    the model is closed.  Raises :class:`FileFormatError` naming the file for
    anything that is not a readable Roman ASDF file.
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, expected an ASDF file")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"#ASDF ":
        raise FileFormatError(f"{path}: not an ASDF file (it does not start with '#ASDF')")
    try:
        with _QuietRomanTags():
            af = asdf.open(path, lazy_load=True, memmap=True)
            tree = af.tree
    except Exception as exc:  # asdf raises many kinds for corrupt files
        raise FileFormatError(f"{path}: corrupted or truncated ASDF file ({type(exc).__name__}: {exc})") from exc
    if "roman" not in tree:
        af.close()
        raise FileFormatError(f"{path}: ASDF file has no 'roman' node; it is not a Roman data product")
    node = tree["roman"]
    tag = getattr(node, "_tag", None)
    if not isinstance(node, dict):
        af.close()
        raise FileFormatError(f"{path}: the 'roman' node is a {type(node).__name__}, expected a mapping")
    _check_blocks(af, node, path)
    return af, node, tag


def _iter_arrays(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _iter_arrays(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, NDArrayType):
        yield prefix, node


def _check_blocks(af, node, path):
    """Fail now, naming the array, when a file is too short for the arrays it declares."""
    size = Path(path).stat().st_size
    blocks = getattr(getattr(af, "_blocks", None), "blocks", None)
    for name, arr in _iter_arrays(node):
        source = getattr(arr, "_source", None)
        if not isinstance(source, int) or blocks is None:
            continue
        if source >= len(blocks):
            raise FileFormatError(
                f"{path}: array '{name}' refers to block {source} but the file has only "
                f"{len(blocks)} blocks (truncated file)"
            )
        block = blocks[source]
        offset = getattr(block, "data_offset", None)
        header = getattr(block, "header", None) or {}
        used = header.get("used_size")
        if offset is not None and used is not None and offset + used > size:
            raise FileFormatError(
                f"{path}: array '{name}' needs bytes up to {offset + used} but the file has "
                f"{size} (truncated file)"
            )


def _mmap_of(arr):
    """The mmap object under ``arr`` (through ndarray bases and asdf's array wrapper), or None."""
    base = arr
    for _ in range(16):
        if isinstance(base, mmap.mmap):
            return base
        if isinstance(base, np.ndarray):
            base = base.base
        elif isinstance(base, NDArrayType):
            base = getattr(base, "_array", None)
        else:
            return None
    return None


def materialize(value, path=None):
    """Turn a lazy ASDF array into a numpy array; others are returned unchanged.

    Uncompressed, contiguous arrays of a file at ``path`` come back as
    copy-on-write memory maps (writable, file never changed); anything else is
    read into memory.
    """
    if not isinstance(value, NDArrayType):
        return value
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise FileFormatError(f"{path}: cannot read array ({type(exc).__name__}: {exc})") from exc
    if path is None or arr.size == 0:
        return np.array(arr)
    mm = _mmap_of(arr)
    if mm is None or not arr.flags.c_contiguous:
        return np.array(arr) if not arr.flags.writeable else arr
    start = np.frombuffer(mm, dtype=np.uint8).__array_interface__["data"][0]
    offset = arr.__array_interface__["data"][0] - start
    if len(mm) != Path(path).stat().st_size or offset < 0:
        return np.array(arr)
    return np.memmap(path, dtype=arr.dtype, mode="c", offset=offset, shape=arr.shape, order="C")


def _prepare(value):
    """Arrays that are views of larger buffers are written compactly, not with their base."""
    if isinstance(value, np.ndarray):
        if isinstance(value, np.memmap) or value.base is not None or not value.flags.c_contiguous:
            return np.ascontiguousarray(value).view(np.ndarray).copy()
        return value
    if isinstance(value, NDArrayType):
        return np.array(value)
    if isinstance(value, TaggedDict):
        return TaggedDict({k: _prepare(v) for k, v in value.items()}, value._tag)
    if isinstance(value, dict):
        return {k: _prepare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_prepare(v) for v in value]
    return value


def write_roman(path, node: dict, tag: str) -> Path:
    """Write ``node`` under the key ``roman`` with ``tag``; atomically (temp file + rename).

    On any failure the temporary file is removed and nothing is left at ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileFormatError(f"{path}: output folder {folder} does not exist")
    tree = {"roman": TaggedDict(_prepare(dict(node)), tag)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with _QuietRomanTags():
            af = asdf.AsdfFile(tree)
            af.write_to(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
