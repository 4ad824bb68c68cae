"""Reference-file provider: explicit overrides, then CRDS.

Order for each reference type: the step's ``override_<reftype>`` parameter (a path,
or ``'N/A'`` meaning "do not apply"), else CRDS through the ``crds`` library with the
model's ``get_crds_parameters()``.  CRDS works offline from a local cache
(``CRDS_PATH``) and online when ``CRDS_SERVER_URL`` answers; ``CRDS_CONTEXT`` picks
the context.  ``crds`` reads its environment when it is first imported, so it is
imported here lazily, at the first lookup: variables set before that are honoured.

Nothing is invented: a type with no file is an error naming the type and both ways to
supply it, unless the caller declares it optional.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from romancore.errors import ReferenceFileError

log = logging.getLogger(__name__)

#: reference type -> name of the model class in romancore.datamodels
REFTYPE_MODELS = {
    "mask": "MaskRefModel",
    "saturation": "SaturationRefModel",
    "refpix": "RefpixRefModel",
    "darkdecaysignal": "DarkDecaySignalRefModel",
    "linearity": "LinearityRefModel",
    "inverselinearity": "InverseLinearityRefModel",
    "integralnonlinearity": "IntegralNonlinearityRefModel",
    "gain": "GainRefModel",
    "readnoise": "ReadnoiseRefModel",
    "dark": "DarkRefModel",
    "distortion": "DistortionRefModel",
    "photom": "WfiImgPhotomRefModel",
    "flat": "FlatRefModel",
    "apcorr": "ApcorrRefModel",
    "epsf": "EpsfRefModel",
    "skycells": "SkycellsRefModel",
    "area": "PixelareaRefModel",
}

NOT_APPLICABLE = "N/A"


@dataclass(frozen=True)
class Resolved:
    """Outcome of resolving one reference type."""

    reftype: str
    path: str | None          # None when not applicable / not found
    source: str               # 'override', 'crds', 'n/a', 'missing'
    context: str | None = None
    reason: str = ""


def crds_configured() -> bool:
    """Whether a CRDS cache or server is configured in the environment."""
    return bool(os.environ.get("CRDS_PATH") or os.environ.get("CRDS_SERVER_URL"))


def crds_context() -> str | None:
    """The context to use: ``CRDS_CONTEXT`` if set, else whatever crds calls current."""
    ctx = os.environ.get("CRDS_CONTEXT")
    if ctx:
        return ctx
    try:
        from crds import heavy_client

        return heavy_client.get_processing_mode("roman")[1]
    except Exception as exc:  # crds raises many kinds; report them uniformly
        log.debug("no default CRDS context: %s", exc)
        return None


def crds_version() -> str:
    import crds

    return str(crds.__version__)


def crds_lookup(parameters: dict, reftypes: list[str], context: str | None = None) -> dict:
    """Ask crds for *reftypes*; returns ``{reftype: path or 'N/A'}`` for types it knows.

    Types crds cannot select are absent from the result (logged at DEBUG).
    """
    import crds
    from crds.core.exceptions import CrdsError

    out: dict[str, str] = {}
    params = {str(k).lower(): v for k, v in parameters.items()}
    # crds logs its own "CRDS - ERROR" lines for types a context cannot select; a type we
    # cannot get is reported by our own message (or is optional), so keep crds quiet here.
    crds_logger = logging.getLogger("CRDS")
    level = crds_logger.level
    crds_logger.setLevel(logging.CRITICAL)
    try:
        for rt in reftypes:
            try:
                got = crds.getreferences(params, reftypes=[rt], context=context, observatory="roman")
            except CrdsError as exc:
                log.debug("CRDS has no %s: %s", rt, exc)
                continue
            except OSError as exc:
                raise ReferenceFileError(f"CRDS lookup of {rt!r} failed: {exc}") from exc
            val = got.get(rt)
            if val is None:
                continue
            out[rt] = NOT_APPLICABLE if str(val).upper().startswith("NOT FOUND N/A") or val == "N/A" else val
    finally:
        crds_logger.setLevel(level)
    return out


def missing_message(reftype: str, step: str, model_desc: str, context: str | None) -> str:
    where = f"CRDS context {context}" if context else "CRDS (no context available)"
    cache = os.environ.get("CRDS_PATH")
    hint = f"CRDS_PATH={cache}" if cache else "set CRDS_PATH to a local cache or CRDS_SERVER_URL to a server"
    return (
        f"no {reftype.upper()} reference file for step {step!r} ({model_desc}) in {where}. "
        f"Supply one with override_{reftype}=FILE (command line: "
        f"--steps.{step}.override_{reftype}=FILE, or --override_{reftype}=FILE for the step alone), "
        f"or make CRDS able to select it ({hint})."
    )


def _describe(params: dict) -> str:
    keys = ("roman.meta.instrument.detector", "roman.meta.instrument.optical_element",
            "roman.meta.exposure.type", "roman.meta.exposure.start_time")
    vals = [str(params[k]) for k in keys if k in params]
    return "/".join(vals) if vals else "model"


class ReferenceProvider:
    """Resolves reference files for steps; caches CRDS answers for identical parameters."""

    def __init__(self):
        self._cache: dict[tuple, dict] = {}
        self._models: dict[tuple[str, str], object] = {}

    def resolve(self, model, reftypes, *, overrides: dict | None = None,
                optional=(), step: str = "?") -> dict[str, Resolved]:
        """Resolve each of *reftypes* for *model*.

        Parameters
        ----------
        model : model or container
            Anything with ``get_crds_parameters() -> dict``.
        reftypes : sequence of str
        overrides : dict
            ``{reftype: path or 'N/A' or None}`` from the step's override parameters.
        optional : collection of str
            Types whose absence is not an error (``source='missing'`` is returned).
        step : str
            Step name used in messages.
        """
        overrides = overrides or {}
        result: dict[str, Resolved] = {}
        need = []
        for rt in reftypes:
            ov = overrides.get(rt)
            if ov is None:
                need.append(rt)
            elif str(ov).strip().upper() == NOT_APPLICABLE:
                result[rt] = Resolved(rt, None, "n/a", reason=f"override_{rt} is N/A")
            else:
                p = Path(os.path.expanduser(str(ov)))
                if not p.is_file():
                    raise ReferenceFileError(
                        f"step {step!r}: override_{rt}={str(ov)!r} does not exist or is not a file"
                    )
                result[rt] = Resolved(rt, str(p), "override")
        if not need:
            return result
        params = model.get_crds_parameters()
        desc = _describe(params)
        if not crds_configured():
            context = None
            found: dict[str, str] = {}
        else:
            context = crds_context()
            key = (context, tuple(sorted((k, str(v)) for k, v in params.items())), tuple(need))
            if key not in self._cache:
                self._cache[key] = crds_lookup(params, need, context)
            found = self._cache[key]
        for rt in need:
            path = found.get(rt)
            if path == NOT_APPLICABLE:
                result[rt] = Resolved(rt, None, "n/a", context, reason=f"CRDS says {rt} is N/A")
            elif path:
                result[rt] = Resolved(rt, path, "crds", context)
            elif rt in optional:
                result[rt] = Resolved(rt, None, "missing", context,
                                      reason=f"no {rt.upper()} reference file ({desc})")
            else:
                raise ReferenceFileError(missing_message(rt, step, desc, context))
        return result

    def open(self, reftype: str, path: str):
        """Open *path* as the model class of *reftype* (cached per path)."""
        key = (reftype, path)
        if key not in self._models:
            from romancore import datamodels

            cls = getattr(datamodels, REFTYPE_MODELS.get(reftype, ""), None)
            if cls is None:
                raise ReferenceFileError(f"no model class for reference type {reftype!r}")
            self._models[key] = cls(path)
        return self._models[key]

    def close(self):
        for m in self._models.values():
            close = getattr(m, "close", None)
            if close is not None:
                close()
        self._models.clear()
