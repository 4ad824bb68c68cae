"""Find step and pipeline classes by alias, class name or dotted class path."""

from __future__ import annotations

from romancore.errors import ParameterError


def _classes():
    from .pipeline import ALL_PIPELINES
    from .steps import ALL_STEPS

    return (*ALL_PIPELINES, *ALL_STEPS)


def aliases() -> dict[str, type]:
    """``{name: class}`` for every alias, older alias and class name."""
    out: dict[str, type] = {}
    for cls in _classes():
        out[cls.class_alias] = cls
        out[cls.__name__] = cls
        for a in cls.aliases:
            out[a] = cls
    return out


def resolve_class(name: str):
    """Step or pipeline class for an alias (``roman_elp``, ``flat_field``, ``flatfield``),
    a class name (``FlatFieldStep``) or a dotted path (``romancore.pipeline.ExposurePipeline``,
    ``romancal.pipeline.ExposurePipeline``: foreign paths resolve by their class name).
    """
    from .params import resolve_dotted
    from .step import Step

    table = aliases()
    if name in table:
        return table[name]
    if "." in name:
        last = name.rsplit(".", 1)[1]
        if name.startswith("romancore."):
            try:
                obj = resolve_dotted(name)
            except ParameterError:
                obj = None
            if isinstance(obj, type) and issubclass(obj, Step):
                return obj
        if last in table:
            return table[last]
        try:
            obj = resolve_dotted(name)
        except ParameterError:
            obj = None
        if isinstance(obj, type) and issubclass(obj, Step):
            return obj
    lowered = {k.lower(): v for k, v in table.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    known = sorted(c.class_alias for c in _classes())
    raise ParameterError(f"unknown step or pipeline {name!r}; known aliases: {', '.join(known)}")
