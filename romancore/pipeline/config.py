"""Parameter files (YAML or ASDF) in the stpipe layout.

::

    class: romancore.pipeline.ExposurePipeline      # or romancal.pipeline.ExposurePipeline, an alias
    name: ExposurePipeline
    parameters: {save_results: true}
    steps:                                         # a list of entries ...
      - class: romancore.pipeline.steps.FlatFieldStep
        name: flat_field
        parameters: {skip: true}
      - name: ramp_fit
        parameters: {config_file: ramp.asdf}       # nested file, relative to this one
    # ... or a mapping  steps: {flat_field: {skip: true}}  /  {flat_field: {parameters: {...}}}

:func:`load_config` returns a normalized tree ``{"class", "name", "parameters",
"steps": {step_name: parameters}}`` with nested step files merged (the nested file
first, local parameters over it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from romancore.errors import FileFormatError, ParameterError

from .params import STPIPE_COMPAT_KEYS

log = logging.getLogger(__name__)

_IGNORED_TOP = {"asdf_library", "history", "meta"}


def _read_tree(path: Path) -> dict:
    if not path.is_file():
        raise FileFormatError(f"parameter file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".asdf":
            import asdf

            with asdf.open(path, lazy_load=False, memmap=False) as af:
                tree = {k: _plain(v) for k, v in af.tree.items() if k not in _IGNORED_TOP}
        else:
            import yaml

            with open(path) as fh:
                tree = yaml.safe_load(fh)
    except (FileFormatError, ParameterError):
        raise
    except Exception as exc:
        raise FileFormatError(f"parameter file {path} cannot be read: {exc}") from exc
    if not isinstance(tree, dict):
        raise FileFormatError(f"parameter file {path} does not hold a mapping")
    return tree


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _step_key(entry: dict, where: Path) -> str:
    name = entry.get("name")
    if name:
        return str(name)
    cls = entry.get("class")
    if cls:
        from .registry import resolve_class

        return resolve_class(str(cls)).class_alias
    raise FileFormatError(f"parameter file {where}: a steps entry has neither 'name' nor 'class'")


def _entry_params(entry, base: Path, where: Path) -> dict:
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise FileFormatError(f"parameter file {where}: step entry {entry!r} is not a mapping")
    params = entry.get("parameters", None)
    if params is None:
        # mapping form {step: {param: value}} without a 'parameters' level
        params = {k: v for k, v in entry.items() if k not in ("class", "name", "steps")}
    params = dict(params or {})
    nested = params.pop("config_file", None)
    if nested:
        sub = load_config(base / nested)
        merged = dict(sub.get("parameters") or {})
        merged.update(params)
        params = merged
    return params


def load_config(path) -> dict:
    """Read a parameter file and return the normalized tree (see module docstring)."""
    path = Path(path)
    tree = _read_tree(path)
    base = path.parent
    out = {"class": tree.get("class"), "name": tree.get("name"),
           "parameters": dict(tree.get("parameters") or {}), "steps": {}}
    nested = out["parameters"].pop("config_file", None)
    if nested:
        sub = load_config(base / nested)
        merged = dict(sub["parameters"])
        merged.update(out["parameters"])
        out["parameters"] = merged
        for k, v in sub["steps"].items():
            out["steps"].setdefault(k, {}).update(v)
    steps = tree.get("steps")
    if isinstance(steps, list):
        for entry in steps:
            if not isinstance(entry, dict):
                raise FileFormatError(f"parameter file {path}: steps entry {entry!r} is not a mapping")
            out["steps"].setdefault(_step_key(entry, path), {}).update(_entry_params(entry, base, path))
    elif isinstance(steps, dict):
        for name, entry in steps.items():
            out["steps"].setdefault(str(name), {}).update(_entry_params(entry, base, path))
    elif steps is not None:
        raise FileFormatError(f"parameter file {path}: 'steps' must be a list or a mapping")
    unknown = set(tree) - {"class", "name", "parameters", "steps"} - _IGNORED_TOP
    if unknown:
        raise ParameterError(
            f"parameter file {path}: unknown top-level keys {sorted(unknown)}; "
            "allowed: class, name, parameters, steps"
        )
    return out


def check_class(cfg: dict, cls) -> None:
    """Fail if the file names a class other than *cls* (a missing class is accepted)."""
    name = cfg.get("class")
    if not name:
        return
    from .registry import resolve_class

    other = resolve_class(str(name))
    if other is not cls and not issubclass(cls, other):
        raise ParameterError(
            f"parameter file is for {other.__name__} ({name}), not {cls.__name__}"
        )


def filter_compat(params: dict, logger: logging.Logger | None = None) -> dict:
    """Drop stpipe infrastructure keys (input_dir, output_ext, ...) that romancore ignores."""
    out = {}
    for k, v in params.items():
        if k in STPIPE_COMPAT_KEYS:
            (logger or log).debug("parameter %s=%r is an stpipe setting; ignored", k, v)
            continue
        out[k] = v
    return out


def save_config(tree: dict, path) -> Path:
    """Write a parameter tree as ``.asdf`` (ASDF) or ``.yaml``/``.yml``; returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if suffix == ".asdf":
            import asdf

            asdf.AsdfFile(dict(tree)).write_to(tmp)
        elif suffix in (".yaml", ".yml"):
            import yaml

            with open(tmp, "w") as fh:
                yaml.safe_dump(tree, fh, sort_keys=False)
        else:
            raise ParameterError(
                f"--save-parameters {path}: the extension must be .asdf, .yaml or .yml"
            )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
