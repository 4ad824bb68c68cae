"""A local CRDS cache (pmap → imap → rmaps → references) that the real ``crds`` library
reads offline (layout and server_config as in shared/CRDS_LOCAL.md).

Each rmap copies the header of the template that crds ships for the reference type
(``crds/roman/specs/wfi_<reftype>.rmap``), so the selection keys (parkeys) are crds' own,
and selects our files with ``Match`` on those keys and ``UseAfter`` on the start time.
Mapping checksums are fixed with crds' own code (``python -m crds.refactoring.checksum``)
run in a subprocess with the cache's environment.
"""

from __future__ import annotations

import ast
import os
import pprint
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ParameterError

CONTEXT = "roman_0001.pmap"
IMAP = "roman_wfi_0001.imap"

_PARKEY_TO_FIELD = {
    "ROMAN.META.INSTRUMENT.DETECTOR": "detector",
    "ROMAN.META.INSTRUMENT.OPTICAL_ELEMENT": "optical_element",
    "ROMAN.META.EXPOSURE.TYPE": "exposure_type",
}


@dataclass
class CacheEntry:
    """One reference file to select: its reftype, file name (inside the cache's
    references/roman/wfi/ folder), useafter ('YYYY-MM-DD HH:MM:SS') and selector values."""

    reftype: str
    filename: str
    useafter: str = "2020-01-01 00:00:00"
    selectors: dict = field(default_factory=dict)


def references_dir(cache: str | os.PathLike) -> Path:
    return Path(cache) / "references" / "roman" / "wfi"


def crds_environment(cache: str | os.PathLike) -> dict:
    """Environment variables that make crds use the cache offline."""
    return {"CRDS_PATH": str(Path(cache).resolve()), "CRDS_MODE": "local",
            "CRDS_SERVER_URL": "https://localhost:1", "CRDS_OBSERVATORY": "roman"}


def template_header(reftype: str) -> dict:
    """Header of crds' own rmap template for a Roman WFI reference type."""
    import crds

    path = Path(crds.__file__).parent / "roman" / "specs" / f"wfi_{reftype.lower()}.rmap"
    if not path.exists():
        raise ParameterError(f"reftype={reftype!r}: crds ships no template {path.name}")
    text = path.read_text()
    start = text.index("header = ") + len("header = ")
    end = text.index("\nselector")
    return ast.literal_eval(text[start:end].strip())


def _rmap_text(reftype: str, entries: list[CacheEntry], name: str) -> str:
    header = template_header(reftype)
    match_keys = header["parkey"][0]
    header.update({"name": name, "derived_from": "romancore.simulate", "sha1sum": "0",
                   "instrument": "WFI", "observatory": "ROMAN", "mapping": "REFERENCE"})
    for k in ("ld_tpn", "tpn"):
        header.pop(k, None)
    table: dict[tuple, dict[str, str]] = {}
    for e in entries:
        try:
            key = tuple(str(e.selectors[_PARKEY_TO_FIELD[p]]).upper() for p in match_keys)
        except KeyError as exc:
            raise ParameterError(
                f"{reftype} entry {e.filename!r} lacks selector {exc.args[0]!r} needed by parkeys {match_keys}"
            ) from None
        slot = table.setdefault(key, {})
        if e.useafter in slot:
            raise ParameterError(f"{reftype}: two files for {key} at useafter {e.useafter}")
        slot[e.useafter] = e.filename
    lines = ["header = {"]
    for k in sorted(header):
        lines.append(f"    {k!r} : {header[k]!r},")
    lines += ["}", "", "selector = Match({"]
    for key in sorted(table):
        lines.append(f"    {key!r} : UseAfter({{")
        for ua in sorted(table[key]):
            lines.append(f"        {ua!r} : {table[key][ua]!r},")
        lines.append("    }),")
    lines.append("})")
    return "\n".join(lines) + "\n"


def write_crds_cache(cache: str | os.PathLike, entries: list[CacheEntry], *,
                     fix_checksums: bool = True) -> dict:
    """Write the mappings and server config of a local CRDS cache for ``entries``.

    The reference files must already be in :func:`references_dir`. Returns the environment
    to use (:func:`crds_environment`). Raises ParameterError for a missing file or an entry
    that lacks a selector its reftype's parkeys need.
    """
    cache = Path(cache)
    refdir = references_dir(cache)
    mapdir = cache / "mappings" / "roman"
    cfgdir = cache / "config" / "roman"
    for d in (refdir, mapdir, cfgdir):
        d.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[CacheEntry]] = {}
    for e in entries:
        if not (refdir / e.filename).exists():
            raise ParameterError(f"reference file {refdir / e.filename} does not exist")
        by_type.setdefault(e.reftype.lower(), []).append(e)
    if not by_type:
        raise ParameterError("no reference files given for the CRDS cache")

    written = []
    imap_sel = {}
    for reftype, group in sorted(by_type.items()):
        name = f"roman_wfi_{reftype}_0001.rmap"
        (mapdir / name).write_text(_rmap_text(reftype, group, name))
        imap_sel[reftype] = name
        written.append(mapdir / name)
    imap_header = {"derived_from": "romancore.simulate", "instrument": "WFI",
                   "mapping": "INSTRUMENT", "name": IMAP, "observatory": "ROMAN",
                   "parkey": ("ROMAN.META.EXPOSURE.TYPE",), "sha1sum": "0"}
    (mapdir / IMAP).write_text(
        f"header = {pprint.pformat(imap_header)}\n\nselector = {pprint.pformat(imap_sel)}\n")
    pmap_header = {"derived_from": "romancore.simulate", "mapping": "PIPELINE", "name": CONTEXT,
                   "observatory": "ROMAN", "parkey": ("ROMAN.META.INSTRUMENT.NAME",), "sha1sum": "0"}
    (mapdir / CONTEXT).write_text(
        f"header = {pprint.pformat(pmap_header)}\n\nselector = {pprint.pformat({'WFI': IMAP})}\n")
    written += [mapdir / IMAP, mapdir / CONTEXT]

    import crds

    server_config = {
        "observatory": "roman", "operational_context": CONTEXT, "latest_context": CONTEXT,
        "edit_context": CONTEXT, "bad_files": "", "bad_files_list": [], "force_remote_mode": False,
        "crds_version": {"str": crds.__version__}, "download_metadata_enabled": True,
        "reference_url": {"checked": {"roman": "file:///unused"}},
        "mapping_url": {"checked": {"roman": "file:///unused"}},
        "checksum": "", "effective_mode": "local", "last_synced": "2026-01-01 00:00:00",
    }
    (cfgdir / "server_config").write_text(pprint.pformat(server_config) + "\n")

    env = crds_environment(cache)
    if fix_checksums:
        run_env = {**os.environ, **env}
        proc = subprocess.run([sys.executable, "-m", "crds.refactoring.checksum", *map(str, written)],
                              env=run_env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"crds checksum update failed:\n{proc.stdout}\n{proc.stderr}")
    return env
