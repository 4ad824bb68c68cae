"""Tests of romancore.wcs: WFI exposure WCS, distortion maker, TAN output grids."""

import warnings
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.modeling import models as am

from romancore.errors import ParameterError
from romancore.wcs import (
    WFI_DETECTORS,
    add_v2v3_correction,
    build_wfi_wcs,
    compute_s_region,
    compute_scale,
    footprint,
    l1_wcs_from_l2,
    l3_wcsinfo,
    local_orientation,
    make_output_wcs,
    make_tan_wcs,
    make_wfi_distortion,
    output_rotation_matrix,
    tan_wcs_parameters,
    v23tosky,
    wcs_from_l3_wcsinfo,
    wfi_detector_geometry,
)

FIXTURES = Path("/work/shared/fixtures")


# ---------------------------------------------------------------- numpy oracles (ALGORITHMS.md §10)

def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, s], [0, -s, c]])


def oracle_v23tosky(v2, v3, v2_ref, v3_ref, roll_ref, ra_ref, dec_ref):
    """w = Rz(−ra)·Ry(dec)·Rx(roll)·Ry(−v3_ref)·Rz(v2_ref)·u, written from the equations."""
    d = np.deg2rad
    v2 = d(np.asarray(v2) / 3600.0)
    v3 = d(np.asarray(v3) / 3600.0)
    u = np.stack([np.cos(v3) * np.cos(v2), np.cos(v3) * np.sin(v2), np.sin(v3)])
    m = (
        _rz(-d(ra_ref)) @ _ry(d(dec_ref)) @ _rx(d(roll_ref))
        @ _ry(-d(v3_ref / 3600.0)) @ _rz(d(v2_ref / 3600.0))
    )
    w = m @ u
    ra = np.rad2deg(np.arctan2(w[1], w[0])) % 360.0
    dec = np.rad2deg(np.arctan2(w[2], np.hypot(w[0], w[1])))
    return ra, dec


def oracle_tan(x, y, crval, crpix, cdelt_deg, pc):
    """FITS TAN with lon_pole 180 (ALGORITHMS.md §10 'Pure TAN')."""
    xi = np.asarray(x, float) - crpix[0]
    yi = np.asarray(y, float) - crpix[1]
    xp = cdelt_deg * (pc[0][0] * xi + pc[0][1] * yi)
    yp = cdelt_deg * (pc[1][0] * xi + pc[1][1] * yi)
    r = np.hypot(xp, yp)
    phi = np.arctan2(xp, -yp)
    theta = np.arctan2(180.0 / np.pi, r)
    a0, d0 = np.deg2rad(crval[0]), np.deg2rad(crval[1])
    dphi = phi - np.pi
    dec = np.arcsin(np.sin(theta) * np.sin(d0) + np.cos(theta) * np.cos(d0) * np.cos(dphi))
    ra = a0 + np.arctan2(
        -np.cos(theta) * np.sin(dphi),
        np.sin(theta) * np.cos(d0) - np.cos(theta) * np.sin(d0) * np.cos(dphi),
    )
    return np.rad2deg(ra) % 360.0, np.rad2deg(dec)


def sep_arcsec(ra1, dec1, ra2, dec2):
    a = np.deg2rad(np.column_stack([ra1, dec1]))
    b = np.deg2rad(np.column_stack([ra2, dec2]))
    ua = np.stack([np.cos(a[:, 1]) * np.cos(a[:, 0]), np.cos(a[:, 1]) * np.sin(a[:, 0]), np.sin(a[:, 1])], 1)
    ub = np.stack([np.cos(b[:, 1]) * np.cos(b[:, 0]), np.cos(b[:, 1]) * np.sin(b[:, 0]), np.sin(b[:, 1])], 1)
    return np.rad2deg(np.arctan2(np.linalg.norm(np.cross(ua, ub), axis=1), (ua * ub).sum(1))) * 3600.0


# ---------------------------------------------------------------- fixtures

POINTINGS = [
    (270.0, 65.0, 30.0),
    (0.05, -0.02, 117.0),   # RA wrap at 0
    (359.97, 12.0, -45.0),
    (123.4, 89.6, 200.0),   # near the north pole
    (80.0, -88.9, 10.0),
]


_DIST_CACHE = {}


def _dist(detector):
    """The simulated distortion of a detector, built once per test session (read-only use)."""
    if detector not in _DIST_CACHE:
        _DIST_CACHE[detector] = make_wfi_distortion(detector)
    return _DIST_CACHE[detector]


def _wcsinfo(detector, ra, dec, roll):
    g = wfi_detector_geometry(detector)
    return dict(g, ra_ref=ra, dec_ref=dec, roll_ref=roll)


@pytest.fixture(scope="module")
def wfi07():
    dist = _dist("WFI07")
    info = _wcsinfo("WFI07", 270.0, 65.0, 30.0)
    return dist, info, build_wfi_wcs(dist, info)


def _random_pixels(n=20000, seed=1, shape=(4088, 4088)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, shape[1] - 0.5, n)
    y = rng.uniform(-0.5, shape[0] - 0.5, n)
    corners_x = np.array([-0.5, shape[1] - 0.5, shape[1] - 0.5, -0.5, 0, shape[1] - 1])
    corners_y = np.array([-0.5, -0.5, shape[0] - 0.5, shape[0] - 0.5, 0, shape[0] - 1])
    return np.concatenate([x, corners_x]), np.concatenate([y, corners_y])


# ---------------------------------------------------------------- v2v3 → sky

@pytest.mark.parametrize("ra,dec,roll", POINTINGS)
def test_v23tosky_matches_equations(ra, dec, roll):
    g = wfi_detector_geometry("WFI11")
    model = v23tosky(g["v2_ref"], g["v3_ref"], roll, ra, dec)
    rng = np.random.default_rng(3)
    v2 = g["v2_ref"] + rng.uniform(-900, 900, 500)
    v3 = g["v3_ref"] + rng.uniform(-900, 900, 500)
    r1, d1 = model(v2, v3)
    r2, d2 = oracle_v23tosky(v2, v3, g["v2_ref"], g["v3_ref"], roll, ra, dec)
    assert sep_arcsec(r1, d1, r2, d2).max() < 1e-8
    assert np.all((r1 >= 0) & (r1 < 360))
    # inverse
    b2, b3 = model.inverse(r1, d1)
    assert np.abs(b2 - v2).max() < 1e-8 and np.abs(b3 - v3).max() < 1e-8


@pytest.mark.parametrize("ra,dec,roll", POINTINGS)
@pytest.mark.parametrize("va", [None, 1.00012])
def test_reference_point_maps_to_ra_dec_ref(ra, dec, roll, va):
    dist = _dist("WFI03")
    info = _wcsinfo("WFI03", ra, dec, roll)
    wcs = build_wfi_wcs(dist, info, velocity_aberration=va)
    r, d = wcs.get_transform("v2v3", "world")(info["v2_ref"], info["v3_ref"])
    assert abs(((r - ra + 180) % 360) - 180) * np.cos(np.deg2rad(dec)) < 1e-10
    assert abs(d - dec) < 1e-10
    # the simulated distortion puts the reference point at the array centre
    r, d = wcs(2043.5, 2043.5)
    assert sep_arcsec([r], [d], [ra], [dec])[0] < 1e-7


# ---------------------------------------------------------------- the full pipeline

def test_frames_and_interactive_use(wfi07):
    dist, info, wcs = wfi07
    assert wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    v2w = wcs.get_transform("v2v3", "world")
    ra, dec = wcs(100.0, 3000.0)
    v2, v3 = dist(100.0, 3000.0)
    assert np.allclose(v2w(v2, v3), (ra, dec), rtol=0, atol=1e-12)
    x, y = wcs.invert(ra, dec)
    assert abs(x - 100.0) < 1e-6 and abs(y - 3000.0) < 1e-6
    assert wcs.bounding_box.bounding_box(order="F") == ((-0.5, 4087.5), (-0.5, 4087.5))
    assert wcs.pixel_shape == (4088, 4088)
    # outside the bounding box: NaN
    assert np.isnan(wcs(-3.0, 10.0)[0])


@pytest.mark.parametrize("detector", ["WFI01", "WFI09", "WFI18"])
@pytest.mark.parametrize("ra,dec,roll", POINTINGS[:4])
def test_pixel_sky_pixel_round_trip(detector, ra, dec, roll):
    dist = _dist(detector)
    wcs = build_wfi_wcs(dist, _wcsinfo(detector, ra, dec, roll), velocity_aberration=0.99991)
    x, y = _random_pixels(5000, seed=int(detector[3:]))
    r, d = wcs(x, y)
    # the bbox corners come back a few 1e-10 px outside the box: no bbox check on the way back
    x2, y2 = wcs.invert(r, d, with_bounding_box=False)
    err = np.hypot(x2 - x, y2 - y)
    assert np.all(np.isfinite(err))
    assert err.max() < 1e-6


def test_distortion_through_gwcs_equals_reference_model(wfi07):
    dist, info, wcs = wfi07
    x, y = _random_pixels(3000, seed=5)
    v2a, v3a = wcs.get_transform("detector", "v2v3")(x, y)
    v2b, v3b = dist(x, y)
    assert np.array_equal(v2a, v2b) and np.array_equal(v3a, v3b)
    # no velocity aberration: v2v3vacorr == v2v3; full chain == oracle rotation of the model
    assert np.array_equal(wcs.get_transform("v2v3", "v2v3vacorr")(v2a, v3a)[0], v2a)
    ra, dec = wcs(x, y)
    ro, do = oracle_v23tosky(v2b, v3b, info["v2_ref"], info["v3_ref"], 30.0, 270.0, 65.0)
    assert sep_arcsec(ra, dec, ro, do).max() < 1e-8


def test_velocity_aberration_scaling():
    dist = _dist("WFI02")
    info = _wcsinfo("WFI02", 10.0, 20.0, 0.0)
    s = 1.0001
    wcs = build_wfi_wcs(dist, info, velocity_aberration={"scale_factor": s})
    v2 = np.array([info["v2_ref"], info["v2_ref"] + 200.0])
    v3 = np.array([info["v3_ref"], info["v3_ref"] - 150.0])
    a2, a3 = wcs.get_transform("v2v3", "v2v3vacorr")(v2, v3)
    assert np.allclose(a2, s * v2 + (1 - s) * info["v2_ref"], rtol=0, atol=1e-9)
    assert np.allclose(a3, s * v3 + (1 - s) * info["v3_ref"], rtol=0, atol=1e-9)
    # 200" from the reference point moves by (s-1)*200" = 0.02"
    plain = build_wfi_wcs(dist, info)
    r1, d1 = wcs.get_transform("v2v3", "world")(v2, v3)
    r0, d0 = plain.get_transform("v2v3", "world")(v2, v3)
    moved = sep_arcsec(r1, d1, r0, d0)
    assert moved[0] < 1e-9
    assert abs(moved[1] - (s - 1) * np.hypot(200.0, 150.0)) < 1e-6


def test_distortion_model_keeps_its_bounding_box():
    dist = make_wfi_distortion("WFI05")
    dist.bounding_box = ((10.0, 20.0), (30.0, 40.0))  # astropy order (y, x)
    wcs = build_wfi_wcs(dist, _wcsinfo("WFI05", 1.0, 2.0, 3.0))
    assert wcs.bounding_box.bounding_box(order="F") == ((30.0, 40.0), (10.0, 20.0))


# ---------------------------------------------------------------- s_region, footprint, L1

def test_s_region_corners(wfi07):
    dist, info, wcs = wfi07
    s = compute_s_region(wcs)
    words = s.split()
    assert words[:2] == ["POLYGON", "ICRS"]
    vals = np.array(words[2:], dtype=float).reshape(4, 2)
    cx = np.array([-0.5, 4087.5, 4087.5, -0.5])
    cy = np.array([-0.5, -0.5, 4087.5, 4087.5])
    ra, dec = wcs(cx, cy, with_bounding_box=False)
    assert np.abs(vals[:, 0] - ra % 360).max() < 1e-8
    assert np.abs(vals[:, 1] - dec).max() < 1e-8
    # RA wraps into [0, 360)
    w0 = build_wfi_wcs(_dist("WFI07"), _wcsinfo("WFI07", 0.01, 0.0, 0.0))
    vals = np.array(compute_s_region(w0).split()[2:], dtype=float).reshape(4, 2)
    assert np.all((vals[:, 0] >= 0) & (vals[:, 0] < 360))
    assert (vals[:, 0] > 180).any() and (vals[:, 0] < 180).any()


def test_s_region_none_when_not_finite():
    bad = am.Const1D(np.nan) & am.Const1D(np.nan)
    wcs = build_wfi_wcs(bad, _wcsinfo("WFI01", 1.0, 2.0, 3.0), shape=(10, 10))
    assert compute_s_region(wcs) is None


def test_footprint_extra_points(wfi07):
    _, _, wcs = wfi07
    fp = footprint(wcs, n_per_edge=4)
    assert fp.shape == (16, 2)
    assert np.allclose(fp[::4], footprint(wcs), rtol=0, atol=1e-12)


def test_l1_wcs_accounts_for_border(wfi07):
    _, _, wcs = wfi07
    l1 = l1_wcs_from_l2(wcs)
    x, y = _random_pixels(200, seed=7)
    assert np.allclose(l1(x + 4, y + 4), wcs(x, y), rtol=0, atol=1e-12)
    assert l1.bounding_box.bounding_box(order="F") == ((3.5, 4091.5), (3.5, 4091.5))
    assert l1.pixel_shape == (4096, 4096)
    assert l1.available_frames == wcs.available_frames
    xi, yi = l1.invert(*wcs(1000.0, 20.0))
    assert abs(xi - 1004.0) < 1e-6 and abs(yi - 24.0) < 1e-6


# ---------------------------------------------------------------- tweakreg correction

def test_tweakwcs_correction_inserts_v2v3corr(wfi07):
    dist, info, wcs = wfi07
    from tweakwcs.correctors import RomanWCSCorrector

    RomanWCSCorrector(wcs, info)  # accepts our frame structure
    shift = np.array([0.3, -0.2])  # arcsec in the tangent plane
    corrected = add_v2v3_correction(wcs, info, np.eye(2), shift)
    assert corrected.available_frames == ["detector", "v2v3", "v2v3vacorr", "v2v3corr", "world"]
    assert wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]  # input unchanged
    x, y = _random_pixels(500, seed=9)
    r0, d0 = wcs(x, y)
    r1, d1 = corrected(x, y)
    moved = sep_arcsec(r0, d0, r1, d1)
    # a pure shift in the tangent plane moves every point by |shift| (to < 1e-4 over 0.3 deg)
    assert np.abs(moved - np.hypot(*shift)).max() < 1e-4 * np.hypot(*shift) + 1e-9
    # round trip of the corrected WCS and composition of corrections
    x2, y2 = corrected.invert(r1, d1, with_bounding_box=False)
    assert np.hypot(x2 - x, y2 - y).max() < 1e-6
    twice = add_v2v3_correction(corrected, info, np.eye(2), shift)
    once = add_v2v3_correction(wcs, info, np.eye(2), 2 * shift)
    assert twice.available_frames.count("v2v3corr") == 1
    assert sep_arcsec(*twice(x, y), *once(x, y)).max() < 1e-8


def test_tweakwcs_rotation_correction_about_reference_point(wfi07):
    dist, info, wcs = wfi07
    a = np.deg2rad(10.0 / 3600.0)  # 10 arcsec rotation
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corrected = add_v2v3_correction(wcs, info, rot, [0.0, 0.0])
    # the reference point does not move; a point 1000" away moves by ~1000"·a
    v2r, v3r = info["v2_ref"], info["v3_ref"]
    xr, yr = dist.inverse(v2r, v3r)
    assert sep_arcsec(*wcs(xr, yr), *corrected(xr, yr))[0] < 1e-8
    xf, yf = dist.inverse(v2r + 100.0, v3r)
    assert abs(sep_arcsec(*wcs(xf, yf), *corrected(xf, yf))[0] - 100.0 * a) < 1e-5


# ---------------------------------------------------------------- serialisation

def test_wcs_survives_asdf(tmp_path, wfi07):
    dist, info, wcs = wfi07
    corrected = add_v2v3_correction(wcs, info, np.eye(2), [0.1, 0.1])
    path = tmp_path / "w.asdf"
    asdf.AsdfFile({"wcs": wcs, "corrected": corrected, "l1": l1_wcs_from_l2(wcs)}).write_to(path)
    x, y = _random_pixels(100, seed=11)
    with asdf.open(path) as af:
        for key, original in (("wcs", wcs), ("corrected", corrected)):
            back = af[key]
            assert back.available_frames == original.available_frames
            assert np.allclose(back(x, y), original(x, y), rtol=0, atol=1e-12)
            xy = back.invert(*back(x, y), with_bounding_box=False)
            assert np.hypot(*np.subtract(xy, (x, y))).max() < 1e-6
        assert af["l1"].bounding_box.bounding_box(order="F") == ((3.5, 4091.5), (3.5, 4091.5))


# ---------------------------------------------------------------- the simulated distortion

def test_distortion_maker_layout_and_inverse():
    centers = []
    for det in WFI_DETECTORS:
        dist = _dist(det)
        g = wfi_detector_geometry(det)
        v2c, v3c = dist(2043.5, 2043.5)
        assert abs(v2c - g["v2_ref"]) < 1e-9 and abs(v3c - g["v3_ref"]) < 1e-9
        x, y = _random_pixels(2000, seed=int(det[3:]))
        v2, v3 = dist(x, y)
        x2, y2 = dist.inverse(v2, v3)
        assert np.hypot(x2 - x, y2 - y).max() < 1e-8
        # local plate scale within 5 % of 0.11"
        dx = np.hypot(*np.subtract(dist(2044.5, 2043.5), (v2c, v3c)))
        dy = np.hypot(*np.subtract(dist(2043.5, 2044.5), (v2c, v3c)))
        assert 0.1045 < dx < 0.1155 and 0.1045 < dy < 0.1155
        centers.append((v2c, v3c))
    centers = np.array(centers)
    dmin = min(
        np.hypot(*(centers[i] - centers[j])) for i in range(18) for j in range(i + 1, 18)
    )
    # detectors (450" wide) do not overlap and are not far apart
    assert 460 < dmin < 600
    with pytest.raises(ParameterError, match="WFI19"):
        make_wfi_distortion("WFI19")


def test_distortion_is_non_linear():
    # the simulated optics distort by arcsecs across a detector (so tests exercise distortion)
    dist = _dist("WFI16")
    x = np.array([-0.5, 2043.5, 4087.5])
    v2, v3 = dist(x, np.full(3, 2043.5))
    mid_v2, mid_v3 = 0.5 * (v2[0] + v2[2]), 0.5 * (v3[0] + v3[2])
    assert np.hypot(mid_v2 - v2[1], mid_v3 - v3[1]) > 0.5  # arcsec of curvature


# ---------------------------------------------------------------- bad inputs and the fixtures

def test_bad_inputs_raise_clear_errors():
    dist = _dist("WFI01")
    info = _wcsinfo("WFI01", 1.0, 2.0, 3.0)
    with pytest.raises(ParameterError, match="distortion.*DISTORTION reference"):
        build_wfi_wcs({}, info)
    with pytest.raises(ParameterError, match="2 inputs"):
        build_wfi_wcs(am.Shift(1.0), info)
    with pytest.raises(ParameterError, match=r"wcsinfo\['ra_ref'\].*placeholder"):
        build_wfi_wcs(dist, dict(info, ra_ref=-999999.0))
    with pytest.raises(ParameterError, match=r"wcsinfo\['roll_ref'\] is missing"):
        build_wfi_wcs(dist, {k: v for k, v in info.items() if k != "roll_ref"})
    with pytest.raises(ParameterError, match=r"wcsinfo\['dec_ref'\].*outside"):
        build_wfi_wcs(dist, dict(info, dec_ref=91.0))
    with pytest.raises(ParameterError, match=r"wcsinfo\['v2_ref'\].*not finite"):
        build_wfi_wcs(dist, dict(info, v2_ref=np.nan))
    with pytest.raises(ParameterError, match="scale_factor"):
        build_wfi_wcs(dist, info, velocity_aberration=2.0)
    with pytest.raises(ParameterError, match="shape"):
        build_wfi_wcs(dist, info, shape=(0, 5))


def _open_raw(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asdf.open(path, lazy_load=False)


def test_fixture_distortion_reference_is_a_placeholder():
    """The fixture DISTORTION ref was written by the Roman 'maker' with an empty transform;
    building a WCS from it must fail clearly, not produce garbage."""
    with _open_raw(FIXTURES / "refs/roman_wfi_distortion_fixture.asdf") as af:
        transform = af["roman"]["coordinate_distortion_transform"]
        assert af["roman"]["meta"]["reftype"] == "DISTORTION"
        with pytest.raises(ParameterError, match="DISTORTION reference file holds no usable"):
            build_wfi_wcs(transform, _wcsinfo("WFI01", 1.0, 2.0, 3.0))


def test_fixture_cal_wcs_works_with_grid_tools():
    """The fixture L2 image carries a real gwcs (TAN, 0.1"/px at (30, 45)); our footprint,
    s_region, scale and output-grid tools work on it."""
    with _open_raw(FIXTURES / "r0000101001001001001_0001_wfi01_f158_cal.asdf") as af:
        wcs = af["roman"]["meta"]["wcs"]
        shape = np.asarray(af["roman"]["data"]).shape
        s = compute_s_region(wcs, shape)
        assert s.startswith("POLYGON ICRS ")
        assert compute_scale(wcs, pixel=(500.0, 500.0)) == pytest.approx(0.1, rel=1e-9)
        out, oshape = make_output_wcs([footprint(wcs, shape)], pixel_scale=0.05)
        # a 64x64 image at 0.1" is covered by a ~128x128 grid at 0.05"
        assert 128 <= oshape[0] <= 130 and 128 <= oshape[1] <= 130


# ---------------------------------------------------------------- TAN grids

def test_make_tan_wcs_matches_equations():
    pc = output_rotation_matrix(25.0)
    wcs = make_tan_wcs((150.0, -30.0), (100.0, 80.0), 0.055, pc=pc, shape=(300, 200))
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-5000, 5000, (2, 400))
    r1, d1 = wcs(x, y, with_bounding_box=False)
    r2, d2 = oracle_tan(x, y, (150.0, -30.0), (100.0, 80.0), 0.055 / 3600, pc)
    assert sep_arcsec(r1, d1, r2, d2).max() < 1e-9
    assert wcs(100.0, 80.0) == pytest.approx((150.0, -30.0), abs=1e-12)
    params = tan_wcs_parameters(wcs)
    assert params["crpix"] == (100.0, 80.0) and params["cdelt"] == 0.055 / 3600
    assert np.array_equal(params["pc"], pc)
    pa, parity = local_orientation(wcs, 100.0, 80.0)
    assert pa == pytest.approx(25.0, abs=1e-6) and parity == -1
    assert wcs.pixel_shape == (200, 300)


def test_output_rotation_matrix_from_wcsinfo():
    pc = output_rotation_matrix(roll_ref=30.0, v3yangle=-60.0, vparity=-1)
    theta = np.deg2rad(30.0 - 60.0)
    assert np.allclose(pc, [[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    with pytest.raises(ParameterError, match="vparity"):
        output_rotation_matrix(0.0, vparity=0)


def _three_detectors(ra=210.0, dec=-45.0, roll=70.0):
    return [
        build_wfi_wcs(_dist(d), _wcsinfo(d, ra, dec, roll))
        for d in ("WFI01", "WFI05", "WFI12")
    ]


def _inside_fraction(out, shape, wcs_list, n=64):
    ny, nx = shape
    worst = np.inf
    for w in wcs_list:
        g = np.linspace(-0.5, 4087.5, n)
        ex = np.concatenate([g, np.full(n, 4087.5), g, np.full(n, -0.5)])
        ey = np.concatenate([np.full(n, -0.5), g, np.full(n, 4087.5), g])
        X, Y = out.invert(*w(ex, ey), with_bounding_box=False)
        worst = min(worst, (X + 0.5).min(), (Y + 0.5).min(), (nx - 0.5 - X).min(), (ny - 0.5 - Y).min())
    return worst  # >= 0 when every outline point is inside the grid


def test_output_grid_covers_all_inputs():
    inputs = _three_detectors()
    out, shape = make_output_wcs(inputs)
    margin = _inside_fraction(out, shape, inputs)
    # covers (the outline is sampled at 32 points per edge: curved edges can bulge out
    # between samples by ~1e-3 px) and is tight
    assert -5e-3 <= margin < 2.0
    # the grid's pixel scale is the input scale at the fiducial
    params = tan_wcs_parameters(out)
    assert params["cdelt"] * 3600 == pytest.approx(compute_scale(inputs[0], sky=params["crval"]))
    # oriented like the first detector (east left)
    pa_in, par_in = local_orientation(inputs[0], 2043.5, 2043.5)
    pa_out, par_out = local_orientation(out, *params["crpix"])
    assert par_in == par_out == -1
    assert abs((pa_in - pa_out + 180) % 360 - 180) < 0.5


def test_output_grid_options():
    inputs = _three_detectors(ra=359.9, dec=2.0, roll=0.0)
    out, shape = make_output_wcs(inputs, pixel_scale_ratio=0.5, rotation=0.0)
    assert _inside_fraction(out, shape, inputs) >= -5e-3
    params = tan_wcs_parameters(out)
    assert params["cdelt"] * 3600 == pytest.approx(0.5 * compute_scale(inputs[0], sky=params["crval"]))
    assert local_orientation(out, *params["crpix"])[0] == pytest.approx(0.0, abs=1e-6)
    out2, shape2 = make_output_wcs(inputs, pixel_scale=0.2, crval=(0.0, 2.0), crpix=(10.0, 20.0),
                                   shape=(50, 60), rotation=45.0)
    assert shape2 == (50, 60)
    p2 = tan_wcs_parameters(out2)
    assert p2["crval"] == (0.0, 2.0) and p2["crpix"] == (10.0, 20.0)
    assert p2["cdelt"] == pytest.approx(0.2 / 3600)
    # wcsinfo orientation: theta = roll_ref - vparity*v3yangle
    out3, _ = make_output_wcs(inputs, wcsinfo={"roll_ref": 10.0, "v3yangle": -60.0, "vparity": -1})
    p3 = tan_wcs_parameters(out3)
    assert local_orientation(out3, *p3["crpix"])[0] == pytest.approx(310.0, abs=1e-6)
    with pytest.raises(ParameterError, match="empty"):
        make_output_wcs([])
    with pytest.raises(ParameterError, match="pixel_scale is required"):
        make_output_wcs([footprint(inputs[0])])


def test_l3_wcsinfo_round_trip():
    inputs = _three_detectors()
    out, shape = make_output_wcs(inputs, pixel_scale=0.1, rotation=12.0)
    info = l3_wcsinfo(out, skycell_name="none")
    assert info["projection"] == "TAN" and info["image_shape"] == list(shape)
    assert info["pixel_scale_ref"] == pytest.approx(0.1 / 3600)
    assert info["orientation_ref"] == pytest.approx(12.0, abs=1e-6)
    centre = out((shape[1] - 1) / 2, (shape[0] - 1) / 2)
    assert (info["ra"], info["dec"]) == pytest.approx(centre, abs=1e-12)
    assert info["s_region"] == compute_s_region(out)
    back, bshape = wcs_from_l3_wcsinfo(info)
    assert bshape == shape
    x, y = _random_pixels(100, seed=4, shape=shape)
    assert sep_arcsec(*back(x, y), *out(x, y)).max() < 1e-9
