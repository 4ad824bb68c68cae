"""Loading, resolving and checking the YAML JSON Schemas in ``schemas/``.

Schemas use JSON Schema with a few extra types that match what lives in a
Roman ASDF tree:

``ndarray``
    a numpy array (or an unread ASDF array); keywords ``datatype`` (a dtype
    name or a list of them) and ``ndim`` are checked without reading data.
``time``
    an :class:`astropy.time.Time`
``wcs``
    a :class:`gwcs.WCS`
``table``
    an :class:`astropy.table.Table`
``model``
    an astropy Model


``$ref`` pointers (within a file or to ``common.yaml``) are inlined when a
schema is loaded and ``allOf`` branches are merged, so every schema becomes a
plain tree in which the sub-schema of any dotted path can be looked up
(:func:`subschema`) to validate a single value on assignment.

Schema keywords romancore adds for itself: ``tag`` and ``model`` (top level),
``placeholder`` (the value :func:`placeholder_tree` puts in a new model) and
``optional_array`` (an array that a new model does not allocate).
"""

from __future__ import annotations

import copy
import numbers
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import yaml

__all__ = ["load_schema", "schema_dir", "subschema", "validator_for", "placeholder_tree"]


def schema_dir() -> Path:
    """Folder of the installed schemas (``romancore/schemas``), or ``schemas/`` of a checkout."""
    installed = resources.files("romancore") / "schemas"
    if installed.is_dir() and any(p.name.endswith(".yaml") for p in installed.iterdir()):
        return Path(str(installed))
    checkout = Path(__file__).resolve().parents[2] / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("romancore schemas not found: neither romancore/schemas nor ./schemas exists")


@lru_cache(maxsize=None)
def _raw(name: str) -> dict:
    path = schema_dir() / name
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _resolve_pointer(doc: dict, pointer: str):
    node = doc
    for part in pointer.strip("/").split("/"):
        if part:
            node = node[part]
    return node


def _inline(node, current: str):
    """Return ``node`` with every ``$ref`` replaced by its target (recursively)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            target_file, _, pointer = ref.partition("#")
            target_file = target_file or current
            target = _resolve_pointer(_raw(target_file), pointer)
            resolved = _inline(copy.deepcopy(target), target_file)
            extra = {k: _inline(v, current) for k, v in node.items() if k != "$ref"}
            if extra:
                resolved = _merge_all_of({"allOf": [resolved, extra]})
            return resolved
        out = {k: _inline(v, current) for k, v in node.items()}
        if "allOf" in out:
            out = _merge_all_of(out)
        return out
    if isinstance(node, list):
        return [_inline(v, current) for v in node]
    return node


def _merge_all_of(node: dict) -> dict:
    """Merge object branches of ``allOf`` into one object schema (composition only)."""
    merged: dict = {k: v for k, v in node.items() if k != "allOf"}
    props = dict(merged.get("properties", {}))
    required = list(merged.get("required", []))
    for branch in node["allOf"]:
        if "allOf" in branch:
            branch = _merge_all_of(branch)
        for key, value in branch.items():
            if key == "properties":
                for pname, pschema in value.items():
                    if pname in props:
                        props[pname] = _merge_all_of({"allOf": [props[pname], pschema]})
                    else:
                        props[pname] = pschema
            elif key == "required":
                required.extend(r for r in value if r not in required)
            else:
                merged.setdefault(key, value)
    if props:
        merged["properties"] = props
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The fully resolved schema of ``schemas/<name>.yaml`` (cached; do not mutate)."""
    filename = name if name.endswith(".yaml") else f"{name}.yaml"
    return _inline(copy.deepcopy(_raw(filename)), filename)


def subschema(schema: dict, path: tuple[str, ...]) -> dict | None:
    """The sub-schema at ``path`` (a tuple of keys) or None when the schema says nothing."""
    node = schema
    for key in path:
        props = node.get("properties") if isinstance(node, dict) else None
        if not props or key not in props:
            return None
        node = props[key]
    return node


# --- validator with the extra types ----------------------------------------------------


def _is_ndarray(checker, instance):
    return hasattr(instance, "dtype") and hasattr(instance, "shape") and not np.isscalar(instance)


# An object can only be an instance of a class whose module is already imported, so the
# checks below look classes up in sys.modules instead of importing (gwcs alone costs ~2 s).
def _loaded(module: str, name: str):
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


def _is_instance(instance, module: str, name: str) -> bool:
    cls = _loaded(module, name)
    return cls is not None and isinstance(instance, cls)


def _is_time(checker, instance):
    return _is_instance(instance, "astropy.time", "Time")


def _is_wcs(checker, instance):
    return _is_instance(instance, "gwcs.wcs", "WCS") or _is_instance(instance, "gwcs", "WCS")


def _is_table(checker, instance):
    return _is_instance(instance, "astropy.table", "Table")


def _is_model(checker, instance):
    return _is_instance(instance, "astropy.modeling.core", "Model")


def _is_integer(checker, instance):
    if isinstance(instance, (bool, np.bool_)):
        return False
    return isinstance(instance, numbers.Integral)


def _is_number(checker, instance):
    if isinstance(instance, (bool, np.bool_)):
        return False
    return isinstance(instance, numbers.Real)


def _is_boolean(checker, instance):
    return isinstance(instance, (bool, np.bool_))


def _is_object(checker, instance):
    return isinstance(instance, dict)


def _is_array(checker, instance):
    return isinstance(instance, (list, tuple))


_TYPE_CHECKER = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
    {
        "ndarray": _is_ndarray,
        "time": _is_time,
        "wcs": _is_wcs,
        "table": _is_table,
        "model": _is_model,
        "integer": _is_integer,
        "number": _is_number,
        "boolean": _is_boolean,
        "object": _is_object,
        "array": _is_array,
    }
)


def _datatype(validator, expected, instance, schema):
    if not _is_ndarray(None, instance):
        return
    allowed = expected if isinstance(expected, list) else [expected]
    actual = np.dtype(instance.dtype)
    if actual.name not in allowed:
        yield jsonschema.ValidationError(
            f"array dtype is {actual.name}, expected {' or '.join(allowed)}"
        )


def _ndim(validator, expected, instance, schema):
    if not _is_ndarray(None, instance):
        return
    if len(instance.shape) != expected:
        yield jsonschema.ValidationError(
            f"array has {len(instance.shape)} dimensions {tuple(instance.shape)}, expected {expected}"
        )


def _ignore(validator, value, instance, schema):
    return iter(())


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={
        "datatype": _datatype,
        "ndim": _ndim,
        "placeholder": _ignore,
        "optional_array": _ignore,
        "tag": _ignore,
        "model": _ignore,
        "reftype": _ignore,
    },
    type_checker=_TYPE_CHECKER,
)


def validator_for(schema: dict):
    """A jsonschema validator for a resolved romancore schema."""
    return _Validator(schema)


# --- placeholder trees for new models ------------------------------------------------------


def _placeholder(schema: dict):
    if "placeholder" in schema:
        return copy.deepcopy(schema["placeholder"])
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object" or "properties" in schema:
        return {
            name: _placeholder(schema["properties"][name])
            for name in schema.get("required", [])
            if name in schema.get("properties", {})
        }
    if kind == "string":
        return "?"
    if kind == "number":
        return -999999.0
    if kind == "integer":
        return -999999
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "time":
        from astropy.time import Time

        return Time("2020-01-01T00:00:00.000", format="isot", scale="utc")
    if kind in ("null", "wcs"):
        return None
    if kind == "table":
        from astropy.table import Table

        return Table()
    return None


def placeholder_tree(schema: dict) -> dict:
    """Required metadata of ``schema`` filled with obviously-placeholder values."""
    meta_schema = subschema(schema, ("meta",)) or {}
    return _placeholder(meta_schema)
