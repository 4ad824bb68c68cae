"""The end-to-end demonstration: simulate a small survey, calibrate it, compare with truth.

:func:`run_demo` writes a simulated data set with its reference files and a local CRDS cache,
runs the Exposure Level Pipeline on every exposure (reference files chosen by the real
``crds`` library from that cache), runs the Mosaic Level Pipeline on the association, draws
PNG previews of one ``_cal`` and of the ``_coadd``, and returns a summary: steps run with
their wall times, and how the catalogs compare with the simulation truth.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .errors import RomancoreError

log = logging.getLogger(__name__)

#: AB zero point of fluxes in nJy
AB_ZEROPOINT_NJY = 31.4
_DONE = re.compile(r"Step (\S+) done in ([0-9.]+) s")


class _StepTimes(logging.Handler):
    """Collects 'Step X done in T s' records of the pipelines."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.times: dict[str, list[float]] = {}

    def emit(self, record):
        m = _DONE.match(record.getMessage())
        if m:
            self.times.setdefault(m.group(1), []).append(float(m.group(2)))


def _set_crds_environment(env: dict):
    if "crds" in sys.modules and os.environ.get("CRDS_PATH") != env["CRDS_PATH"]:
        raise RomancoreError(
            "the crds library was already imported in this process with another CRDS_PATH; "
            "run the demo in a fresh process (romancore-demo)"
        )
    os.environ.update(env)


def match_catalog(cat_ra, cat_dec, truth_ra, truth_dec, radius_arcsec: float = 0.3):
    """Nearest truth source of every catalog source within ``radius_arcsec``.

    Returns (catalog indices, truth indices, separations in arcsec) of the matches.
    """
    from astropy.coordinates import SkyCoord

    if len(cat_ra) == 0 or len(truth_ra) == 0:
        return np.array([], int), np.array([], int), np.array([])
    cat = SkyCoord(np.asarray(cat_ra), np.asarray(cat_dec), unit="deg")
    truth = SkyCoord(np.asarray(truth_ra), np.asarray(truth_dec), unit="deg")
    idx, sep, _ = cat.match_to_catalog_sky(truth)
    sep = sep.arcsec
    ok = np.isfinite(sep) & (sep < radius_arcsec)
    return np.nonzero(ok)[0], idx[ok], sep[ok]


def compare_with_truth(catalog, truth, *, flux_column: str = "kron_flux", max_abmag: float | None = None) -> dict:
    """Detections, median flux ratio and astrometric residual of a catalog against truth stars."""
    stars = truth[truth["kind"] == "star"]
    if max_abmag is not None:
        stars = stars[stars["abmag"] <= max_abmag]
    ci, ti, sep = match_catalog(catalog["ra"], catalog["dec"], stars["ra"], stars["dec"])
    truth_njy = 10 ** (-0.4 * (np.asarray(stars["abmag"], float) - AB_ZEROPOINT_NJY))
    flux = np.asarray(catalog[flux_column], float)[ci] if len(ci) else np.array([])
    ratio = flux / truth_njy[ti] if len(ci) else np.array([])
    ratio = ratio[np.isfinite(ratio)]
    return {
        "sources_detected": int(len(catalog)),
        "truth_stars": int(len(stars)),
        "stars_matched": int(len(np.unique(ti))),
        "median_flux_ratio": float(np.median(ratio)) if ratio.size else None,
        "median_astrometric_residual_mas": float(np.median(sep) * 1000) if sep.size else None,
    }


def run_demo(out, *, size: str = "full", n_exposures: int = 4, seed: int = 1) -> dict:
    """Simulate, calibrate and summarise (see the module docstring); returns the summary."""
    from astropy.table import Table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    t0 = time.perf_counter()
    # The simulator uses crds (for rmap templates) before the cache exists, and crds reads its
    # environment when first imported: simulate in a child process, calibrate in this one.
    cmd = [sys.executable, "-m", "romancore.cli.sim", "--out", str(data_dir), "--size", size,
           "--exposures", str(n_exposures), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RomancoreError(f"simulation failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    for line in proc.stdout.splitlines():
        log.info("simulate: %s", line)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    t_sim = time.perf_counter() - t0
    _set_crds_environment(manifest["crds_env"])

    from . import open as rc_open
    from .pipeline import ExposurePipeline, MosaicPipeline
    from .preview import make_preview

    handler = _StepTimes()
    logger = logging.getLogger("romancore")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the step timings are INFO records
    try:
        uncal = [str(data_dir / name) for name in manifest["uncal"]]
        refcat = data_dir / "astrometric_refcat.ecsv"
        steps = {"tweakreg": {"abs_refcat": str(refcat)}}
        if size == "small":
            # 128x128 detectors hold few stars: detect fainter sources, align on fewer matches
            steps["source_catalog"] = {"snr_threshold": 2.0, "npixels": 5}
            steps["tweakreg"].update(minobj=5, abs_minobj=5, searchrad=0.5, abs_searchrad=0.5)
        t1 = time.perf_counter()
        ExposurePipeline.call(uncal, output_dir=str(out), save_results=True, steps=steps)
        t_elp = time.perf_counter() - t1
        # the association names the _cal files by file name: place it beside them
        asn = out / manifest["association"]
        asn.write_text((data_dir / manifest["association"]).read_text())
        t2 = time.perf_counter()
        mos_steps = {"source_catalog": steps["source_catalog"]} if "source_catalog" in steps else {}
        MosaicPipeline.call(str(asn), output_dir=str(out), save_results=True, steps=mos_steps)
        t_mos = time.perf_counter() - t2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    cal_files = sorted(out.glob("*_cal.asdf"))
    coadd_files = sorted(out.glob("*_coadd.asdf"))
    if not cal_files or not coadd_files:
        raise RomancoreError(f"the demo produced no _cal or _coadd files in {out}")
    previews = [make_preview(rc_open(cal_files[0]), cal_files[0].with_suffix(".png")),
                make_preview(rc_open(coadd_files[0]), coadd_files[0].with_suffix(".png"))]
    truth = Table.read(data_dir / "truth" / "sources.ecsv")
    l2_cat = rc_open(str(cal_files[0]).replace("_cal.asdf", "_cat.asdf")).source_catalog
    l3_cat_path = Path(str(coadd_files[0]).replace("_coadd.asdf", "_cat.asdf"))
    summary = {
        "output_dir": str(out),
        "size": size,
        "exposures": n_exposures,
        "seconds": {"simulate": round(t_sim, 1), "elp": round(t_elp, 1), "mosaic": round(t_mos, 1)},
        "step_seconds": {k: round(sum(v), 2) for k, v in handler.times.items()},
        "products": sorted(p.name for p in out.glob("*.asdf")),
        "previews": [str(p) for p in previews],
        "l2_vs_truth": compare_with_truth(l2_cat, truth),
    }
    if l3_cat_path.exists():
        summary["mosaic_vs_truth"] = compare_with_truth(rc_open(l3_cat_path).source_catalog, truth)
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"romancore demo ({summary['size']}, {summary['exposures']} exposures) -> {summary['output_dir']}",
             "time: " + ", ".join(f"{k} {v} s" for k, v in summary["seconds"].items()),
             "steps (total wall s): " + ", ".join(f"{k} {v}" for k, v in summary["step_seconds"].items())]
    for key, label in (("l2_vs_truth", "first exposure"), ("mosaic_vs_truth", "mosaic")):
        s = summary.get(key)
        if not s:
            continue
        ratio = "n/a" if s["median_flux_ratio"] is None else f"{s['median_flux_ratio']:.3f}"
        resid = "n/a" if s["median_astrometric_residual_mas"] is None else f"{s['median_astrometric_residual_mas']:.1f} mas"
        lines.append(f"{label}: {s['sources_detected']} sources detected, {s['stars_matched']} of "
                     f"{s['truth_stars']} truth stars matched, median flux ratio {ratio}, "
                     f"median astrometric residual {resid}")
    lines.append("previews: " + ", ".join(summary["previews"]))
    lines.append(f"{len(summary['products'])} products written")
    return "\n".join(lines)
