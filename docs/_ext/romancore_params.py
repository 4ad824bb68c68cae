"""Sphinx directives that render romancore tables from the code, so the docs cannot drift.

``.. romancore-params:: DQInitStep``
    The parameter table of a step or pipeline class (looked up in
    :mod:`romancore.pipeline`), produced by :func:`romancore.pipeline.params.docs_table`
    with ``fmt="rst"``.  The heading that ``docs_table`` puts above its table is dropped
    (the page has its own section headings); option ``:with-title:`` keeps it.

``.. romancore-dqflags:: pixel``
    A table of the flag names, bit numbers and values of :data:`romancore.dq.pixel` or
    :data:`romancore.dq.group`, in the order of the enumeration.

``.. romancore-models::``
    A table of the model classes of :mod:`romancore.datamodels` with their schema
    file, ASDF tag and (for reference files) CRDS reference type.

``.. romancore-step-summary:: ExposurePipeline``
    The steps of a pipeline with the model method or container function each calls,
    its reference types, and which model classes (or whether the function) provide the
    call in the code being documented.

``.. romancore-performance-report::``
    The benchmark report ``docs/performance.md`` as a literal block when the file
    exists, otherwise a note saying how to generate it.  The build never depends on
    the report being present.

Cell texts from the code are plain text, not reStructuredText: characters with a
meaning in reST are escaped before parsing.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

_CELL = re.compile(r"^(\s*(?:\* )?- )(.*)$")
_SPECIAL = re.compile(r"([\\*`|_\[\]])")
_LIST_START = re.compile(r"^(?:[-+*•]\s|\d+[.)]\s|\(\w+\)\s|#\.\s|[A-Za-z][.)]\s)")


def escape_cell(text: str) -> str:
    """Escape *text* so reStructuredText shows it verbatim inside a list-table cell."""
    out = _SPECIAL.sub(r"\\\1", text)
    if _LIST_START.match(out):
        out = "\\" + out
    return out


def _step_class(name: str):
    import romancore.pipeline as pipeline

    cls = getattr(pipeline, name, None)
    if cls is None:
        from romancore.pipeline.registry import resolve_class

        cls = resolve_class(name)
    return cls


def params_lines(name: str, *, with_title: bool = False) -> list[str]:
    """reST lines of the parameter table of step/pipeline class *name* (escaped cells)."""
    from romancore.pipeline.params import docs_table

    text = docs_table(_step_class(name), fmt="rst")
    lines = text.splitlines()
    if (not with_title and len(lines) >= 2 and lines[1] and set(lines[1]) == {"-"}
            and len(lines[1]) >= len(lines[0].rstrip())):
        lines = lines[2:]
    out = []
    in_table = False
    for line in lines:
        if line.startswith(".. list-table::"):
            in_table = True
            out.append(line)
            continue
        m = _CELL.match(line) if in_table else None
        out.append(m.group(1) + escape_cell(m.group(2)) if m else line)
    return out


class RomancoreParams(SphinxDirective):
    """``.. romancore-params:: ClassName`` — the generated parameter table."""

    required_arguments = 1
    optional_arguments = 0
    has_content = False
    option_spec = {"with-title": directives.flag}

    def run(self):
        name = self.arguments[0].strip()
        try:
            lines = params_lines(name, with_title="with-title" in self.options)
        except Exception as exc:  # report as a build warning/error at this line
            raise self.error(f"romancore-params: cannot render {name!r}: {exc}") from exc
        source = f"<romancore-params {name}>"
        content = StringList(lines, source=source)
        container = nodes.container(classes=["romancore-params"])
        container.document = self.state.document
        if "with-title" in self.options:
            from sphinx.util.nodes import nested_parse_with_titles

            nested_parse_with_titles(self.state, content, container)
        else:
            self.state.nested_parse(content, self.content_offset, container)
        return container.children


def dqflag_lines(which: str) -> list[str]:
    """reST list-table lines of the flags of ``romancore.dq.<which>`` (pixel or group)."""
    from romancore import dq

    if which not in ("pixel", "group"):
        raise ValueError(f"romancore-dqflags: argument {which!r} must be 'pixel' or 'group'")
    flags = getattr(dq, which)
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 30 10 20", "",
             "   * - Flag", "     - Bit", "     - Value"]
    for flag in flags:
        value = int(flag.value)
        bit = "" if value == 0 else str(value.bit_length() - 1)
        lines += [f"   * - ``{flag.name}``", f"     - {bit or '—'}", f"     - {value}"]
    return lines


class RomancoreDQFlags(SphinxDirective):
    """``.. romancore-dqflags:: pixel|group`` — table of DQ flag names and values."""

    required_arguments = 1
    has_content = False

    def run(self):
        which = self.arguments[0].strip()
        try:
            lines = dqflag_lines(which)
        except ValueError as exc:
            raise self.error(str(exc)) from exc
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"<romancore-dqflags {which}>"),
                                self.content_offset, container)
        return container.children


class RomancorePerformanceReport(SphinxDirective):
    """``.. romancore-models::``
    A table of the model classes of :mod:`romancore.datamodels` with their schema
    file, ASDF tag and (for reference files) CRDS reference type.

``.. romancore-performance-report::`` — ``performance.md`` if it has been generated."""

    has_content = False
    option_spec = {"file": directives.unchanged}

    def run(self):
        name = self.options.get("file", "performance.md")
        path = Path(self.env.srcdir) / name
        if path.is_file():
            self.env.note_dependency(str(path))
            text = path.read_text(encoding="utf-8")
            block = nodes.literal_block(text, text)
            block["language"] = "none"
            return [block]
        note = (f"The report ``docs/{name}`` has not been generated in this checkout. "
                "Run ``python benchmarks/run.py --size full --report docs/performance.md`` "
                "(or ``--size small`` for a quick run) and rebuild the documentation.")
        container = nodes.container()
        self.state.nested_parse(StringList([note], source="<romancore-performance-report>"),
                                self.content_offset, container)
        return container.children


def model_lines() -> list[str]:
    """reST list-table lines: every model class with its schema file, ASDF tag and reftype."""
    from romancore import datamodels

    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - Class", "     - Schema file", "     - ASDF tag", "     - CRDS reftype"]
    for name in datamodels.__all__:
        cls = getattr(datamodels, name)
        schema = getattr(cls, "schema_name", "")
        if not isinstance(cls, type) or not schema:
            continue
        tag = datamodels.class_for_schema(schema)().tag
        reftype = getattr(cls, "reftype", "") or ""
        lines += [f"   * - :class:`~romancore.datamodels.models.{name}`",
                  f"     - ``schemas/{schema}.yaml``", f"     - ``{tag}``",
                  f"     - ``{reftype}``" if reftype else "     - "]
    return lines


class RomancoreModels(SphinxDirective):
    """``.. romancore-models::`` — table of the model classes, schemas and tags."""

    has_content = False

    def run(self):
        container = nodes.container()
        self.state.nested_parse(StringList(model_lines(), source="<romancore-models>"),
                                self.content_offset, container)
        return container.children


def _target_text(cls) -> tuple[str, str]:
    """(what the step calls, where it is available) for a step class."""
    from romancore import datamodels
    from romancore.pipeline.params import resolve_dotted

    if cls.container:
        target = f"``{cls.function}(container, ...)``"
        try:
            resolve_dotted(cls.function)
            where = "yes"
        except Exception:
            where = "not in this version"
        return target, where
    owners = [name for name in datamodels.__all__
              if isinstance(getattr(datamodels, name), type)
              and callable(getattr(getattr(datamodels, name), cls.method, None))]
    target = f"``model.{cls.method}(...)``"
    return target, (", ".join(f"``{o}``" for o in owners) if owners else "not in this version")


def summary_lines(pipeline: str) -> list[str]:
    """reST list-table of the steps of a pipeline class: alias, class, call, references, status."""
    import romancore.pipeline as rp

    pcls = getattr(rp, pipeline)
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - Step", "     - Class", "     - Calls", "     - Reference types",
             "     - Available on"]
    for sname, scls in pcls.step_defs:
        refs = ", ".join(f"``{r.reftype}``" + (" (optional)" if r.optional else "")
                         for r in scls.reference_types) or "none"
        target, where = _target_text(scls)
        lines += [f"   * - ``{sname}``", f"     - :class:`~romancore.pipeline.steps.{scls.__name__}`",
                  f"     - {target}", f"     - {refs}", f"     - {where}"]
    return lines


class RomancoreStepSummary(SphinxDirective):
    """``.. romancore-step-summary:: ExposurePipeline`` — the step table of a pipeline."""

    required_arguments = 1
    has_content = False

    def run(self):
        name = self.arguments[0].strip()
        try:
            lines = summary_lines(name)
        except Exception as exc:
            raise self.error(f"romancore-step-summary: cannot render {name!r}: {exc}") from exc
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"<romancore-step-summary {name}>"),
                                self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive("romancore-params", RomancoreParams)
    app.add_directive("romancore-dqflags", RomancoreDQFlags)
    app.add_directive("romancore-performance-report", RomancorePerformanceReport)
    app.add_directive("romancore-models", RomancoreModels)
    app.add_directive("romancore-step-summary", RomancoreStepSummary)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
