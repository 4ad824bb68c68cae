"""Which model class holds which schema/tag, and :func:`open`."""

from __future__ import annotations

from pathlib import Path

from ..errors import FileFormatError
from ..io import parse_tag, read_roman
from . import models
from .base import DataModel

_CLASSES: dict[str, type[DataModel]] = {}
for _name in models.__all__:
    _cls = getattr(models, _name)
    if getattr(_cls, "schema_name", ""):
        _CLASSES[_cls.schema_name] = _cls


def class_for_schema(name: str | None):
    """The model class for a schema name (``wfi_image``, ``ref_flat``, ...), or None."""
    return _CLASSES.get(name or "")


def class_for_reftype(reftype: str):
    """The reference model class for a CRDS reference type (``flat``, ``gain``, ...)."""
    for cls in _CLASSES.values():
        if getattr(cls, "reftype", None) == reftype.lower():
            return cls
    return None


def open(init, *, validate: bool = True) -> DataModel:  # noqa: A001 - mirrors roman_datamodels.open
    """Open a Roman ASDF file (or pass a model through) as the right model class.

    L1 exposures open as :class:`ScienceRawModel` without reading their arrays.
    """
    if isinstance(init, DataModel):
        return init
    if not isinstance(init, (str, Path)):
        raise TypeError(f"romancore.open takes a path or a model, not {type(init).__name__}")
    path = Path(init)
    af, node, tag = read_roman(path)
    parsed = parse_tag(tag)
    cls = class_for_schema(parsed[0]) if parsed else None
    if cls is None:
        af.close()
        raise FileFormatError(f"{path}: unknown Roman product tag {tag!r}; romancore cannot open it")
    return cls((path, af, node, tag), validate=validate)
