"""The schema-validated data model base class and attribute-access nodes.

A model is a tree: ``meta`` (nested mappings of metadata) plus top-level
arrays or tables.  It is validated with its schema (``schemas/<name>.yaml``)
when it is opened, saved or :meth:`DataModel.validate` is called, and a single
metadata value is validated when it is assigned.

Models never open files by themselves except through the constructor / open
path given by the caller, and never ask CRDS.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from astropy.time import Time

from .. import __version__
from ..errors import FileFormatError, ValidationError, WrongModelError
from ..io import materialize, parse_tag, read_roman, write_roman
from .schema import load_schema, placeholder_tree, subschema, validator_for

__all__ = ["DataModel", "Node", "get_meta"]

_MISSING = object()


def _schema_error(path: str, value, err) -> ValidationError:
    shown = repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    rule = err.validator
    expected = err.validator_value
    where = ".".join([path, *[str(p) for p in err.absolute_path]]) if err.absolute_path else path
    msg = (
        f"While validating {where} the following error occurred:\n{err.message}\n"
        f"Failed validating {rule!r} (expected {expected!r}) on value {shown}"
    )
    return ValidationError(msg, validator=rule, validator_value=expected, instance=value)


class Node:
    """Attribute and item access to one mapping of a model tree.

    ``node.a.b`` and ``node["a.b"]`` read; assignments are validated against
    the schema of the model at that path.  Reading a missing child that the
    schema declares as an object gives an empty node that is attached to the
    tree when something is assigned into it.
    """

    __slots__ = ("_data", "_path", "_model", "_parent", "_key")

    def __init__(self, data: dict | None, path: tuple[str, ...], model: DataModel,
                 parent: Node | None = None, key: str | None = None):
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_key", key)

    # -- internal helpers
    def _ensure(self) -> dict:
        if self._data is None:
            parent = self._parent._ensure()
            data = parent.setdefault(self._key, {})
            object.__setattr__(self, "_data", data)
        return self._data

    def _wrap(self, key, value):
        if isinstance(value, dict):
            return Node(value, (*self._path, key), self._model, self, key)
        return value

    # -- attribute protocol
    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        data = self._data or {}
        if key in data:
            value = data[key]
            if not isinstance(value, dict):
                value = materialize(value, self._model._source_path)
                data[key] = value
            return self._wrap(key, value)
        sub = subschema(self._model.schema, (*self._path, key))
        if sub is not None and (sub.get("type") == "object" or "properties" in sub):
            return Node(None, (*self._path, key), self._model, self, key)
        raise AttributeError(f"{'.'.join((*self._path, key))} is not set in this {type(self._model).__name__}")

    def __setattr__(self, key, value):
        if isinstance(value, Node):
            value = value.to_dict()
        self._model._check_value((*self._path, key), value)
        self._ensure()[key] = value

    def __delattr__(self, key):
        data = self._data or {}
        if key not in data:
            raise AttributeError(key)
        del data[key]

    def __contains__(self, key):
        return self._data is not None and key in self._data

    def __getitem__(self, dotted: str):
        node: Any = self
        for part in dotted.split("."):
            try:
                node = getattr(node, part)
            except AttributeError:
                raise KeyError(dotted) from None
        return node

    def __setitem__(self, dotted: str, value):
        *parents, last = dotted.split(".")
        node: Any = self
        for part in parents:
            node = getattr(node, part)
        setattr(node, last, value)

    def __iter__(self):
        return iter(self._data or {})

    def __len__(self):
        return len(self._data or {})

    def __eq__(self, other):
        if isinstance(other, Node):
            other = other._data
        return self._data == other

    def __dir__(self):
        return sorted(set(self._data or {}) | set(object.__dir__(self)))

    def __repr__(self):
        return f"<Node {'.'.join(self._path)}: {sorted(self._data or {})}>"

    def keys(self):
        return (self._data or {}).keys()

    def get(self, key, default=None):
        try:
            return getattr(self, key)
        except AttributeError:
            return default

    def items(self):
        """Flattened (dotted path, value) pairs below this node."""
        out = []

        def walk(prefix, node):
            for key, value in node.items():
                name = f"{prefix}.{key}" if prefix else key
                if isinstance(value, dict):
                    walk(name, value)
                else:
                    out.append((name, value))

        walk(".".join(self._path), self._data or {})
        return out

    def to_dict(self) -> dict:
        """A deep copy of this node as plain dicts."""
        return copy.deepcopy(self._data or {})


class DataModel:
    """Base class of every romancore model.

    Parameters
    ----------
    init : None, str or Path, dict, or DataModel
        ``None`` gives an empty model (use :meth:`create_minimal` for a valid
        one); a path opens a file (which must hold this kind of model); a dict
        is used as the tree; a model of the same class shares its tree.
    validate : bool
        Validate on construction from a file or dict (default True).
    """

    schema_name: ClassVar[str] = ""
    #: names of other schemas whose files this class accepts when opening
    accepted_schemas: ClassVar[tuple[str, ...]] = ()

    def __init__(self, init=None, *, validate: bool = True):
        self._asdf = None
        self._source_path: Path | None = None
        if init is None:
            self._tree = {"meta": {}}
        elif isinstance(init, DataModel):
            if not isinstance(init, type(self)):
                raise WrongModelError(
                    f"expected {type(self).__name__}, got a {type(init).__name__}"
                )
            self._tree = init._tree
            self._asdf = init._asdf
            self._source_path = init._source_path
        elif isinstance(init, dict):
            self._tree = init
            if validate:
                self.validate()
        elif isinstance(init, (str, Path)):
            self._load(Path(init), validate)
        elif isinstance(init, tuple) and len(init) == 4:  # (path, AsdfFile, node, tag) from open()
            self._load(Path(init[0]), validate, opened=init[1:])
        else:
            raise TypeError(f"cannot make a {type(self).__name__} from a {type(init).__name__}")

    # -- construction -------------------------------------------------------------------
    def _load(self, path: Path, validate: bool, opened=None):
        af, node, tag = opened if opened is not None else read_roman(path)
        parsed = parse_tag(tag)
        names = (self.schema_name, *self.accepted_schemas)
        if parsed is None or parsed[0] not in names:
            from .registry import class_for_schema

            held = class_for_schema(parsed[0]).__name__ if parsed and class_for_schema(parsed[0]) else (tag or "an untagged node")
            af.close()
            raise WrongModelError(f"expected {type(self).__name__}, {path} holds {_article(held)}")
        self._asdf = af
        self._source_path = path.resolve()
        self._tree = dict(node)
        if validate:
            try:
                self.validate()
            except ValidationError as err:
                af.close()
                raise ValidationError(f"{path}: {err.message}") from None

    @classmethod
    def create_minimal(cls, shape=None, *, meta: dict | None = None, **arrays):
        """A valid model with placeholder metadata and zero arrays of ``shape``.

        Placeholder values are obviously not real ('?' strings, -999999
        numbers, 2020-01-01 times) and should be replaced.  ``meta`` is a nested
        dict merged over the placeholders; ``arrays`` set arrays directly.
        """
        model = cls.__new__(cls)
        model._asdf = None
        model._source_path = None
        tree = {"meta": placeholder_tree(model.schema)}
        if "model_type" in (subschema(model.schema, ("meta",)) or {}).get("properties", {}):
            tree["meta"]["model_type"] = cls.__name__
        if meta:
            _deep_merge(tree["meta"], meta)
        if shape is not None:
            for name, sub in model.schema.get("properties", {}).items():
                if sub.get("type") != "ndarray" or sub.get("optional_array") or name in arrays:
                    continue
                if name not in model.schema.get("required", []):
                    continue
                ashape = cls._array_shape(name, sub, tuple(shape))
                dtype = sub["datatype"][0] if isinstance(sub["datatype"], list) else sub["datatype"]
                tree[name] = np.zeros(ashape, dtype=dtype)
        tree.update(arrays)
        model._tree = tree
        model._fill_required_non_arrays()
        model.validate()
        return model

    def _fill_required_non_arrays(self):
        for name in self.schema.get("required", []):
            if name in self._tree:
                continue
            sub = self.schema["properties"].get(name, {})
            kind = sub.get("type")
            kinds = kind if isinstance(kind, list) else [kind]
            if "table" in kinds:
                from astropy.table import Table

                self._tree[name] = Table()
            elif "null" in kinds:
                self._tree[name] = None
            elif "object" in kinds:
                self._tree[name] = {}

    @classmethod
    def _array_shape(cls, name: str, sub: dict, shape: tuple) -> tuple:
        """Shape of array ``name`` in a new model whose main array has ``shape``."""
        ndim = sub.get("ndim", len(shape))
        if ndim == len(shape):
            return shape
        if ndim < len(shape):
            return shape[-ndim:]
        return (1,) * (ndim - len(shape)) + shape

    # -- schema -------------------------------------------------------------------------
    @property
    def schema(self) -> dict:
        return load_schema(self.schema_name)

    @property
    def tag(self) -> str:
        return self.schema["tag"]

    @property
    def schema_uri(self) -> str:
        return self.schema["$id"]

    def _check_value(self, path: tuple[str, ...], value):
        sub = subschema(self.schema, path)
        if sub is None:
            return
        errors = sorted(validator_for(sub).iter_errors(value), key=lambda e: e.path)
        if errors:
            raise _schema_error(".".join(path), value, errors[0])

    def validate(self):
        """Check the whole tree against the schema; raise ValidationError naming the path."""
        validator = validator_for(self.schema)
        errors = sorted(validator.iter_errors(self._tree), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            err = errors[0]
            where = ".".join(str(p) for p in err.absolute_path) or "<root>"
            extra = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise ValidationError(
                f"{type(self).__name__} {where}: {err.message}{extra}",
                validator=err.validator,
                validator_value=err.validator_value,
                instance=err.instance,
            )

    # -- access -------------------------------------------------------------------------
    @property
    def meta(self) -> Node:
        return Node(self._tree.setdefault("meta", {}), ("meta",), self)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        tree = self.__dict__.get("_tree")
        if tree is None:
            raise AttributeError(name)
        if name in tree:
            value = tree[name]
            if isinstance(value, dict):
                return Node(value, (name,), self)
            loaded = materialize(value, self._source_path)
            if loaded is not value:
                self.__dict__.setdefault("_lazy", {})[name] = value
                tree[name] = loaded
            return loaded
        sub = subschema(self.schema, (name,))
        if sub is not None:
            raise AttributeError(f"{type(self).__name__} has no '{name}' (it is optional and not set)")
        raise AttributeError(f"{type(self).__name__} has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name.startswith("_") or name in type(self).__dict__ or any(name in k.__dict__ for k in type(self).__mro__):
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Node):
            value = value.to_dict()
        self._check_value((name,), value)
        self._tree[name] = value
        # a new value replaces the file's copy: release_arrays() must not bring the old one back
        self.__dict__.get("_lazy", {}).pop(name, None)

    def __delattr__(self, name):
        if name in self._tree:
            del self._tree[name]
        else:
            object.__delattr__(self, name)

    def __contains__(self, name):
        return name in self._tree

    def __getitem__(self, dotted: str):
        head, _, rest = dotted.partition(".")
        node = getattr(self, head)
        return node[rest] if rest else node

    def __setitem__(self, dotted: str, value):
        head, _, rest = dotted.partition(".")
        if not rest:
            setattr(self, head, value)
        else:
            getattr(self, head)[rest] = value

    def items(self):
        """Flattened (dotted path, value) pairs of the whole tree (arrays not read)."""
        out = []
        for key, value in self._tree.items():
            if isinstance(value, dict):
                out.extend(Node(value, (key,), self).items())
            else:
                out.append((key, value))
        return out

    def keys(self):
        return self._tree.keys()

    @property
    def shape(self):
        data = self._tree.get("data")
        return tuple(data.shape) if hasattr(data, "shape") else None

    # -- whole-model operations --------------------------------------------------------
    def copy(self):
        """A deep copy: arrays and metadata are independent of this model."""
        new = type(self).__new__(type(self))
        new._asdf = None
        new._source_path = None
        tree = {}
        for key, value in self._tree.items():
            value = materialize(value, self._source_path)
            if isinstance(value, np.ndarray):
                tree[key] = np.array(value)
            else:
                tree[key] = copy.deepcopy(value)
        new._tree = tree
        return new

    def to_tree(self) -> dict:
        return self._tree

    def save(self, path, *, overwrite: bool = False, dir_path=None) -> Path:
        """Write the model to ``path`` atomically and return the path.

        Refuses to write over the file this model was read from unless
        ``overwrite=True`` (then the data are read fully first).  Records the
        software name/version, file name and file date in ``meta``.
        """
        path = Path(path)
        if dir_path is not None:
            path = Path(dir_path) / path.name
        target = path.resolve()
        if self._source_path is not None and target == self._source_path:
            if not overwrite:
                raise FileFormatError(
                    f"{path}: refusing to overwrite the file this {type(self).__name__} was read from "
                    "(pass overwrite=True to replace it)"
                )
            self._load_all()
        meta = self._tree.setdefault("meta", {})
        if "calibration_software_name" in meta or "calibration_software_name" in (subschema(self.schema, ("meta",)) or {}).get("properties", {}):
            meta["calibration_software_name"] = "romancore"
            meta["calibration_software_version"] = __version__
        if "filename" in (subschema(self.schema, ("meta",)) or {}).get("properties", {}):
            meta["filename"] = path.name
        if "file_date" in (subschema(self.schema, ("meta",)) or {}).get("properties", {}):
            meta["file_date"] = Time.now()
        self.validate()
        return write_roman(path, self._tree, self.tag)

    def _load_all(self):
        for key, value in list(self._tree.items()):
            value = materialize(value, self._source_path)
            if isinstance(value, np.ndarray):
                value = np.array(value)
            self._tree[key] = value

    def release_arrays(self) -> int:
        """Forget the arrays read from this model's file; they are read again when next used.

        For file-backed models held for a long time (reference files, an L1 exposure after
        its conversion), this returns their memory.  Changes made in memory to those arrays
        are lost.  Returns the number of arrays released.
        """
        lazy = self.__dict__.get("_lazy") or {}
        for name, value in lazy.items():
            self._tree[name] = value
        count = len(lazy)
        lazy.clear()
        return count

    def close(self):
        if self._asdf is not None:
            self._asdf.close()
            self._asdf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- user conveniences ----------------------------------------------------------------
    def info(self, max_rows: int | None = 40) -> str:
        """A printable summary of the tree: meta values and array shapes/dtypes."""
        lines = [f"{type(self).__name__} ({self.tag})"]
        for name, value in self.items():
            if hasattr(value, "shape") and hasattr(value, "dtype"):
                text = f"array {np.dtype(value.dtype).name} {tuple(value.shape)}"
            else:
                text = repr(value)
                if len(text) > 80:
                    text = text[:77] + "..."
            lines.append(f"{name:>40}  {text}")
        if max_rows is not None and len(lines) > max_rows + 1:
            lines = lines[: max_rows + 1] + [f"... ({len(lines) - max_rows - 1} more rows)"]
        text = "\n".join(lines)
        print(text)
        return text

    def search(self, pattern: str) -> dict:
        """Paths (and values) whose dotted name matches the regular expression ``pattern``."""
        rx = re.compile(pattern)
        return {name: value for name, value in self.items() if rx.search(name)}

    def get_crds_parameters(self) -> dict:
        """Metadata for CRDS selection, keyed ``roman.meta.<path>`` in lower case."""
        out = {}
        for name, value in self.meta.items():
            if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
                out[f"roman.{name}"] = value
            elif isinstance(value, Time):
                out[f"roman.{name}"] = value.to_value("iso", subfmt="date_hms")[:19]
        return out

    def __repr__(self):
        where = f" from {self._source_path.name}" if self._source_path else ""
        return f"<{type(self).__name__}{where} shape={self.shape}>"


def get_meta(model, dotted: str, default=None):
    """``model.meta.<dotted>``, or ``default`` when any part of the path is not set."""
    node = getattr(model, "meta", None)
    try:
        for part in dotted.split("."):
            node = getattr(node, part)
    except (AttributeError, KeyError):
        return default
    return node


def _article(name: str) -> str:
    return f"an {name}" if name[:1].upper() in "AEIOU" else f"a {name}"


def _deep_merge(base: dict, extra: dict):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
