"""End-to-end Mosaic Level Pipeline on a simulated 4-exposure dither (known truth).

Scene: point sources of known flux (pixel-integrated Gaussians, sigma 1.5 input pixels)
on a flat sky whose level differs between exposures, with Gaussian noise of known
variance (read noise + Poisson) and injected single-pixel cosmic rays.  Every exposure
has its own TAN gwcs (0.11"/pixel, sub-pixel dithers and a small roll).
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from scipy.special import erf

from romancore.container import ModelContainer
from romancore.datamodels import ImageModel, MosaicModel
from romancore.dq import pixel
from romancore.wcs import make_tan_wcs, output_rotation_matrix

SHAPE = (128, 128)
SCALE = 0.11                                  # arcsec / pixel
PIXEL_AREA = (SCALE / 206264.80624709636) ** 2  # sr
PHOTMJSR = 0.25                               # MJy/sr per DN/s
SIGMA_PSF = 1.5                               # pixels
GAIN_T = 50.0                                 # electrons per DN/s: var_poisson = signal / GAIN_T
VAR_RNOISE = 0.05 ** 2                        # (DN/s)^2
CRVAL = (150.0, 2.0)
DITHERS = [(0.0, 0.0, 0.0), (3.4, 2.7, 0.2), (-2.6, 4.3, -0.15), (5.2, -3.6, 0.1)]  # dx, dy (pix), roll (deg)
SKIES = [1.0, 1.35, 0.8, 1.6]                 # DN/s


def _star_sky_positions(rng, n):
    """(ra, dec) of n stars on a grid inside the central region (kept > 26 pixels apart)."""
    probe = make_tan_wcs(CRVAL, (63.5, 63.5), SCALE, shape=SHAPE)
    xs, ys = np.meshgrid(np.linspace(28, 100, 4), np.linspace(28, 100, 3))
    xs = xs.ravel()[:n] + rng.uniform(-1, 1, n)
    ys = ys.ravel()[:n] + rng.uniform(-1, 1, n)
    ra, dec = probe(xs, ys)
    return np.asarray(ra), np.asarray(dec)


def _render(shape, x0, y0, flux, sigma=SIGMA_PSF):
    """Pixel-integrated circular Gaussians (exact total flux for sources well inside)."""
    ny, nx = shape
    img = np.zeros(shape)
    xe = np.arange(nx + 1) - 0.5
    ye = np.arange(ny + 1) - 0.5
    s = math.sqrt(2.0) * sigma
    for x, y, f in zip(x0, y0, flux, strict=True):
        fx = np.diff(0.5 * erf((xe - x) / s))
        fy = np.diff(0.5 * erf((ye - y) / s))
        img += f * np.outer(fy, fx)
    return img


def exposure_wcs(k, shape=SHAPE, crval=CRVAL):
    dx, dy, roll = DITHERS[k % len(DITHERS)]
    pc = output_rotation_matrix(roll)
    return make_tan_wcs(crval, (63.5 + dx, 63.5 + dy), SCALE, pc=pc, shape=shape)


def make_image(k, rng, *, stars=None, sky=1.0, n_cr=0, shape=SHAPE, wcs=None, exptype="WFI_IMAGE",
               exposure=None, crval=CRVAL):
    """One L2 image (DN/s) with truth: returns (model, cr_mask)."""
    wcs = exposure_wcs(k, shape, crval) if wcs is None else wcs
    signal = np.full(shape, float(sky))
    if stars is not None:
        ra, dec, flux = stars
        x, y = wcs.invert(ra, dec, with_bounding_box=False)
        signal += _render(shape, np.asarray(x), np.asarray(y), flux)
    var_poisson = signal / GAIN_T
    var = VAR_RNOISE + var_poisson
    data = signal + rng.normal(0.0, 1.0, shape) * np.sqrt(var)
    cr = np.zeros(shape, bool)
    if n_cr:
        near_star = np.zeros(shape, bool)
        if stars is not None:
            yy, xx = np.mgrid[: shape[0], : shape[1]]
            for xs, ys in zip(np.atleast_1d(x), np.atleast_1d(y), strict=True):
                near_star |= (xx - xs) ** 2 + (yy - ys) ** 2 < 8.0 ** 2
        allowed = ~near_star
        allowed[:14, :] = allowed[-14:, :] = allowed[:, :14] = allowed[:, -14:] = False
        idx = rng.choice(np.flatnonzero(allowed), n_cr, replace=False)
        cr.flat[idx] = True
        # amplitudes 10-100 sigma of the local noise
        data.flat[idx] += rng.uniform(10.0, 100.0, n_cr) * np.sqrt(var.flat[idx])
    exp = (k + 1) if exposure is None else exposure
    start = Time("2027-03-01T00:00:00") + k * 300.0 * u.s
    meta = {
        "filename": f"r0000101001001001001_{exp:04d}_wfi01_f158_cal.asdf",
        "exposure": {"type": exptype, "start_time": start, "end_time": start + 140.0 * u.s,
                     "exposure_time": 140.0, "effective_exposure_time": 139.0},
        "observation": {"observation_id": "0000101001001", "program": 1, "execution_plan": 1,
                        "pass": 1, "segment": 1, "observation": 1, "visit": 1,
                        "visit_file_group": 1, "visit_file_sequence": 1,
                        "visit_file_activity": "01", "exposure": exp},
        "instrument": {"optical_element": "F158", "detector": "WFI01"},
        "photometry": {"conversion_megajanskys": PHOTMJSR, "pixel_area": PIXEL_AREA},
        "cal_step": {"flat_field": "COMPLETE", "photom": "COMPLETE"},
    }
    model = ImageModel.create_minimal(shape=shape, meta=meta)
    model.meta.wcs = wcs
    model.data = data.astype(np.float32)
    model.dq = np.zeros(shape, np.uint32)
    model.err = np.sqrt(var).astype(np.float32)
    model.var_rnoise = np.full(shape, VAR_RNOISE, np.float32)
    model.var_poisson = var_poisson.astype(np.float32)
    return model, cr


@pytest.fixture(scope="module")
def dither():
    rng = np.random.default_rng(20240917)
    nstar = 10
    ra, dec = _star_sky_positions(rng, nstar)
    flux = rng.uniform(300.0, 3000.0, nstar)  # DN/s
    images, crs = [], []
    for k in range(4):
        model, cr = make_image(k, rng, stars=(ra, dec, flux), sky=SKIES[k], n_cr=40)
        images.append(model)
        crs.append(cr)
    return {"images": images, "crs": crs, "ra": ra, "dec": dec, "flux": flux,
            "raw": [m.copy() for m in images]}


@pytest.fixture(scope="module")
def mosaic_run(dither, tmp_path_factory):
    from romancore.pipeline import MosaicPipeline

    out = tmp_path_factory.mktemp("mos")
    container = ModelContainer([m.copy() for m in dither["images"]])
    pipe = MosaicPipeline(resample_on_skycell=False, save_results=True, output_dir=str(out))
    mosaic = pipe.run(container)
    return {"mosaic": mosaic, "container": container, "outdir": out,
            "catalog": pipe.steps["source_catalog"].products.get("cat")}


def _true_njy(flux_dn):
    return np.asarray(flux_dn) * PHOTMJSR * PIXEL_AREA * 1e15


def test_pipeline_product_and_cal_steps(mosaic_run):
    mosaic = mosaic_run["mosaic"]
    assert isinstance(mosaic, MosaicModel)
    mosaic.validate()
    for key in ("flux", "skymatch", "outlier_detection", "resample", "source_catalog"):
        assert mosaic.meta.cal_step[key] == "COMPLETE", key
    files = sorted(p.name for p in mosaic_run["outdir"].iterdir())
    assert any(f.endswith("_coadd.asdf") for f in files)
    assert any(f.endswith("_cat.parquet") or "_cat." in f for f in files)
    assert any("_segm." in f for f in files)
    r = mosaic.meta.resample
    assert r.pointings == 4 and len(r.members) == 4 and r.weight_type == "ivm"
    assert mosaic.meta.coadd_info.exposure_time == pytest.approx(139.0 * 4, rel=0.3)
    assert mosaic.meta.coadd_info.max_exposure_time == pytest.approx(4 * 139.0)
    assert mosaic.meta.wcsinfo.projection == "TAN"
    assert mosaic.context.dtype == np.uint32 and mosaic.context.shape[1:] == mosaic.data.shape


def test_sky_levels_matched(mosaic_run):
    """Matched levels reproduce the true sky differences to < 0.5 sigma of the sky noise."""
    levels = np.array([m.meta.background.level for m in mosaic_run["container"]])
    for m in mosaic_run["container"]:
        assert m.meta.background.method == "match" and m.meta.background.subtracted is False
        assert m.meta.cal_step.skymatch == "COMPLETE"
    true = np.array(SKIES) * PHOTMJSR
    sky_sigma = math.sqrt(VAR_RNOISE + min(SKIES) / GAIN_T) * PHOTMJSR
    diff = (levels - levels[0]) - (true - true[0])
    assert np.max(np.abs(diff)) < 0.5 * sky_sigma, (diff / sky_sigma)
    assert levels[int(np.argmin(true))] == pytest.approx(0.0, abs=1e-12)  # match_down


def test_cosmic_rays_flagged_not_star_cores(mosaic_run, dither):
    flagged_cr, total_cr = 0, 0
    outlier = np.uint32(pixel.OUTLIER | pixel.DO_NOT_USE)
    for model, cr, raw in zip(mosaic_run["container"], dither["crs"], dither["raw"], strict=True):
        flags = (np.asarray(model.dq) & outlier) == outlier
        total_cr += int(cr.sum())
        flagged_cr += int((flags & cr).sum())
        x, y = raw.meta.wcs.invert(dither["ra"], dither["dec"], with_bounding_box=False)
        yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
        for xs, ys in zip(x, y, strict=True):
            core = (xx - xs) ** 2 + (yy - ys) ** 2 <= 2.0 ** 2
            assert not flags[core].any(), "a star core was flagged as an outlier"
        # false positives away from CRs: at most a few noise pixels
        grown = np.zeros_like(cr)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(cr, dy, 0), dx, 1)
        assert int((flags & ~grown).sum()) <= 0.001 * cr.size
    assert flagged_cr / total_cr >= 0.99, (flagged_cr, total_cr)


def test_catalog_fluxes(mosaic_run, dither):
    """Kron fluxes of every star are within 2 % of the truth (nJy)."""
    cat = mosaic_run["catalog"].source_catalog
    assert len(cat) >= len(dither["flux"])
    truth = _true_njy(dither["flux"])
    cd = np.cos(np.deg2rad(dither["dec"][0]))
    for ra, dec, f in zip(dither["ra"], dither["dec"], truth, strict=True):
        sep = np.hypot((np.asarray(cat["ra"]) - ra) * cd, np.asarray(cat["dec"]) - dec) * 3600
        j = int(np.argmin(sep))
        assert sep[j] < 0.05, sep[j]
        assert cat["kron_flux"][j] == pytest.approx(f, rel=0.02)


def test_total_flux_conserved(mosaic_run, dither):
    """Sum of (mosaic - remaining sky) x pixel solid angle = total star flux."""
    from romancore.algorithms.source_catalog import pixel_area_from_wcs

    mosaic = mosaic_run["mosaic"]
    data = np.asarray(mosaic.data, float)
    ny, nx = data.shape
    omega = pixel_area_from_wcs(mosaic.meta.wcs, (nx - 1) / 2, (ny - 1) / 2)
    x, y = mosaic.meta.wcs.invert(dither["ra"], dither["dec"], with_bounding_box=False)
    x0, x1 = int(np.min(x)) - 20, int(np.max(x)) + 21
    y0, y1 = int(np.min(y)) - 20, int(np.max(y)) + 21
    box = data[y0:y1, x0:x1]
    assert np.isfinite(box).all()
    residual_sky = min(SKIES) * PHOTMJSR  # match_down leaves the lowest sky in
    total = float(np.sum(box - residual_sky)) * omega * 1e15
    truth = float(np.sum(_true_njy(dither["flux"])))
    assert total == pytest.approx(truth, rel=0.01)
