"""Tests of romancore.skycells: tessellation, naming, skycell WCS, lookup, fixture consistency."""

import warnings
from pathlib import Path

import asdf
import numpy as np
import pytest

from romancore.errors import ParameterError
from romancore.skycells import (
    CORE_MARGIN,
    NXY_SKYCELL,
    PITCH,
    PROJECTION_REGION_DTYPE,
    SKYCELL_DTYPE,
    all_projection_regions,
    find_skycells,
    make_skycell_table,
    parse_skycell_name,
    skycell_owner,
    skycell_wcs,
    skycell_wcs_info,
)
from romancore.wcs import build_wfi_wcs, footprint, make_wfi_distortion, wfi_detector_geometry
from romancore.wcs.grid import compute_scale, local_orientation

FIXTURES = Path("/work/shared/fixtures")


def _open_raw(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asdf.open(path, lazy_load=False)


def _sep_arcsec(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = (np.deg2rad(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    u1 = np.stack([np.cos(d1) * np.cos(r1), np.cos(d1) * np.sin(r1), np.sin(d1)], -1)
    u2 = np.stack([np.cos(d2) * np.cos(r2), np.cos(d2) * np.sin(r2), np.sin(d2)], -1)
    return np.rad2deg(np.arctan2(np.linalg.norm(np.cross(u1, u2), axis=-1), (u1 * u2).sum(-1))) * 3600


@pytest.fixture(scope="module")
def table_270():
    return make_skycell_table(center=(270.0, 65.0), radius=0.2)


@pytest.fixture(scope="module")
def table_wrap():
    return make_skycell_table(ra_range=(358.0, 2.0), dec_range=(-0.5, 0.5))


def _random_sky(n, seed):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.rad2deg(np.arcsin(rng.uniform(-1, 1, n)))
    return ra, dec


# ---------------------------------------------------------------- regions

def test_projection_regions_tile_the_sphere():
    pr = all_projection_regions()
    assert pr.dtype == PROJECTION_REGION_DTYPE
    assert len(pr) == 4354
    assert np.array_equal(pr["index"], np.arange(len(pr)))
    # areas add up to 4π sr
    width = np.deg2rad((pr["ra_max"] - pr["ra_min"]) % 360.0)
    width[width == 0] = 2 * np.pi
    area = width * (np.sin(np.deg2rad(pr["dec_max"])) - np.sin(np.deg2rad(pr["dec_min"])))
    assert area.sum() == pytest.approx(4 * np.pi, rel=1e-12)
    # every sky point lies in exactly one region
    from romancore.skycells import _in_region, _region_boxes

    ra, dec = _random_sky(5000, seed=1)
    count = np.zeros(ra.size, int)
    for box in _region_boxes():
        count += _in_region(ra, dec, box)
    assert np.all(count == 1)
    # no region is wider than ~H on the sky, and names are unique
    names = {f"{round(r) % 360:03d}{'p' if d >= 0 else 'm'}{abs(round(d)):02d}"
             for r, d in zip(pr["ra_tangent"], pr["dec_tangent"], strict=True)}
    assert len(names) == len(pr)


def test_table_dtypes_match_the_skycells_reference(table_270):
    with _open_raw(FIXTURES / "refs/roman_wfi_skycells_fixture.asdf") as af:
        ref = af["roman"]
        assert np.asarray(ref["projection_regions"]).dtype == table_270.projection_regions.dtype
        assert np.asarray(ref["skycells"]).dtype == table_270.skycells.dtype
    assert table_270.skycells.dtype == SKYCELL_DTYPE
    assert table_270.meta == {"nxy_skycell": 5000, "skycell_border_pixels": 100, "pixel_scale": 0.055}


def test_region_270p65(table_270):
    pr = table_270.projection_regions
    assert len(pr) == 1
    r = pr[0]
    assert (r["ra_tangent"], round(r["dec_tangent"])) == (270.0, 65)
    assert r["skycell_start"] == 0 and r["skycell_end"] == len(table_270.skycells)
    assert (r["nx"] - 100) % PITCH == 0 and (r["ny"] - 100) % PITCH == 0
    assert all(n.startswith("270p65x") for n in table_270.skycells["name"])


# ---------------------------------------------------------------- names

def test_names_parse_and_match_grid(table_270):
    sc = table_270.skycells
    r = table_270.projection_regions[0]
    for row in sc[::97]:
        ra, sign, dec, x, y = parse_skycell_name(row["name"])
        assert (ra, sign, dec) == (270, "p", 65)
        assert row["x_tangent"] == pytest.approx(r["x_tangent"] - x * PITCH)
        assert row["y_tangent"] == pytest.approx(r["y_tangent"] - y * PITCH)
    assert len(set(sc["name"])) == len(sc)
    assert parse_skycell_name("000p86x31y31") == (0, "p", 86, 31, 31)
    assert parse_skycell_name("123m07x100y05") == (123, "m", 7, 100, 5)
    for bad in ("r274dp63x31y81", "270p65x4y69", "", "270q65x48y69"):
        with pytest.raises(ParameterError, match="RRRsDDxXXyYY"):
            parse_skycell_name(bad)


# ---------------------------------------------------------------- skycell WCS

def test_skycell_wcs_geometry(table_270):
    sc = table_270.skycells
    row = sc[len(sc) // 2]
    wcs, shape = skycell_wcs(table_270, row["name"])
    assert shape == (5000, 5000)
    assert wcs.bounding_box.bounding_box(order="F") == ((-0.5, 4999.5), (-0.5, 4999.5))
    # centre and corners recorded in the table
    assert _sep_arcsec(*wcs(2499.5, 2499.5), row["ra_center"], row["dec_center"]) < 1e-6
    hi = 4999.5
    for k, (x, y) in enumerate(((-0.5, -0.5), (hi, -0.5), (hi, hi), (-0.5, hi)), start=1):
        ra, dec = wcs(x, y, with_bounding_box=False)
        assert _sep_arcsec(ra, dec, row[f"ra_corn{k}"], row[f"dec_corn{k}"]) < 1e-6
    # 0.055" pixels at the tangent point, x grows eastwards (parity +1), orientat column
    r = table_270.projection_regions[0]
    assert compute_scale(wcs, pixel=(row["x_tangent"], row["y_tangent"])) == pytest.approx(0.055, rel=1e-9)
    pa, parity = local_orientation(wcs, 2499.5, 2499.5)
    assert parity == 1
    assert ((pa - row["orientat"] + 180) % 360 - 180) == pytest.approx(0, abs=1e-4)
    assert wcs(row["x_tangent"], row["y_tangent"], with_bounding_box=False) == pytest.approx(
        (r["ra_tangent"], r["dec_tangent"]), abs=1e-10)
    info = skycell_wcs_info(table_270, row["name"])
    assert info["x0_projection"] == row["x_tangent"] and info["nx"] == 5000
    assert info["pixel_scale"] == pytest.approx(0.055 / 3600)


def test_neighbouring_cells_share_one_grid_with_100px_overlap(table_270):
    names = set(table_270.skycells["name"])
    a, b, c = "270p65x10y10", "270p65x11y10", "270p65x10y11"
    assert {a, b, c} <= names
    wa, _ = skycell_wcs(table_270, a)
    wb, _ = skycell_wcs(table_270, b)
    wc, _ = skycell_wcs(table_270, c)
    k = np.arange(0, 100, 7.0)
    # pixel 4900+k of cell x10 is pixel k of cell x11 (same sky point)
    assert _sep_arcsec(*wa(PITCH + k, 30.0 + k), *wb(k, 30.0 + k)).max() < 1e-6
    assert _sep_arcsec(*wa(30.0 + k, PITCH + k), *wc(30.0 + k, k)).max() < 1e-6


def test_cores_give_each_point_one_owner(table_270):
    r = table_270.projection_regions[0]
    from romancore.skycells import _in_region

    box = tuple(float(r[k]) for k in ("ra_tangent", "dec_tangent", "ra_min", "ra_max", "dec_min", "dec_max"))
    rng = np.random.default_rng(5)
    ra = rng.uniform(box[2], box[3], 3000)
    dec = rng.uniform(box[4], box[5], 3000)
    assert np.all(_in_region(ra, dec, box))
    owners = skycell_owner(table_270, ra, dec)
    assert np.all(owners != "")  # every point of the region lies in a kept cell's core
    # brute force: the owner's core contains the point, and no other cell's core does
    from romancore.skycells import _sky_to_tan

    sc = table_270.skycells
    x0 = r["x_tangent"] - sc["x_tangent"]  # cell pixel (0, 0) in the region frame
    y0 = r["y_tangent"] - sc["y_tangent"]
    lo, hi = CORE_MARGIN - 0.5, NXY_SKYCELL - CORE_MARGIN - 0.5
    px, py = _sky_to_tan(ra, dec, box[0], box[1], 0.0, 0.055)
    for name, X, Y in zip(owners, px + r["x_tangent"], py + r["y_tangent"], strict=True):
        inside = sc["name"][(x0 + lo <= X) & (X < x0 + hi) & (y0 + lo <= Y) & (Y < y0 + hi)]
        assert inside.tolist() == [name]


def test_numpy_tan_matches_gwcs_skycell_wcs(table_wrap):
    from romancore.skycells import _tan_to_sky

    row = table_wrap.skycells[5]
    region = next(r for r in table_wrap.projection_regions
                  if r["skycell_start"] <= 5 < r["skycell_end"])
    wcs, _ = skycell_wcs(table_wrap, row["name"])
    x = np.array([0.0, 1234.0, 4999.0])
    y = np.array([17.0, 4000.0, 2500.0])
    ra, dec = _tan_to_sky(x - row["x_tangent"], y - row["y_tangent"],
                          region["ra_tangent"], region["dec_tangent"], 0.0, 0.055)
    assert _sep_arcsec(ra, dec, *wcs(x, y)).max() < 1e-7


# ---------------------------------------------------------------- lookup

def _brute_force_cells(table, wcs, n=120):
    """Cells (centre within 0.3 deg of the detector centre) containing a dense sample of
    detector pixels: can only miss slivers thinner than the 34-pixel sampling step."""
    g = np.linspace(-0.5, 4087.5, n)
    X, Y = np.meshgrid(g, g)
    ra, dec = wcs(X.ravel(), Y.ravel(), with_bounding_box=False)
    rc, dc = wcs(2043.5, 2043.5)
    near = _sep_arcsec(table.skycells["ra_center"], table.skycells["dec_center"], rc, dc) < 1080
    hits = set()
    for name in table.skycells["name"][near]:
        cw, _ = skycell_wcs(table, name)
        x, y = cw.invert(ra, dec, with_bounding_box=False)
        if np.any((x >= -0.5) & (x < 4999.5) & (y >= -0.5) & (y < 4999.5)):
            hits.add(str(name))
    return hits


def _wfi(det, ra, dec, roll):
    info = dict(wfi_detector_geometry(det), ra_ref=ra, dec_ref=dec, roll_ref=roll)
    return build_wfi_wcs(make_wfi_distortion(det), info)


@pytest.mark.parametrize("ra,dec,roll", [(270.3, 64.9, 20.0), (268.1, 65.7, 233.0)])
def test_find_skycells_matches_brute_force(table_270, ra, dec, roll):
    wcs = _wfi("WFI04", ra, dec, roll)
    found = find_skycells(table_270, footprint(wcs))
    assert len(found) == len(set(found))
    # a 0.125 deg detector touches a few 275" cells (with overlaps)
    assert 4 <= len(found) <= 16
    assert _brute_force_cells(table_270, wcs) == set(found)


def test_find_skycells_across_ra_zero(table_wrap):
    assert len(table_wrap.projection_regions) >= 2
    wcs = _wfi("WFI10", 0.0, 0.0, 75.0)
    fp = footprint(wcs)
    assert (fp[:, 0] > 359).any() and (fp[:, 0] < 1).any()
    found = find_skycells(table_wrap, fp)
    prefixes = {n[:6] for n in found}
    assert prefixes == {"000p02", "000m02"}
    assert len(found) >= 4
    # the reference position lies in some found cell
    ra0, dec0 = wcs(2043.5, 2043.5)
    assert skycell_owner(table_wrap, ra0, dec0)[0] in found


def test_find_skycells_at_the_pole():
    table = make_skycell_table(center=(0.0, 90.0), radius=0.3)
    assert table.projection_regions["dec_max"].max() == 90.0
    wcs = _wfi("WFI08", 45.0, 89.95, 0.0)
    found = find_skycells(table, footprint(wcs))
    assert len(found) >= 1
    cap = [n for n in found if n.startswith("000p90")]
    assert cap, found
    owner = skycell_owner(table, *wcs(2043.5, 2043.5))[0]
    assert owner in found


def test_lookup_errors(table_270):
    with pytest.raises(ParameterError, match="not in the SKYCELLS table"):
        skycell_wcs(table_270, "123p45x01y01")
    with pytest.raises(ParameterError, match="footprint_radec"):
        find_skycells(table_270, np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="center"):
        make_skycell_table(center=(0.0, 0.0))
    # a footprint far away touches nothing
    far = np.array([[10.0, -30.0], [10.1, -30.0], [10.1, -29.9], [10.0, -29.9]])
    assert find_skycells(table_270, far) == []


# ---------------------------------------------------------------- fixtures

def test_skycells_fixture_is_a_placeholder_table():
    """The fixture SKYCELLS file holds one all-zero row in each array (Roman 'maker' output):
    our functions read it as a table and refuse lookups clearly."""
    with _open_raw(FIXTURES / "refs/roman_wfi_skycells_fixture.asdf") as af:
        ref = af["roman"]
        table = {k: np.asarray(ref[k]) for k in ("projection_regions", "skycells")}
        table["meta"] = dict(ref["meta"])
    assert table["skycells"]["name"].tolist() == [""]
    with pytest.raises(ParameterError, match="not in the SKYCELLS table"):
        skycell_wcs(table, "270p65x48y69")
    fp = np.array([[270.0, 65.0], [270.1, 65.0], [270.1, 65.1]])
    assert find_skycells(table, fp) == []


def test_coadd_fixture_skycell_name_and_wcs():
    """The fixture coadd is named for skycell 270p65x48y69 but carries the maker's WCS (TAN at
    (30, 45)) and skycell_name '?': there is no skycell WCS to compare with. Its name parses, its
    region 270p65 exists in our tessellation, and its grid is not that skycell's."""
    name = "r00001_p_v01001001001_270p65x48y69_f158_coadd.asdf"
    cell = name.split("_")[3]
    assert parse_skycell_name(cell) == (270, "p", 65, 48, 69)
    with _open_raw(FIXTURES / name) as af:
        meta = af["roman"]["meta"]
        assert meta["wcsinfo"]["skycell_name"] == "?"
        ra, dec = meta["wcs"](31.5, 31.5)
    pr = all_projection_regions()
    hit = pr[(pr["ra_tangent"] == 270.0) & (np.round(pr["dec_tangent"]) == 65)]
    assert len(hit) == 1
    assert _sep_arcsec(ra, dec, 270.0, 65.0) > 3600 * 10  # the maker WCS is elsewhere
