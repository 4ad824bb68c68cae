"""Typed step parameters: one definition gives validation, CLI parsing, help and docs.

A :class:`Param` states the type, default, allowed range or choices and a one-line
doc of a parameter.  Everything else is derived from it:

* :meth:`Param.coerce` turns a value from Python, a parameter file or the command
  line (a string) into the typed value, or raises :class:`ParameterError` naming the
  step, the parameter, the value and the rule;
* :func:`help_lines` and :func:`docs_table` render the definitions for ``--help``
  and for the documentation.

Types: ``bool``, ``int``, ``float``, ``str``, ``option`` (one of ``choices``),
``bits`` (a DQ bit specification, checked with :func:`romancore.dq.interpret_bit_flags`),
``float_list`` / ``int_list`` (sequences, also given as ``"1.0 2.0"`` or ``"1,2"``),
``path`` (a file name string), ``hooks`` (a list of callables or dotted paths).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from romancore.errors import ParameterError

TYPES = ("bool", "int", "float", "str", "option", "bits", "float_list", "int_list", "path", "hooks")

_TRUE = {"true", "yes", "on", "1", "t", "y"}
_FALSE = {"false", "no", "off", "0", "f", "n"}
_NONE = {"none", "null", "~"}


@dataclass(frozen=True)
class Param:
    """Definition of one step parameter.

    Parameters
    ----------
    name : str
        Parameter name (a Python identifier).
    type : str
        One of :data:`TYPES`.
    default : object
        Code default (already of the declared type, or None when ``nullable``).
    doc : str
        One-line description shown in ``--help`` and the docs table.
    min, max : float, optional
        Inclusive range for numbers; for lists, the range of each element.
    choices : tuple, optional
        Allowed values for ``option`` (None is allowed only if ``nullable``).
    nullable : bool
        Whether None is an allowed value.
    length : int, optional
        Required length of list values.
    to_method : bool
        Whether the value is passed to the model method / algorithm function as a
        keyword argument (False for parameters the step machinery consumes itself).
    """

    name: str
    type: str
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    length: int | None = None
    to_method: bool = True
    exclusive_min: bool = False

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r}")
        if self.type == "option" and not self.choices:
            raise ValueError(f"parameter {self.name!r}: option type needs choices")

    # ------------------------------------------------------------------ checks
    def rule(self) -> str:
        """Human-readable statement of what values are allowed."""
        t = self.type
        if t == "option":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif t in ("int", "float"):
            text = "an integer" if t == "int" else "a number"
            lo = None if self.min is None else (f"> {self.min}" if self.exclusive_min else f">= {self.min}")
            hi = None if self.max is None else f"<= {self.max}"
            rng = " and ".join(x for x in (lo, hi) if x)
            if rng:
                text += f" {rng}"
        elif t == "bool":
            text = "true or false"
        elif t == "bits":
            text = "a DQ bit specification such as '~DO_NOT_USE+NON_SCIENCE' or '8192,65536'"
        elif t in ("float_list", "int_list"):
            kind = "numbers" if t == "float_list" else "integers"
            n = f"{self.length} " if self.length else ""
            text = f"a list of {n}{kind} (e.g. '1.0 2.0' or '1,2')"
            lo = None if self.min is None else f">= {self.min}"
            hi = None if self.max is None else f"<= {self.max}"
            if lo or hi:
                text += " each " + " and ".join(x for x in (lo, hi) if x)
        elif t == "hooks":
            text = "a list of Python callables, Step classes or dotted paths to them"
        elif t == "path":
            text = "a file name"
        else:
            text = "a string"
        if self.nullable:
            text += " (or None)"
        return text

    def _fail(self, value, step: str, why: str | None = None):
        msg = f"step {step!r}: parameter {self.name!r} = {value!r} is invalid: must be {self.rule()}"
        if why:
            msg += f" ({why})"
        raise ParameterError(msg)

    def coerce(self, value: Any, step: str = "?") -> Any:
        """Return *value* converted to the declared type, or raise ParameterError.

        Strings (command line, YAML) are parsed; other values are checked.
        """
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE
                             and (self.nullable or self.type not in ("str", "path"))):
            if self.nullable:
                return None
            if self.type == "hooks":
                return ()
            self._fail(value, step, "None is not allowed")
        t = self.type
        if t == "bool":
            out = self._to_bool(value, step)
        elif t == "int":
            out = self._to_int(value, step)
            self._check_range(out, value, step)
        elif t == "float":
            out = self._to_float(value, step)
            self._check_range(out, value, step)
        elif t == "option":
            out = value.strip() if isinstance(value, str) else value
            if out not in self.choices:
                # case-insensitive match for strings, returning the canonical spelling
                if isinstance(out, str):
                    for c in self.choices:
                        if isinstance(c, str) and c.lower() == out.lower():
                            return c
                self._fail(value, step)
        elif t in ("str", "path"):
            if not isinstance(value, str):
                if t == "path" and hasattr(value, "__fspath__"):
                    return str(value)
                self._fail(value, step, f"got {type(value).__name__}")
            out = value
        elif t == "bits":
            out = self._to_bits(value, step)
        elif t in ("float_list", "int_list"):
            out = self._to_list(value, step)
        elif t == "hooks":
            out = self._to_hooks(value, step)
        else:  # pragma: no cover - guarded in __post_init__
            raise AssertionError(t)
        return out

    def _to_bool(self, value, step):
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            v = value.strip().lower()
            if v in _TRUE:
                return True
            if v in _FALSE:
                return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        self._fail(value, step)

    def _to_int(self, value, step):
        if isinstance(value, bool):
            self._fail(value, step, "a boolean is not an integer")
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
            try:
                f = float(value)
            except ValueError:
                self._fail(value, step)
            if f.is_integer():
                return int(f)
        if hasattr(value, "__index__"):
            return int(value.__index__())
        self._fail(value, step)

    def _to_float(self, value, step):
        if isinstance(value, bool):
            self._fail(value, step, "a boolean is not a number")
        try:
            out = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            self._fail(value, step)
        if math.isnan(out):
            self._fail(value, step, "NaN is not allowed")
        return out

    def _check_range(self, out, value, step):
        if self.min is not None:
            if out < self.min or (self.exclusive_min and out == self.min):
                self._fail(value, step, "out of range")
        if self.max is not None and out > self.max:
            self._fail(value, step, "out of range")

    def _to_bits(self, value, step):
        from romancore.dq import interpret_bit_flags

        if isinstance(value, bool):
            self._fail(value, step)
        try:
            interpret_bit_flags(value)
        except (ValueError, TypeError, KeyError) as exc:
            self._fail(value, step, str(exc))
        if isinstance(value, int):
            return str(int(value))
        if not isinstance(value, str):
            self._fail(value, step)
        return value

    def _to_list(self, value, step):
        if isinstance(value, str):
            items = value.replace(",", " ").split()
        elif isinstance(value, Sequence):
            items = list(value)
        else:
            self._fail(value, step)
        if self.length is not None and len(items) != self.length:
            self._fail(value, step, f"needs {self.length} values, got {len(items)}")
        conv = self._to_float if self.type == "float_list" else self._to_int
        out = []
        for it in items:
            try:
                v = conv(it, step)
            except ParameterError:
                self._fail(value, step, f"{it!r} is not valid")
            self._check_range(v, value, step)
            out.append(v)
        return tuple(out)

    def _to_hooks(self, value, step):
        if isinstance(value, str) or callable(value):
            value = [value]
        if not isinstance(value, Sequence):
            self._fail(value, step)
        out = []
        for h in value:
            if isinstance(h, str):
                h = h.strip()
                if not h:
                    continue
                try:
                    resolve_dotted(h)
                except ParameterError as exc:
                    self._fail(value, step, str(exc))
            elif not callable(h):
                self._fail(value, step, f"{h!r} is neither callable nor a dotted path")
            out.append(h)
        return tuple(out)

    # ------------------------------------------------------------------ render
    def to_plain(self, value: Any) -> Any:
        """Value as plain YAML/ASDF data (used when writing parameter files)."""
        if value is None:
            return None
        if self.type in ("float_list", "int_list"):
            return list(value)
        if self.type == "hooks":
            return [h if isinstance(h, str) else _dotted_name(h) for h in value]
        return value

    def default_text(self) -> str:
        d = self.default
        if self.type in ("float_list", "int_list") and d is not None:
            return " ".join(str(x) for x in d)
        if self.type == "hooks":
            return "[]"
        if isinstance(d, str):
            return repr(d)
        return str(d)


def _dotted_name(obj) -> str:
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        raise ParameterError(
            f"hook {obj!r} cannot be written to a parameter file: it has no importable dotted path"
        )
    return f"{mod}.{qual}"


def resolve_dotted(path: str) -> Any:
    """Import ``package.module.attr`` (attr may be nested) and return the object."""
    import importlib

    parts = path.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ParameterError(f"{path!r} is not a dotted Python path (package.module.name)")
    for i in range(len(parts) - 1, 0, -1):
        modname = ".".join(parts[:i])
        try:
            obj = importlib.import_module(modname)
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ParameterError(f"cannot import {path!r}")


# ---------------------------------------------------------------------- universal
UNIVERSAL: tuple[Param, ...] = (
    Param("skip", "bool", False, "Skip this step (cal_step is set to SKIPPED).", to_method=False),
    Param("save_results", "bool", False, "Save the result of this step to a file.", to_method=False),
    Param("output_dir", "path", None, "Directory for output files (default: current directory).",
          nullable=True, to_method=False),
    Param("output_file", "path", None,
          "Output file name; with an extension it is used as is, without one it is a base name.",
          nullable=True, to_method=False),
    Param("suffix", "str", None, "Suffix of the output file (default: the step's own suffix).",
          nullable=True, to_method=False),
    Param("pre_hooks", "hooks", (), "Callables or dotted paths run on the input before the step.",
          to_method=False),
    Param("post_hooks", "hooks", (), "Callables or dotted paths run on the result after the step.",
          to_method=False),
)

#: Infrastructure keys written by stpipe's exporters; accepted in parameter files and ignored.
STPIPE_COMPAT_KEYS = frozenset(
    {"input_dir", "output_ext", "output_use_index", "output_use_model", "search_output_file"}
)


def override_param(reftype: str) -> Param:
    """The ``override_<reftype>`` parameter every step gets for each reference type."""
    return Param(f"override_{reftype}", "path", None,
                 f"Use this {reftype.upper()} reference file instead of the CRDS selection "
                 "('N/A' skips the reference).",
                 nullable=True, to_method=False)


@dataclass
class ParamSet:
    """Validated parameter values of one step, with a record of which were set explicitly."""

    spec: tuple[Param, ...]
    step: str
    values: dict = field(default_factory=dict)
    explicit: set = field(default_factory=set)

    def __post_init__(self):
        self._by_name = {p.name: p for p in self.spec}
        for p in self.spec:
            self.values.setdefault(p.name, p.default)

    def names(self) -> list[str]:
        return [p.name for p in self.spec]

    def param(self, name: str) -> Param:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            raise ParameterError(
                f"step {self.step!r}: unknown parameter {name!r}; known parameters: {known}"
            ) from None

    def set(self, name: str, value: Any, *, explicit: bool = True) -> None:
        p = self.param(name)
        self.values[name] = p.coerce(value, self.step)
        if explicit:
            self.explicit.add(name)

    def update(self, mapping: dict, *, explicit: bool = True) -> None:
        for k, v in mapping.items():
            self.set(k, v, explicit=explicit)

    def plain(self) -> dict:
        return {p.name: p.to_plain(self.values[p.name]) for p in self.spec}


# ---------------------------------------------------------------------- rendering
def help_lines(spec: Sequence[Param], prefix: str = "--") -> list[str]:
    """One line per parameter: option, rule, default and doc (for ``--help``)."""
    lines = []
    for p in spec:
        lines.append(f"  {prefix}{p.name}=VALUE")
        lines.append(f"      {p.doc} Allowed: {p.rule()}. Default: {p.default_text()}.")
    return lines


def docs_table(step_cls, fmt: str = "rst") -> str:
    """Render the parameter table of a step or pipeline class for the documentation.

    Parameters
    ----------
    step_cls : Step subclass
        The class whose ``param_spec()`` is rendered.
    fmt : {'rst', 'md'}
        reStructuredText list-table or Markdown pipe table.
    """
    rows = [(p.name, p.type, p.default_text(), p.rule(), p.doc) for p in step_cls.param_spec()]
    header = ("Parameter", "Type", "Default", "Allowed", "Description")
    if fmt == "md":
        out = [f"### {step_cls.class_alias} ({step_cls.__name__})", "",
               "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
        return "\n".join(out) + "\n"
    if fmt != "rst":
        raise ParameterError(f"docs_table: fmt={fmt!r} is invalid: must be 'rst' or 'md'")
    title = f"{step_cls.class_alias} ({step_cls.__name__})"
    out = [title, "-" * len(title), "", ".. list-table::", "   :header-rows: 1", ""]
    for r in (header, *rows):
        out.append(f"   * - {r[0]}")
        out.extend(f"     - {c}" for c in r[1:])
    return "\n".join(out) + "\n"


CallableHook = Callable[[Any], Any]
