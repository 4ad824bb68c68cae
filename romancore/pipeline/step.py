"""Step: one calibration operation run the same way for every step.

A step class is data: the model method (or container-level function) it calls, the
reference types it needs and its typed parameters.  :meth:`Step.run` does, for every
step: check parameters → skip if asked or not applicable → pre-hooks → resolve
references → call → set ``meta.cal_step.<step>`` → post-hooks → log wall time and
peak memory → save if asked.  ``Step.call(input, **params)`` and
``Step(**params).run(input)`` behave identically.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from romancore.datamodels.base import get_meta
from romancore.errors import ParameterError, ReferenceFileError, RomancoreError

from . import config as _config
from .naming import output_path
from .params import UNIVERSAL, Param, ParamSet, override_param, resolve_dotted
from .refs import ReferenceProvider

COMPLETE, SKIPPED, FAILED, INCOMPLETE = "COMPLETE", "SKIPPED", "FAILED", "INCOMPLETE"


class RefType(NamedTuple):
    """A reference type a step uses; optional ones may be absent (passed as None)."""

    reftype: str
    optional: bool = False


# ----------------------------------------------------------------------------- meta helpers
def set_meta(model, dotted: str, value) -> bool:
    """Set ``model.meta.<dotted>``; returns False if the model's schema has no such field."""
    from romancore.errors import ValidationError

    *parents, last = dotted.split(".")
    node = getattr(model, "meta", None)
    try:
        for part in parents:
            node = getattr(node, part)
        setattr(node, last, value)
    except (AttributeError, KeyError, ValidationError):
        return False
    return True


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def is_model(obj) -> bool:
    return hasattr(obj, "meta") and hasattr(obj, "save")


# ----------------------------------------------------------------------------- the Step class
class Step:
    """Base class of every step; subclasses only declare class attributes.

    Class attributes
    ----------------
    class_alias : str
        Step name used on the command line (``--steps.<class_alias>.<param>``), in
        parameter files and as the default output suffix.
    aliases : tuple of str
        Older names that resolve to this class.
    method : str or None
        Name of the model method called as ``model.<method>(*refs, **params)``.
    function : str or None
        Dotted path of a container-level function ``f(container, *refs, **params)``;
        used instead of ``method`` when ``container`` is True.
    container : bool
        Whether the step works on a :class:`~romancore.container.ModelContainer`.
    reference_types : tuple of RefType
        References resolved before the call, passed positionally in this order.
    spec : tuple of Param
        Step-specific parameters (universal and ``override_*`` ones are added).
    cal_step : str or None
        Key of ``meta.cal_step`` this step records.
    returns : {'model', 'products'}
        'model': the call returns the model to continue with.  'products': it returns
        a tuple of extra products named by ``product_suffixes`` and the input model
        continues (source_catalog).
    input_kind : {'ramp', None}
        'ramp': a ScienceRawModel input is converted with ``RampModel.from_raw`` first.
    """

    class_alias: ClassVar[str] = "step"
    aliases: ClassVar[tuple[str, ...]] = ()
    method: ClassVar[str | None] = None
    function: ClassVar[str | None] = None
    container: ClassVar[bool] = False
    reference_types: ClassVar[tuple[RefType, ...]] = ()
    spec: ClassVar[tuple[Param, ...]] = ()
    cal_step: ClassVar[str | None] = None
    returns: ClassVar[str] = "model"
    product_suffixes: ClassVar[tuple[str, ...]] = ()
    input_kind: ClassVar[str | None] = None
    default_suffix: ClassVar[str | None] = None

    # -------------------------------------------------------------- parameter definitions
    @classmethod
    def param_spec(cls) -> tuple[Param, ...]:
        """All parameters: universal, step-specific, then one override per reference type."""
        own = tuple(cls.spec)
        names = {p.name for p in own}
        out = [p for p in UNIVERSAL if p.name not in names]
        out.extend(own)
        out.extend(override_param(r.reftype) for r in cls.reference_types)
        return tuple(out)

    @classmethod
    def reference_file_types(cls) -> list[str]:
        return [r.reftype for r in cls.reference_types]

    @classmethod
    def suffix_default(cls) -> str:
        return cls.default_suffix or cls.class_alias

    # -------------------------------------------------------------- construction
    def __init__(self, name: str | None = None, parent: Step | None = None,
                 config_file: str | os.PathLike | None = None, **params):
        object.__setattr__(self, "_running", False)
        object.__setattr__(self, "name", name or self.class_alias)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "config_file", config_file)
        object.__setattr__(self, "_params", ParamSet(self.param_spec(), self._qualname()))
        object.__setattr__(self, "products", {})
        object.__setattr__(self, "_provider", None)
        logname = (f"romancore.{parent.name}.{self.name}" if parent is not None
                   else f"romancore.{type(self).__name__}")
        object.__setattr__(self, "log", logging.getLogger(logname))
        if config_file is not None:
            cfg = _config.load_config(config_file)
            _config.check_class(cfg, type(self))
            self._apply_config(cfg, Path(config_file).parent)
        self._params.update(params)

    def _qualname(self) -> str:
        parent = self.__dict__.get("parent")
        return f"{parent.name}.{self.name}" if parent is not None else self.name

    def _apply_config(self, cfg: dict, base: Path) -> None:
        self._params.update(_config.filter_compat(cfg.get("parameters") or {}, self.log))

    @classmethod
    def from_config(cls, config_file=None, **params):
        """Instance configured from a parameter file, then *params* (higher precedence)."""
        return cls(config_file=config_file, **params)

    @classmethod
    def call(cls, input, config_file=None, logcfg=None, **params):
        """Make an instance (parameter file, then keywords) and run it on *input*."""
        if logcfg is not None:
            from romancore.cli.common import configure_logging

            configure_logging(logcfg=logcfg)
        return cls.from_config(config_file, **params).run(input)

    # -------------------------------------------------------------- parameter access
    def __getattr__(self, key):
        params = self.__dict__.get("_params")
        if params is not None and key in params.values:
            return params.values[key]
        raise AttributeError(f"{type(self).__name__} has no attribute or parameter {key!r}")

    def __setattr__(self, key, value):
        params = self.__dict__.get("_params")
        if params is not None and key in params.values:
            if self.__dict__.get("_running"):
                raise ParameterError(
                    f"step {self._qualname()!r}: parameter {key!r} cannot change while the step runs"
                )
            params.set(key, value)
            return
        if key in ("name", "parent", "log", "products", "config_file"):
            object.__setattr__(self, key, value)
            return
        known = ", ".join(params.names()) if params else ""
        raise ParameterError(f"step {self._qualname()!r}: unknown parameter {key!r}; known parameters: {known}")

    def get_parameters(self) -> dict:
        """Current parameter values as plain data (what a parameter file would hold)."""
        return self._params.plain()

    def to_config(self) -> dict:
        """Parameter-file tree (stpipe layout: class, name, parameters)."""
        return {"class": f"{type(self).__module__}.{type(self).__name__}", "name": self.name,
                "parameters": self.get_parameters()}

    def export_config(self, path) -> Path:
        """Write the current parameters to *path* (``.asdf`` or ``.yaml``)."""
        return _config.save_config(self.to_config(), path)

    save_parameters = export_config

    # -------------------------------------------------------------- running
    def run(self, input):
        """Run the step on *input* (path, model, list, container or association).

        Returns the resulting model, or a container when the input held several
        models (model steps) or when the step works on containers.
        """
        provider = ReferenceProvider()
        try:
            data = self._open_input(input)
            if self.container:
                from romancore.container import ModelContainer

                if not isinstance(data, ModelContainer):
                    data = ModelContainer([data])
                return self.execute(data, provider, save_default=False)
            from romancore.container import ModelContainer

            if isinstance(data, ModelContainer):
                results = [self.execute(m, provider, save_default=False) for m in data]
                return ModelContainer(results)
            return self.execute(data, provider, save_default=False)
        finally:
            provider.close()

    __call__ = run

    def _open_input(self, input):
        from romancore.container import ModelContainer, open_input

        if isinstance(input, ModelContainer) or is_model(input):
            return input
        return open_input(input)

    def skip_reason(self, model) -> str | None:
        """Why this step does not apply to *model* (None: it applies).  Subclasses extend."""
        return None

    def execute(self, model, provider: ReferenceProvider, *, save_default: bool = False,
                output_dir=None):
        """The one run path shared by every step (used by :meth:`run` and pipelines)."""
        params = dict(self._params.values)  # snapshot: parameters are fixed for this run
        object.__setattr__(self, "_running", True)
        object.__setattr__(self, "products", {})
        t0 = time.perf_counter()
        try:
            if self.input_kind == "ramp":
                model = _to_ramp(model)
            if params["skip"]:
                self.log.info("Step %s skipped (skip=True)", self.name)
                self._mark(model, SKIPPED)
                return model
            reason = self.skip_reason(model)
            if reason:
                self.log.info("Step %s skipped: %s", self.name, reason)
                self._mark(model, SKIPPED)
                return model
            model = self._run_hooks(params["pre_hooks"], model, "pre")
            result = self._call(model, params, provider)
            result = self._run_hooks(params["post_hooks"], result, "post")
        finally:
            object.__setattr__(self, "_running", False)
        dt = time.perf_counter() - t0
        self.log.info("Step %s done in %.3f s (peak RSS %.0f MB)", self.name, dt, peak_rss_mb())
        if params["save_results"] or params["output_file"] or save_default:
            self.save_result(result, params, output_dir=output_dir)
        return result

    def _run_hooks(self, hooks, model, kind):
        for hook in hooks:
            fn = resolve_dotted(hook) if isinstance(hook, str) else hook
            if isinstance(fn, type) and issubclass(fn, Step):
                out = fn(parent=None).run(model)
            else:
                out = fn(model)
            if out is not None:
                model = out
            self.log.debug("%s-hook %r ran on step %s", kind, hook, self.name)
        return model

    def _resolve_refs(self, model, params, provider):
        """Reference models in declared order; None for absent optional ones.

        Returns (refs, skip_reason).
        """
        if not self.reference_types:
            return [], None
        overrides = {r.reftype: params.get(f"override_{r.reftype}") for r in self.reference_types}
        optional = {r.reftype for r in self.reference_types if r.optional}
        resolved = provider.resolve(model, [r.reftype for r in self.reference_types],
                                    overrides=overrides, optional=optional, step=self.name)
        refs = []
        for r in self.reference_types:
            res = resolved[r.reftype]
            if res.path is None:
                if not r.optional:
                    return None, res.reason
                self.log.info("Step %s: optional %s reference not used (%s)",
                              self.name, r.reftype, res.reason)
                refs.append(None)
                continue
            self.log.info("Step %s: using %s reference %s (%s)", self.name, r.reftype,
                          res.path, res.source)
            try:
                refs.append(provider.open(r.reftype, res.path))
            except RomancoreError as exc:
                raise ReferenceFileError(
                    f"step {self.name!r}: {r.reftype} reference {res.path} is unusable: {exc}"
                ) from exc
            if not self.container:
                set_meta(model, f"ref_file.{r.reftype}", os.path.basename(res.path))
                if res.source == "crds" and res.context:
                    set_meta(model, "ref_file.crds.context", res.context)
                    from .refs import crds_version

                    set_meta(model, "ref_file.crds.version", crds_version())
        return refs, None

    def method_params(self, params: Mapping) -> dict:
        return {p.name: params[p.name] for p in self.spec if p.to_method}

    def _target(self):
        if self.container:
            if not self.function:
                raise RomancoreError(f"step {self.name!r} declares no container function")
            try:
                return resolve_dotted(self.function), None
            except ParameterError as exc:
                raise RomancoreError(
                    f"step {self.name!r} needs {self.function}(), which is not available: {exc}"
                ) from None
        return None, self.method

    def _call(self, model, params, provider):
        refs, reason = self._resolve_refs(model, params, provider)
        if refs is None:
            self.log.info("Step %s skipped: %s", self.name, reason)
            self._mark(model, SKIPPED)
            return model
        kwargs = self.method_params(params)
        fn, method = self._target()
        if fn is None:
            bound = getattr(model, method, None)
            if bound is None:
                raise RomancoreError(
                    f"step {self.name!r} calls {type(model).__name__}.{method}(), "
                    f"which {type(model).__name__} does not have"
                )
        try:
            out = fn(model, *refs, **kwargs) if fn is not None else bound(*refs, **kwargs)
        except Exception:
            self._mark(model, FAILED, only_if_incomplete=False)
            raise
        finally:
            for ref in refs:  # reference arrays are re-read lazily if another exposure needs them
                if ref is not None and hasattr(ref, "release_arrays"):
                    ref.release_arrays()
        if self.returns == "products":
            products = out if isinstance(out, tuple) else (out,)
            object.__setattr__(self, "products", dict(zip(self.product_suffixes, products, strict=False)))
            result = model
        else:
            result = model if out is None else out
        self._mark(result, COMPLETE)
        return result

    def _mark(self, model, status: str, only_if_incomplete: bool = True) -> None:
        """Record ``meta.cal_step.<cal_step>``; never overrides what the method set itself."""
        if not self.cal_step:
            return
        from romancore.container import ModelContainer

        members = model if isinstance(model, ModelContainer) else [model]
        for m in members:
            current = get_meta(m, f"cal_step.{self.cal_step}")
            if only_if_incomplete and status == COMPLETE and current not in (None, INCOMPLETE):
                continue
            set_meta(m, f"cal_step.{self.cal_step}", status)

    # -------------------------------------------------------------- saving
    def save_result(self, result, params=None, *, output_dir=None) -> list[Path]:
        """Save *result* (and any extra products) with the suffix rules; returns the paths."""
        from romancore.container import ModelContainer

        params = params or self._params.values
        outdir = params["output_dir"] or output_dir
        suffix = params["suffix"] or self.suffix_default()
        written = []
        members = list(result) if isinstance(result, ModelContainer) else [result]
        for m in members:
            intermediate = self.parent is not None
            name = get_meta(m, "filename")
            written.append(save_model(m, suffix, output_dir=outdir, keep_filename=intermediate,
                                      output_file=params["output_file"] if len(members) == 1 else None))
            for psuffix, product in self.products.items():
                if product is None:
                    continue
                written.append(save_model(product, psuffix, output_dir=outdir, primary=False,
                                          input_name=name,
                                          output_file=params["output_file"] if len(members) == 1 else None))
        for p in written:
            self.log.info("Saved %s", p)
        return written


def save_model(model, suffix, *, output_dir=None, output_file=None, primary=True,
               input_name=None, keep_filename: bool = False) -> Path:
    """Write *model* under the name the suffix rules give; creates ``output_dir``.

    ``keep_filename``: restore ``meta.filename`` afterwards (intermediate products must
    not rename the model that flows on to the next step).
    """
    name = input_name or get_meta(model, "filename") or None
    if isinstance(name, str) and name.strip() in ("", "?"):
        name = None
    ext = getattr(model, "default_extension", None)
    path = output_path(name, suffix, output_dir=output_dir, output_file=output_file,
                       ext=ext, primary=primary)
    path.parent.mkdir(parents=True, exist_ok=True)
    before = get_meta(model, "filename")
    written = Path(model.save(path, overwrite=False))
    if keep_filename and before is not None:
        set_meta(model, "filename", before)
    return written


def _to_ramp(model):
    """Convert a ScienceRawModel (L1) to a RampModel; other models pass through."""
    if type(model).__name__ != "ScienceRawModel":
        return model
    from romancore.datamodels import RampModel

    from_raw = getattr(RampModel, "from_raw", None)
    if from_raw is None:
        raise RomancoreError("RampModel.from_raw is not available: cannot convert the L1 exposure")
    return from_raw(model)


def step_help(cls, prefix: str = "--") -> str:
    """Help text listing every parameter of a step class."""
    from .params import help_lines

    lines = [f"{cls.__name__} (alias {cls.class_alias})"]
    doc = (cls.__doc__ or "").strip().splitlines()
    if doc:
        lines.append("  " + doc[0])
    lines.extend(help_lines(cls.param_spec(), prefix))
    return "\n".join(lines)


def describe(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)
