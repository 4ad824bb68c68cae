"""The user documentation builds without warnings and its generated tables match the code.

The build runs ``python -m sphinx -W --keep-going -b html docs <tmp>`` in a subprocess
(warnings are errors), then checks that the key pages exist and that the tables the local
Sphinx extension generates contain what :mod:`romancore.dq` and the step definitions say.
"""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ("index", "installation", "quickstart", "running", "steps", "datamodels", "references",
         "associations", "dqflags", "performance", "api")


def _load_ext():
    spec = importlib.util.spec_from_file_location("romancore_params", DOCS / "_ext" / "romancore_params.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs_html")
    doctrees = tmp_path_factory.mktemp("docs_doctrees")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(doctrees), str(DOCS), str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


def _text(path: Path) -> str:
    """Visible text of an HTML page (tags removed, entities decoded, whitespace collapsed)."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def test_key_pages_exist(built):
    for page in PAGES:
        assert (built / f"{page}.html").is_file(), page
    index = (built / "index.html").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f'href="{page}.html' in index, f"index does not link {page}"


def test_every_step_has_a_generated_parameter_table(built):
    from romancore.pipeline.pipeline import ALL_PIPELINES
    from romancore.pipeline.steps import ALL_STEPS

    steps_rst = (DOCS / "steps.rst").read_text(encoding="utf-8")
    text = _text(built / "steps.html")
    for cls in (*ALL_STEPS, *ALL_PIPELINES):
        assert f".. romancore-params:: {cls.__name__}" in steps_rst, cls.__name__
        for p in cls.param_spec():
            assert p.name in text, f"{cls.__name__}.{p.name} missing from steps.html"
    # one concrete row, checked cell by cell against the definition
    from romancore.pipeline.steps import OutlierDetectionStep

    snr = next(p for p in OutlierDetectionStep.param_spec() if p.name == "snr")
    row = f"snr {snr.type} {snr.default_text()} {snr.rule()} {snr.doc}"
    assert row in text


def test_params_directive_output_is_docs_table(built):
    from romancore.pipeline.params import docs_table
    from romancore.pipeline.steps import SkyMatchStep

    ext = _load_ext()
    lines = ext.params_lines("SkyMatchStep")
    table = docs_table(SkyMatchStep, fmt="rst").splitlines()
    # the directive drops the "alias (Class)" heading and its underline, nothing else
    assert table[1] == "-" * len(table[0]) and ".. list-table::" in lines
    assert len(lines) == len(table) - 2
    unescaped = [re.sub(r"\\(.)", r"\1", s) for s in lines]
    assert unescaped == table[2:]


def test_escape_cell():
    ext = _load_ext()
    assert ext.escape_cell("pre_hooks") == "pre\\_hooks"
    assert ext.escape_cell("a*b|c`d") == "a\\*b\\|c\\`d"
    assert ext.escape_cell("- not a list") == "\\- not a list"
    assert ext.escape_cell("1. first") == "\\1. first"
    assert ext.escape_cell("plain text") == "plain text"


def test_dq_tables_match_code(built):
    from romancore import dq

    text = _text(built / "dqflags.html")
    for flags in (dq.pixel, dq.group):
        for f in flags:
            v = int(f.value)
            bit = str(v.bit_length() - 1) if v else "—"
            assert f"{f.name} {bit} {v}" in text, f"{flags.__name__}.{f.name}"
    # spot checks against the Roman bit values
    assert "SATURATED 1 2" in text and "REFERENCE_PIXEL 31 2147483648" in text
    assert "WFI18_TRANSIENT 7 128" in text


def test_model_table_and_api(built):
    from romancore import datamodels

    text = _text(built / "datamodels.html")
    for name in ("ScienceRawModel", "RampModel", "ImageModel", "MosaicModel", "FlatRefModel"):
        cls = getattr(datamodels, name)
        assert name in text and cls().tag in text
    api = (built / "api.html").read_text(encoding="utf-8")
    for name in ("romancore.dq.interpret_bit_flags", "romancore.pipeline.step.Step",
                 "romancore.datamodels.base.DataModel", "romancore.errors.ParameterError",
                 "romancore.algorithms.ramp_fit.fit_ramps_cas22", "romancore.flux.flux"):
        assert f'id="{name}"' in api, name


def test_performance_page_builds_with_or_without_report(built):
    text = _text(built / "performance.html")
    assert "benchmarks/run.py" in text
    report = DOCS / "performance.md"
    if report.is_file():
        first = report.read_text(encoding="utf-8").strip().splitlines()[0]
        assert first in text
    else:
        assert "has not been generated" in text
