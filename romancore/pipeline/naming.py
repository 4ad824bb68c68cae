"""Output file names: the suffix rules of the reference pipeline.

A product name is the input's base name with its known suffix replaced (or, if the
last ``_token`` is not a known suffix, with the new suffix appended), in
``output_dir`` (default: the current directory), with extension ``.asdf`` unless
the product says otherwise (catalogs are ``.parquet``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Suffixes the pipelines know; only these are replaced, anything else is kept.
KNOWN_SUFFIXES = frozenset({
    "uncal", "cal", "ramp", "rampfit", "ramp_fit", "fitopt", "rate",
    "dqinit", "dq_init", "saturation", "refpix", "linearity", "jump",
    "darkcurrent", "dark_current", "darkdecay", "dark_decay", "wfi18_transient", "wfi18transient",
    "assignwcs", "assign_wcs", "flat", "flatfield", "flat_field", "photom",
    "sourcecatalog", "source_catalog", "sourcedetection", "source_detection",
    "tweakreg", "flux", "skymatch", "outlierdetection", "outlier_detection", "crf",
    "resample", "i2d", "coadd", "cat", "segm", "wcs", "median", "blot",
})

KNOWN_EXTENSIONS = (".asdf", ".parquet", ".json", ".ecsv", ".fits")


def split_name(name: str | os.PathLike) -> tuple[str, str]:
    """``(stem, ext)`` of a file name (directory dropped); ext is '' if none is known."""
    base = os.path.basename(os.fspath(name))
    stem, ext = os.path.splitext(base)
    if ext.lower() not in KNOWN_EXTENSIONS:
        return base, ""
    return stem, ext


def remove_suffix(stem: str) -> str:
    """Drop a trailing known ``_suffix`` from a stem (only one, only if known)."""
    head, sep, tail = stem.rpartition("_")
    if sep and head and tail.lower() in KNOWN_SUFFIXES:
        return head
    return stem


def with_suffix(name: str | os.PathLike, suffix: str | None, ext: str | None = None) -> str:
    """File name (no directory) for *name* carrying *suffix*.

    >>> with_suffix("r0001_wfi01_uncal.asdf", "cal")
    'r0001_wfi01_cal.asdf'
    >>> with_suffix("mine.asdf", "cal")
    'mine_cal.asdf'
    """
    stem, old_ext = split_name(name)
    stem = remove_suffix(stem)
    if suffix:
        stem = f"{stem}_{suffix}"
    return stem + (ext if ext is not None else (old_ext or ".asdf"))


def output_path(input_name: str | os.PathLike | None, suffix: str | None, *,
                output_dir: str | os.PathLike | None = None,
                output_file: str | os.PathLike | None = None,
                ext: str | None = None, primary: bool = True,
                default_stem: str = "romancore") -> Path:
    """Where a product is written.

    Parameters
    ----------
    input_name : str or path or None
        Name of the input (usually ``meta.filename``); its directory is ignored.
    suffix : str or None
        Product suffix (``cal``, ``coadd``, ``cat``, a step alias, ...).
    output_dir : path, optional
        Target directory (created by the caller); default the current directory.
    output_file : path, optional
        User-given name.  For the primary product a name with an extension is used
        verbatim; otherwise it is a base name on which the suffix rules act.
        A directory part of ``output_file`` wins over ``output_dir``.
    ext : str, optional
        Extension of the product (default: that of the name, else ``.asdf``).
    primary : bool
        Whether this is the step's main product (see ``output_file``).
    """
    if output_file:
        ofile = Path(os.fspath(output_file))
        directory = ofile.parent if str(ofile.parent) not in ("", ".") else (
            Path(output_dir) if output_dir else Path("."))
        stem, oext = split_name(ofile.name)
        if primary and oext and (ext is None or ext == oext):
            return directory / ofile.name
        name = with_suffix(stem + (oext or ""), suffix, ext)
        return directory / name
    directory = Path(output_dir) if output_dir else Path(".")
    name = with_suffix(input_name or default_stem, suffix, ext)
    return directory / name
