"""CRDS selection from a small local cache, run in a subprocess (crds reads env at import)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SERVER_CONFIG = {
    "observatory": "roman", "operational_context": "roman_0001.pmap",
    "latest_context": "roman_0001.pmap", "edit_context": "roman_0001.pmap",
    "bad_files": "", "bad_files_list": [], "force_remote_mode": False,
    "crds_version": {"str": "14.0.3"}, "download_metadata_enabled": True,
    "reference_url": {"checked": {"roman": "file:///unused"}},
    "mapping_url": {"checked": {"roman": "file:///unused"}},
    "checksum": "", "effective_mode": "local", "last_synced": "2026-01-01 00:00:00",
}


def rmap(reftype, detectors):
    rows = "\n".join(
        f"    ('{d}', 'F158') : UseAfter({{ '2020-01-01 00:00:00' : 'roman_wfi_{reftype}_{n:04d}.asdf' }}),"
        for n, d in enumerate(detectors, 1))
    return textwrap.dedent(f"""\
        header = {{
            'classes' : ('Match', 'UseAfter'),
            'filekind' : '{reftype.upper()}', 'instrument' : 'WFI', 'mapping' : 'REFERENCE',
            'name' : 'roman_wfi_{reftype}_0001.rmap', 'observatory' : 'ROMAN',
            'parkey' : (('ROMAN.META.INSTRUMENT.DETECTOR', 'ROMAN.META.INSTRUMENT.OPTICAL_ELEMENT'),
                        ('ROMAN.META.EXPOSURE.START_TIME',)),
            'sha1sum' : '0', 'suffix' : '{reftype}', 'derived_from' : 'test', 'file_ext' : '.asdf',
            'filetype' : '{reftype.upper()}', 'text_descr' : '{reftype}',
        }}
        selector = Match({{
        """) + rows + "\n})\n"


def write_cache(root: Path, model_file: Path):
    maps, refs, conf = root / "mappings/roman", root / "references/roman/wfi", root / "config/roman"
    for d in (maps, refs, conf):
        d.mkdir(parents=True)
    (maps / "roman_0001.pmap").write_text(
        "header = {\n 'mapping' : 'PIPELINE', 'name' : 'roman_0001.pmap', 'observatory' : 'ROMAN',\n"
        " 'parkey' : ('ROMAN.META.INSTRUMENT.NAME',), 'sha1sum' : '0', 'derived_from' : 'test',\n}\n"
        "selector = {\n 'WFI' : 'roman_wfi_0001.imap',\n}\n")
    (maps / "roman_wfi_0001.imap").write_text(
        "header = {\n 'instrument' : 'WFI', 'mapping' : 'INSTRUMENT', 'name' : 'roman_wfi_0001.imap',\n"
        " 'observatory' : 'ROMAN', 'parkey' : ('ROMAN.META.EXPOSURE.TYPE',), 'sha1sum' : '0',\n"
        " 'derived_from' : 'test',\n}\nselector = {\n 'flat' : 'roman_wfi_flat_0001.rmap',\n}\n")
    (maps / "roman_wfi_flat_0001.rmap").write_text(rmap("flat", ["WFI01", "WFI02"]))
    for n in (1, 2):
        (refs / f"roman_wfi_flat_{n:04d}.asdf").write_bytes(model_file.read_bytes())
    (conf / "server_config").write_text(repr(SERVER_CONFIG))
    # crds' own checksum code fixes the sha1sum of every mapping
    subprocess.run([sys.executable, "-m", "crds.refactoring.checksum", *map(str, sorted(maps.iterdir()))],
                   check=True, env=crds_env(root), capture_output=True)


def crds_env(root):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(root), CRDS_MODE="local", CRDS_SERVER_URL="https://localhost:1")
    return env


SCRIPT = """
import sys, numpy as np
import romancore.datamodels as dm
from romancore.pipeline import FlatFieldStep
from romancore.pipeline.refs import ReferenceProvider
from romancore.errors import ReferenceFileError
img = dm.ImageModel.create_minimal(shape=(4, 4), meta={"instrument": {"detector": sys.argv[1],
      "optical_element": "F158"}})
prov = ReferenceProvider()
try:
    res = prov.resolve(img, ["flat"], step="flat_field")["flat"]
    print("OK", res.path, res.source, res.context)
except ReferenceFileError as exc:
    print("ERR", exc)
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import romancore.datamodels as dm

    d = tmp_path_factory.mktemp("crds")
    flat = dm.FlatRefModel.create_minimal(shape=(4, 4))
    model_file = flat.save(d / "flat_model.asdf")
    write_cache(d / "cache", model_file)
    return d / "cache"


def run(cache, detector, **extra):
    env = crds_env(cache)
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT, detector], env=env, capture_output=True,
                         text=True, cwd=str(Path(__file__).resolve().parents[1]), timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_selects_by_detector(cache):
    line = run(cache, "WFI02")
    assert line.startswith("OK") and line.endswith("crds roman_0001.pmap")
    assert "roman_wfi_flat_0002.asdf" in line and str(cache) in line


def test_missing_reference_is_clear(cache):
    line = run(cache, "WFI07")
    assert line.startswith("ERR") and "FLAT" in line and "override_flat" in line
    assert "roman_0001.pmap" in line


def test_crds_context_env(cache):
    line = run(cache, "WFI07", CRDS_CONTEXT="roman_0001.pmap")
    assert "roman_0001.pmap" in line
