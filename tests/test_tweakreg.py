"""Tests of romancore.algorithms.tweakreg: injected pointing errors corrected against truth."""

import math
from functools import lru_cache

import numpy as np
import pytest
from astropy.table import Table

from romancore.algorithms import tweakreg as tr
from romancore.algorithms.source_catalog import update_sky_coordinates
from romancore.dq import pixel
from romancore.errors import FileFormatError, ParameterError
from romancore.wcs import build_wfi_wcs
from romancore.wcs.distortion import make_wfi_distortion, wfi_detector_geometry

RA0, DEC0, ROLL0 = 80.0, -30.0, 20.0


@lru_cache(maxsize=1)
def _distortion():
    return make_wfi_distortion("WFI01"), wfi_detector_geometry("WFI01")


def wfi_wcs(ra=RA0, dec=DEC0, roll=ROLL0):
    dist, geom = _distortion()
    info = {"v2_ref": geom["v2_ref"], "v3_ref": geom["v3_ref"], "roll_ref": roll,
            "ra_ref": ra, "dec_ref": dec}
    return build_wfi_wcs(dist, info), info


def perturbed(ra, dec, roll, d_ra_arcsec, d_dec_arcsec, d_roll_deg):
    return wfi_wcs(ra + d_ra_arcsec / 3600.0 / math.cos(math.radians(dec)),
                   dec + d_dec_arcsec / 3600.0, roll + d_roll_deg)


def sep_mas(ra1, dec1, ra2, dec2):
    d1, d2 = np.deg2rad(dec1), np.deg2rad(dec2)
    dra = np.deg2rad(np.asarray(ra1) - np.asarray(ra2))
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(dra)
    return np.rad2deg(np.arccos(np.clip(c, -1, 1))) * 3.6e6


def star_field(rng, true_wcs, n, pos_noise_px=0.02):
    """Pixel catalog (with centroid noise) and true sky positions of n stars."""
    x = rng.uniform(30, 4058, n)
    y = rng.uniform(30, 4058, n)
    ra, dec = true_wcs(x, y)
    cat = Table({"x_centroid_win": x + rng.normal(0, pos_noise_px, n),
                 "y_centroid_win": y + rng.normal(0, pos_noise_px, n),
                 "warning_flags": np.zeros(n, np.uint32)})
    return cat, np.asarray(ra), np.asarray(dec)


def observe(rng, true_wcs, ra, dec, pos_noise_px=0.02):
    """Pixel catalog of the sky stars that fall on the detector of ``true_wcs``."""
    x, y = true_wcs.invert(ra, dec, with_bounding_box=False)
    x, y = np.asarray(x), np.asarray(y)
    on = (x > 20) & (x < 4067) & (y > 20) & (y < 4067)
    n = int(on.sum())
    cat = Table({"x_centroid_win": x[on] + rng.normal(0, pos_noise_px, n),
                 "y_centroid_win": y[on] + rng.normal(0, pos_noise_px, n)})
    return cat, ra[on], dec[on]


def refcat_from(rng, ra, dec, noise_mas=5.0, extra=0):
    n = len(ra)
    cosd = np.cos(np.deg2rad(dec))
    r = ra + rng.normal(0, noise_mas, n) / 3.6e6 / cosd
    d = dec + rng.normal(0, noise_mas, n) / 3.6e6
    if extra:  # refcat stars that are not in the image catalogs
        r = np.concatenate([r, RA0 + rng.uniform(-0.15, 0.15, extra)])
        d = np.concatenate([d, DEC0 + rng.uniform(-0.15, 0.15, extra)])
    return Table({"ra": r, "dec": d})


def residual_rms_mas(wcs, cat, ra_true, dec_true):
    ra, dec = wcs(np.asarray(cat["x_centroid_win"]), np.asarray(cat["y_centroid_win"]))
    return float(np.sqrt(np.mean(sep_mas(ra, dec, ra_true, dec_true) ** 2)))


def test_absolute_alignment_corrects_shift_and_rotation(tmp_path):
    rng = np.random.default_rng(1)
    true_wcs, _ = wfi_wcs()
    cat, ra, dec = star_field(rng, true_wcs, 150)
    bad_wcs, bad_info = perturbed(RA0, DEC0, ROLL0, 0.3 * 0.6, 0.3 * 0.8, 0.01)  # 0.3" shift
    before = residual_rms_mas(bad_wcs, cat, ra, dec)
    assert before > 250
    ref = refcat_from(rng, ra, dec, extra=100)
    path = tmp_path / "refcat.ecsv"
    ref.write(path, format="ascii.ecsv")
    res = tr.align_images([tr.AlignInput(bad_wcs, cat, bad_info, group_id="g1", name="img1")],
                          refcat=str(path))
    out = res.images[0]
    assert out.status == "SUCCESS"
    assert "v2v3corr" in out.wcs.available_frames
    assert "v2v3corr" not in bad_wcs.available_frames  # the input WCS is not modified
    after = residual_rms_mas(out.wcs, cat, ra, dec)
    assert after < 10.0
    fit = out.fit_results
    assert fit["fitgeom"] == "rshift"
    assert fit["nmatches"] >= 140
    assert fit["rmse"] < 0.02  # arcsec
    assert np.hypot(*fit["shift"]) == pytest.approx(0.3, abs=0.06)
    assert fit["matrix"].shape == (2, 2)
    assert set(res.refcat.colnames) >= {"RA", "DEC"}
    assert len(res.refcat) == 250
    # catalog sky positions follow the corrected WCS
    full = Table({"x_centroid": cat["x_centroid_win"], "y_centroid": cat["y_centroid_win"]})
    update_sky_coordinates(full, out.wcs)
    assert np.sqrt(np.mean(sep_mas(full["ra_centroid"], full["dec_centroid"], ra, dec) ** 2)) < 10


def test_relative_then_absolute_two_exposures_and_too_few_sources():
    rng = np.random.default_rng(7)
    # two dithered exposures (different groups) of one star field, each with its own error
    true1, _ = wfi_wcs()
    ra2_ref, dec2_ref = RA0 + 40 / 3600 / math.cos(math.radians(DEC0)), DEC0 + 30 / 3600
    true2, _ = wfi_wcs(ra=ra2_ref, dec=dec2_ref)
    _, ra_sky, dec_sky = star_field(rng, true1, 150)
    cat1, ra1, dec1 = observe(rng, true1, ra_sky, dec_sky)
    cat2, ra2, dec2 = observe(rng, true2, ra_sky, dec_sky)
    assert len(cat1) > 100 and len(cat2) > 100
    bad1, info1 = perturbed(RA0, DEC0, ROLL0, 0.25, -0.15, 0.01)
    bad2, info2 = perturbed(ra2_ref, dec2_ref, ROLL0, -0.2, 0.25, -0.01)
    # a third exposure with only 5 detected sources
    true3, _ = wfi_wcs(ra=RA0 - 50 / 3600, dec=DEC0)
    cat3, ra3, dec3 = star_field(rng, true3, 5)
    bad3, info3 = perturbed(RA0 - 50 / 3600, DEC0, ROLL0, 0.3, 0.0, 0.0)
    ref = refcat_from(rng, np.concatenate([ra_sky, ra3]), np.concatenate([dec_sky, dec3]))
    inputs = [
        tr.AlignInput(bad1, cat1, info1, group_id="exp1", name="exp1"),
        tr.AlignInput(bad2, cat2, info2, group_id="exp2", name="exp2"),
        tr.AlignInput(bad3, cat3, info3, group_id="exp3", name="exp3"),
    ]
    res = tr.align_images(inputs, refcat=ref, searchrad=2.0, fitgeometry="rshift")
    r1, r2, r3 = res.images
    assert r1.status == r2.status == "SUCCESS"
    assert r1.relative_fit_results is not None
    assert residual_rms_mas(r1.wcs, cat1, ra1, dec1) < 10.0
    assert residual_rms_mas(r2.wcs, cat2, ra2, dec2) < 10.0
    assert r3.status.startswith("SKIPPED") and "fewer than abs_minobj=15" in r3.status
    assert r3.fit_results["status"] == r3.status
    assert "v2v3corr" not in r3.wcs.available_frames


def test_refcat_without_matches_fails_clearly():
    rng = np.random.default_rng(3)
    true_wcs, info = wfi_wcs()
    cat, ra, dec = star_field(rng, true_wcs, 40)
    far = Table({"ra": ra + 1.0, "dec": dec})  # catalog of another field
    res = tr.align_images([tr.AlignInput(true_wcs, cat, info, name="x")], refcat=far)
    assert res.images[0].status.startswith("FAILED")
    assert "v2v3corr" not in res.images[0].wcs.available_frames


def test_single_group_without_refcat_and_wcs_without_v2v3():
    rng = np.random.default_rng(4)
    true_wcs, info = wfi_wcs()
    cat, *_ = star_field(rng, true_wcs, 30)
    res = tr.align_images([tr.AlignInput(true_wcs, cat, info, group_id=1)])
    assert res.images[0].status.startswith("SKIPPED") and "no reference catalog" in res.images[0].status
    from astropy.modeling import models
    from gwcs import WCS
    from gwcs import coordinate_frames as cf
    tan = (models.Scale(3e-5) & models.Scale(3e-5)) | models.Pix2Sky_Gnomonic() | \
        models.RotateNative2Celestial(RA0, DEC0, 180)
    from astropy import coordinates as coord
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    plain = WCS([(cf.Frame2D(name="detector"), tan), (world, None)])
    res = tr.align_images([tr.AlignInput(plain, cat, info)], refcat=Table({"ra": [1.0], "dec": [2.0]}))
    assert res.images[0].status == "SKIPPED: WCS has no v2v3 frame (frames ['detector', 'world'])"


def test_prepare_catalog_columns_and_filters():
    t = Table({"x_psf": [1.0, np.nan, 5000.0, 3.0], "y_psf": [2.0, 3.0, 4.0, 5.0],
               "warning_flags": np.array([0, 0, 0, pixel.DO_NOT_USE], np.uint32)})
    out = tr.prepare_catalog(t, shape=(4088, 4088))
    assert list(out["x"]) == [1.0] and list(out["y"]) == [2.0]
    t2 = Table({"xcentroid": [1.0, 2.0], "ycentroid": [3.0, 4.0]})
    assert list(tr.prepare_catalog(t2)["x"]) == [1.0, 2.0]
    with pytest.raises(ParameterError, match="pixel positions"):
        tr.prepare_catalog(Table({"ra": [1.0]}))


def test_reference_catalog_loading(tmp_path):
    t = tr.load_reference_catalog(Table({"RA_deg": [1.0, np.nan], "Dec_deg": [2.0, 3.0]}))
    assert list(t["RA"]) == [1.0] and list(t["DEC"]) == [2.0]
    with pytest.raises(ParameterError, match="online"):
        tr.load_reference_catalog("GAIADR3")
    with pytest.raises(FileFormatError, match="does not exist"):
        tr.load_reference_catalog(str(tmp_path / "missing.ecsv"))
    with pytest.raises(ParameterError, match="ra and dec"):
        tr.load_reference_catalog(Table({"a": [1.0]}))


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(minobj=0), "minobj"), (dict(fitgeometry="affine"), "fitgeometry"),
     (dict(abs_searchrad=-1.0), "abs_searchrad"), (dict(nclip=-1), "nclip"),
     (dict(abs_sigma=0.0), "abs_sigma")],
)
def test_bad_parameters(kwargs, match):
    true_wcs, info = wfi_wcs()
    cat = Table({"x": [1.0], "y": [1.0]})
    with pytest.raises(ParameterError, match=match):
        tr.align_images([tr.AlignInput(true_wcs, cat, info)], **kwargs)
    with pytest.raises(ParameterError, match="roll_ref"):
        tr.align_images([tr.AlignInput(true_wcs, cat, dict(info, roll_ref=-999999))])
