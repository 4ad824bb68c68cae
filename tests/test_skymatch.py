"""Sky statistics and sky matching: the seed's example tables, statistics oracles, geometry."""

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from romancore import dq as dqflags
from romancore.algorithms import skymatch as sm
from romancore.errors import ParameterError

# --------------------------------------------------------------------------- helpers

PIXSCALE = 0.11 / 3600.0  # deg per pixel (Roman WFI)
SIZE = 40                 # image side in pixels
STEP = 32                 # tile step: neighbours overlap by 8 pixels


def _tan_wcs(ox, oy):
    """TAN WCS of a SIZE x SIZE image whose pixel (0, 0) sits at (ox, oy) of a global frame."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [30.0, -20.0]
    w.wcs.crpix = [100.0 - ox, 100.0 - oy]
    w.wcs.cdelt = [-PIXSCALE, PIXSCALE]
    return w


def _image(ox, oy, value, *, rng=None, noise=0.0, stepsize=None, dq=None, id=None):
    w = _tan_wcs(ox, oy)
    data = np.full((SIZE, SIZE), value, dtype=np.float32)
    if noise:
        data = data + rng.normal(0.0, noise, data.shape).astype(np.float32)
    return sm.SkyImage.from_wcs(
        data,
        pixel_to_world=lambda x, y: w.all_pix2world(x, y, 0),
        world_to_pixel=lambda ra, dec: w.all_world2pix(ra, dec, 0),
        dq=dq, stepsize=stepsize, id=id,
    )


def _levels(images, method):
    return sm.match_sky(images, skymethod=method, match_down=True).levels


# --------------------------------------------------------------------------- seed tables

TABLE1 = {  # 2x3 mosaic, every image overlaps its neighbours
    "sky": [100, 120, 105, 110, 105, 115],
    "local": [100, 120, 105, 110, 105, 115],
    "global": [100] * 6,
    "match": [0, 20, 5, 10, 5, 15],
    "global+match": [100, 120, 105, 110, 105, 115],
}

TABLE2 = {  # a 2x2 mosaic and, far away, a row of 3 overlapping images
    "sky": [100, 120, 105, 110, 95, 90, 100],
    "local": [100, 120, 105, 110, 95, 90, 100],
    "global": [90] * 7,
    "match": [0, 20, 5, 10, 8.75, 3.75, 13.75],
    "global+match": [86.25, 106.25, 91.25, 96.25, 95, 90, 100],
}


def _table1_images(**kw):
    offsets = [(c * STEP, r * STEP) for r in range(2) for c in range(3)]
    return [_image(ox, oy, s, **kw) for (ox, oy), s in zip(offsets, TABLE1["sky"], strict=True)]


def _table2_images(**kw):
    offsets = [(0, 0), (STEP, 0), (0, STEP), (STEP, STEP),
               (300, 0), (300 + STEP, 0), (300 + 2 * STEP, 0)]
    return [_image(ox, oy, s, **kw) for (ox, oy), s in zip(offsets, TABLE2["sky"], strict=True)]


@pytest.mark.parametrize("method,skystat", [
    ("local", "mode"), ("global", "mode"), ("match", "mode"), ("global+match", "mode"),
    ("global+match", "midpt"), ("global+match", "mean"), ("global+match", "median"),
])
def test_seed_table_1(method, skystat):
    images = _table1_images()
    res = sm.match_sky(images, skymethod=method, skystat=skystat)
    np.testing.assert_allclose(res.levels, TABLE1[method], rtol=0, atol=1e-9)
    assert res.valid.all()
    assert res.background(1) == {"level": pytest.approx(TABLE1[method][1], abs=1e-9),
                                 "method": method, "subtracted": False}


@pytest.mark.parametrize("method", ["local", "global", "match", "global+match"])
def test_seed_table_2(method):
    images = _table2_images()
    res = sm.match_sky(images, skymethod=method)
    np.testing.assert_allclose(res.levels, TABLE2[method], rtol=0, atol=1e-9)
    assert res.valid.all()


def test_table_1_with_stepsize_polygons():
    images = _table1_images(stepsize=20)
    assert len(next(images[0].footprint.to_radec())[0]) == 9  # 8 vertices, closed
    np.testing.assert_allclose(_levels(images, "match"), TABLE1["match"], atol=1e-9)


def test_match_pairs_use_the_overlap_pixels():
    images = _table1_images()
    res = sm.match_sky(images, skymethod="match")
    pairs = {(i, j): (ni, nj) for i, j, _, _, ni, nj in res.pairs}
    # side neighbours share an 8 x 40 strip, diagonal neighbours an 8 x 8 corner
    assert pairs[(0, 1)] == (8 * SIZE, 8 * SIZE)
    assert pairs[(0, 3)] == (8 * SIZE, 8 * SIZE)
    assert pairs[(0, 4)] == (64, 64)
    assert (0, 2) not in pairs and (0, 5) not in pairs


def test_match_up_and_subtract():
    images = _table1_images()
    res = sm.match_sky(images, skymethod="match", match_down=False, subtract=True)
    np.testing.assert_allclose(res.levels, np.array(TABLE1["sky"]) - 120.0, atol=1e-9)
    for im in images:  # every image now sits at the highest sky, 120
        np.testing.assert_allclose(im.data, 120.0, atol=1e-4)
    assert res.background(0)["subtracted"] is True


def test_match_recovers_offsets_in_noise():
    rng = np.random.default_rng(5)
    images = _table1_images(rng=rng, noise=2.0)
    res = sm.match_sky(images, skymethod="match", skystat="mean")
    # the overlap strips hold 320 pixels: offsets good to a few 0.1
    np.testing.assert_allclose(res.levels, TABLE1["match"], atol=0.6)


def test_isolated_image_is_not_valid():
    images = _table1_images()[:2] + [_image(1000, 1000, 50.0)]
    res = sm.match_sky(images, skymethod="match")
    np.testing.assert_allclose(res.levels, [0.0, 20.0, 0.0], atol=1e-9)
    np.testing.assert_array_equal(res.valid, [True, True, False])
    assert res.cal_step(2) == "SKIPPED" and res.cal_step(0) == "COMPLETE"
    # global+match gives the isolated image the global level
    res = sm.match_sky(images, skymethod="global+match")
    np.testing.assert_allclose(res.levels, [50.0, 70.0, 50.0], atol=1e-9)


def test_dqbits_mask_bad_pixels():
    dq = np.zeros((SIZE, SIZE), np.uint32)
    dq[:20] = dqflags.pixel.DO_NOT_USE
    dq[20:25] = dqflags.pixel.NON_SCIENCE
    im = _image(0, 0, 7.0, dq=dq)
    im.data[:25] = 1e6  # bad values in the flagged rows must not count
    value, npix = sm.sky_statistic(im.data[im.usable()], "mean")
    assert value == 7.0 and npix == 15 * SIZE
    im2 = sm.SkyImage.from_wcs(np.asarray(im.data), lambda x, y: (x * 1e-4, y * 1e-4),
                               lambda r, d: (r / 1e-4, d / 1e-4), dq=dq, dqbits="~DO_NOT_USE")
    assert im2.usable().sum() == 20 * SIZE


# --------------------------------------------------------------------------- statistics


def _clip_oracle(values, lower, upper, nclip, lsig, usig):
    v = [float(x) for x in np.asarray(values, np.float32).ravel() if math.isfinite(x)]
    if lower is not None:
        v = [x for x in v if x >= lower]
    if upper is not None:
        v = [x for x in v if x <= upper]
    lo = lower if lower is not None else min(v)
    hi = upper if upper is not None else max(v)
    for it in range(nclip + 1):
        kept = [x for x in v if lo <= x <= hi]
        n = len(kept)
        mean = sum(kept) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in kept) / (n - 1)) if n > 1 else 0.0
        if it < nclip:
            lo = mean - lsig * std if lower is None else max(lower, mean - lsig * std)
            hi = mean + usig * std if upper is None else min(upper, mean + usig * std)
    return kept, mean, std


def _hist_oracle(kept, std, binwidth):
    vmin, vmax = min(kept), max(kept)
    h = binwidth * std
    eps = 10 * float(np.finfo(np.float32).eps)
    if h < eps or vmax - vmin < eps or h > vmax - vmin:
        return vmin, h, [len(kept)]
    nbins = int((vmax - vmin) / h) + 1
    dz = (vmax - vmin) / (nbins - 1)
    hist = [0] * nbins
    for x in kept:
        k = int(math.floor((x - vmin) / dz))
        if 0 <= k < nbins:
            hist[k] += 1
    return vmin, h, hist


def _mode_oracle(vmin, h, hist):
    nb = len(hist)
    if nb == 1:
        return vmin + 0.5 * h
    if nb == 2:
        return vmin + (0.5 if hist[0] > hist[1] else 1.5 if hist[1] > hist[0] else 1.0) * h
    p = hist.index(max(hist))
    if p == 0:
        return vmin + 0.5 * h
    if p == nb - 1:
        return vmin + (nb - 0.5) * h
    d1, d2 = hist[p] - hist[p - 1], hist[p] - hist[p + 1]
    if d1 + d2 == 0:
        return vmin + (p + 0.5) * h
    return vmin + (p + 0.5 + 0.5 * (d1 - d2) / (d1 + d2)) * h


def _midpt_oracle(vmin, h, hist):
    total = sum(hist)
    cdf, run = [], 0
    for c in hist:
        run += c
        cdf.append(float(np.float32(run / total)))
    lo = next(i for i, c in enumerate(cdf) if c >= 0.5)
    if lo == 0:
        return vmin + 0.5 / cdf[0] * h
    if cdf[lo] == cdf[lo - 1]:
        return vmin + lo * h
    return vmin + lo * h + (0.5 - cdf[lo - 1]) / (cdf[lo] - cdf[lo - 1]) * h


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lower,upper", [(None, None), (5.0, None), (None, 14.0)])
def test_statistics_match_oracles(seed, lower, upper):
    rng = np.random.default_rng(seed)
    values = rng.normal(10.0, 2.0, 3000)
    values[:40] = rng.uniform(30, 300, 40)   # sources that clipping must remove
    values[40:45] = np.nan
    kept, mean, std = _clip_oracle(values, lower, upper, 5, 4.0, 4.0)
    vmin, h, hist = _hist_oracle(kept, std, 0.1)
    kw = dict(lower=lower, upper=upper)
    got, npix = sm.sky_statistic(values, "mean", **kw)
    assert npix == len(kept)
    assert got == pytest.approx(mean, rel=1e-12)
    assert sm.sky_statistic(values, "median", **kw)[0] == pytest.approx(np.median(kept),
                                                                         rel=1e-12)
    assert sm.sky_statistic(values, "mode", **kw)[0] == pytest.approx(
        _mode_oracle(vmin, h, hist), rel=1e-9)
    assert sm.sky_statistic(values, "midpt", **kw)[0] == pytest.approx(
        _midpt_oracle(vmin, h, hist), rel=1e-9)


def test_statistics_find_the_sky_under_sources():
    """Gaussian sky (10 ± 2) with 1 % bright source pixels: every statistic finds the sky."""
    rng = np.random.default_rng(11)
    values = rng.normal(10.0, 2.0, 200_000)
    values[:2000] += rng.exponential(50.0, 2000)
    for stat in sm.SKYSTATS:
        value, npix = sm.sky_statistic(values, stat)
        # mean/median ~0.01; midpt carries the reference's binning bias
        # (positions in units of h, not of the bin width); the mode of 0.1 σ bins
        # wanders by a few bins over the flat top of the histogram (~0.2 σ)
        tol = 0.5 if stat == "mode" else 0.2
        assert abs(value - 10.0) < tol, (stat, value)
        assert 0.98 * values.size < npix < values.size


def test_statistics_hand_computed():
    # constant: one bin, every statistic is the value itself
    for stat in sm.SKYSTATS:
        assert sm.sky_statistic(np.full(10, 3.5), stat) == (3.5, 10)
    # nclip=0, five values: mean 3, sample std sqrt(2.5)
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert sm.sky_statistic(v, "mean", nclip=0) == (3.0, 5)
    assert sm.sky_statistic(v, "median", nclip=0) == (3.0, 5)
    assert sm.sky_statistic(np.array([4.0, 1.0, 10.0, 2.0]), "median", nclip=0) == (3.0, 4)
    # binwidth so wide that h > range -> one bin -> min + h/2
    h = 10.0 * math.sqrt(2.5)
    assert sm.sky_statistic(v, "mode", nclip=0, binwidth=10.0)[0] == pytest.approx(1 + 0.5 * h)
    # lower/upper limits cut the values first
    assert sm.sky_statistic(v, "mean", lower=2.0, upper=4.0, nclip=0) == (3.0, 3)
    # nothing usable -> None
    assert sm.sky_statistic(np.array([np.nan, np.inf]), "mode") == (None, 0)
    assert sm.sky_statistic(v, "mean", lower=10.0) == (None, 0)


@pytest.mark.parametrize("kw,msg", [
    ({"skystat": "max"}, "skystat='max'"),
    ({"nclip": -1}, "nclip=-1"),
    ({"lsigma": -2.0}, "lsigma=-2.0"),
    ({"binwidth": float("nan")}, "binwidth=nan"),
    ({"lower": 5.0, "upper": 1.0}, "lower=5.0 must not exceed upper=1.0"),
])
def test_statistic_bad_parameters(kw, msg):
    args = {"skystat": "mode", **kw}
    with pytest.raises(ParameterError, match=msg):
        sm.sky_statistic(np.ones(4), **args)


def test_match_sky_bad_parameters():
    images = _table1_images()[:2]
    with pytest.raises(ParameterError, match="skymethod='best'"):
        sm.match_sky(images, skymethod="best")
    with pytest.raises(ParameterError, match="match_down='yes'"):
        sm.match_sky(images, match_down="yes")
    with pytest.raises(ParameterError, match="empty"):
        sm.match_sky([])
    with pytest.raises(ParameterError, match="expected a SkyImage"):
        sm.match_sky([np.zeros((3, 3))])
    with pytest.raises(ParameterError, match="stepsize=0"):
        sm.footprint_polygon((4, 4), lambda x, y: (x, y), stepsize=0)


# --------------------------------------------------------------------------- geometry


def _inside_oracle(px, py, xs, ys):
    """Even-odd ray casting for one point (half-open in y, as the scan fill)."""
    inside = False
    n = len(xs)
    for k in range(n):
        xa, ya, xb, yb = xs[k], ys[k], xs[(k + 1) % n], ys[(k + 1) % n]
        if (ya <= py < yb) or (yb <= py < ya):
            xc = xa + (py - ya) * (xb - xa) / (yb - ya)
            if xc <= px:
                inside = not inside
    return inside


@pytest.mark.parametrize("poly", [
    ([2.3, 17.8, 9.1], [1.2, 4.4, 15.7]),                        # triangle
    ([-3.0, 25.0, 25.0, -3.0], [-2.0, -2.0, 30.0, 30.0]),        # larger than the image
    ([1.5, 18.5, 18.5, 10.2, 1.5], [1.5, 1.5, 12.5, 5.5, 12.5]),  # concave
])
def test_polygon_pixel_mask_matches_ray_casting(poly):
    xs, ys = poly
    shape = (16, 20)
    got = sm.polygon_pixel_mask(shape, xs, ys)
    want = np.zeros(shape, bool)
    for y in range(shape[0]):
        for x in range(shape[1]):
            # a centre exactly on a right-hand edge is inside for the scan fill
            want[y, x] = _inside_oracle(x, y, xs, ys) or _inside_oracle(x - 1e-9, y, xs, ys)
    np.testing.assert_array_equal(got, want)


def test_footprint_covers_pixel_edges():
    im = _image(0, 0, 1.0)
    ((ra, dec),) = list(im.footprint.to_radec())
    x, y = im.world_to_pixel(ra, dec)
    np.testing.assert_allclose(sorted(set(np.round(x, 6))), [-0.5, SIZE - 0.5], atol=1e-6)
    np.testing.assert_allclose(sorted(set(np.round(y, 6))), [-0.5, SIZE - 0.5], atol=1e-6)
    area_sr = im.footprint.area()
    assert area_sr == pytest.approx((SIZE * math.radians(PIXSCALE)) ** 2, rel=1e-4)


def _tan_gwcs(ox, oy):
    """The same TAN frame as ``_tan_wcs`` built as a gwcs pipeline."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gw

    transform = (
        (models.Shift(ox - 99.0) & models.Shift(oy - 99.0))
        | (models.Scale(-PIXSCALE) & models.Scale(PIXSCALE))
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(30.0, -20.0, 180.0)
    )
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    return gw.WCS([(detector, transform), (sky, None)])


def test_table_1_with_gwcs_callables():
    """The way the step builds SkyImages from a model's gwcs."""
    offsets = [(c * STEP, r * STEP) for r in range(2) for c in range(3)]
    images = []
    for (ox, oy), value in zip(offsets, TABLE1["sky"], strict=True):
        w = _tan_gwcs(ox, oy)
        images.append(sm.SkyImage.from_wcs(
            np.full((SIZE, SIZE), value, np.float32),
            pixel_to_world=lambda x, y, w=w: w(x, y, with_bounding_box=False),
            world_to_pixel=lambda ra, dec, w=w: w.invert(ra, dec, with_bounding_box=False),
            dq=np.zeros((SIZE, SIZE), np.uint32)))
    res = sm.match_sky(images, skymethod="global+match")
    np.testing.assert_allclose(res.levels, TABLE1["global+match"], atol=1e-9)
    assert [p[4] for p in res.pairs if p[:2] == (0, 1)] == [8 * SIZE]


# --------------------------------------------------------------------------- kernels


def _numpy_stat_oracle(values, stat, lower=None, upper=None, nclip=5, lsig=4.0, usig=4.0,
                       binwidth=0.1):
    """The statistic with whole-array numpy passes (mean, two-pass std, bincount)."""
    v = np.asarray(values, np.float32).ravel()
    v = v[np.isfinite(v)].astype(np.float64)
    lo = lower if lower is not None else -np.inf
    hi = upper if upper is not None else np.inf
    for it in range(nclip + 1):
        sel = v[(v >= lo) & (v <= hi)]
        if sel.size == 0:
            return None, 0
        mean = sel.mean()
        std = sel.std(ddof=1) if sel.size > 1 else 0.0
        if it < nclip:
            lo = max(mean - lsig * std, -np.inf if lower is None else lower)
            hi = min(mean + usig * std, np.inf if upper is None else upper)
    if stat == "mean":
        return float(mean), sel.size
    if stat == "median":
        return float(np.median(sel)), sel.size
    vmin, vmax, h = sel.min(), sel.max(), binwidth * std
    eps = 10 * float(np.finfo(np.float32).eps)
    if h < eps or vmax - vmin < eps or h > vmax - vmin:
        hist = [sel.size]
    else:
        nbins = int((vmax - vmin) / h) + 1
        idx = np.floor((sel - vmin) / ((vmax - vmin) / (nbins - 1))).astype(np.int64)
        hist = list(np.bincount(idx[(idx >= 0) & (idx < nbins)], minlength=nbins))
    oracle = _mode_oracle if stat == "mode" else _midpt_oracle
    return oracle(float(vmin), float(h), hist), sel.size


def _sky_values(seed, n, loc=10.0, scale=1.0):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal(n) * scale + loc).astype(np.float32)
    k = n // 100
    v[rng.choice(n, k, replace=False)] += rng.exponential(50.0 * scale, k).astype(np.float32)
    v[rng.choice(n, 20, replace=False)] = np.nan
    v[rng.choice(n, 5, replace=False)] = np.inf
    return v


@pytest.mark.parametrize("stat", sm.SKYSTATS)
@pytest.mark.parametrize("seed,loc,scale,first", [
    (0, 10.0, 1.0, None),      # the benchmark mix: N(10, 1) and 1 % sources
    (1, 1.0e4, 0.01, None),    # large level, tiny noise: ill-conditioned sums
    (2, 0.0, 3.0, None),       # sky around zero
    (3, 10.0, 1.0, 1.0e6),     # the first value (the first shift) is a far outlier
])
def test_statistics_match_numpy_on_large_sets(stat, seed, loc, scale, first):
    values = _sky_values(seed, 300_000, loc, scale)  # above the kernels' threading threshold
    if first is not None:
        values[0] = first
    want, wn = _numpy_stat_oracle(values, stat)
    got, n = sm.sky_statistic(values, stat)
    assert n == wn
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12 * scale)


def _sel_oracle(values, mask, lo, hi):
    x = np.asarray(values, np.float32).astype(np.float64)
    keep = (x >= lo) & (x <= hi)
    if mask.size:
        keep &= mask != 0
    return x[keep]


def _kernel_case(seed, n):
    rng = np.random.default_rng(seed)
    v = rng.normal(5.0, 2.0, n).astype(np.float32)
    v[rng.choice(n, n // 50, replace=False)] = np.nan
    v[rng.choice(n, min(n, 3), replace=False)] = -np.inf
    mask = (rng.random(n) > 0.2).astype(np.uint8)
    return v, mask


@pytest.mark.parametrize("n", [0, 1, 7, 2047, 2049, 200_003])
@pytest.mark.parametrize("use_mask", [False, True])
def test_clip_moments_kernel_matches_oracle(n, use_mask):
    from romancore._ext import skystats as ks
    v, mask = _kernel_case(n, n)
    m = mask if use_mask else np.empty(0, np.uint8)
    big = float(np.finfo(np.float64).max)
    for lo, hi, shift in [(-big, big, 5.0), (3.0, 6.5, float("nan")), (1.0, 2.0, -40.0),
                          (50.0, 60.0, 0.0)]:
        sel = _sel_oracle(v, m, lo, hi)
        cnt, s1, s2, vmin, vmax, used = ks.clip_moments(v, m, lo, hi, shift)
        assert cnt == sel.size
        if math.isnan(shift):
            assert used == (sel[0] if sel.size else 0.0)
        else:
            assert used == shift
        d = sel - used
        assert s1 == pytest.approx(math.fsum(d), rel=1e-13, abs=1e-9)
        assert s2 == pytest.approx(math.fsum(d * d), rel=1e-13, abs=1e-9)
        if sel.size:
            assert (vmin, vmax) == (sel.min(), sel.max())
        else:
            assert math.isnan(vmin) and math.isnan(vmax)
        no_range = ks.clip_moments(v, m, lo, hi, shift, False)
        assert no_range[:3] == (cnt, s1, s2) and math.isnan(no_range[3])


@pytest.mark.parametrize("n", [5, 3000, 200_003])
@pytest.mark.parametrize("use_mask", [False, True])
def test_histogram_and_select_kernels_match_oracle(n, use_mask):
    from romancore._ext import skystats as ks
    v, mask = _kernel_case(100 + n, n)
    m = mask if use_mask else np.empty(0, np.uint8)
    lo, hi = 1.0, 9.0
    sel = _sel_oracle(v, m, lo, hi)
    np.testing.assert_array_equal(ks.select(v, m, lo, hi, sel.size), sel.astype(np.float32))
    with pytest.raises(ValueError, match="count"):
        ks.select(v, m, lo, hi, sel.size + 1)
    vmin = float(sel.min())
    for nbins in (1, 2, 37, 5000):
        dz = (float(sel.max()) - vmin) / max(nbins - 1, 1)
        idx = np.floor((sel - vmin) / dz).astype(np.int64)
        want = np.bincount(idx[(idx >= 0) & (idx < nbins)], minlength=nbins)
        np.testing.assert_array_equal(ks.histogram(v, m, lo, hi, vmin, dz, nbins), want)


def test_histogram_kernel_bins_values_on_bin_edges_like_division():
    """Values at (and one float32 step around) bin edges: the bin of the IEEE division."""
    from romancore._ext import skystats as ks
    rng = np.random.default_rng(9)
    vmin = 0.1
    for dz in rng.uniform(1e-3, 0.7, 40):
        edges = (vmin + dz * np.arange(64)).astype(np.float32)
        v = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)),
                            np.nextafter(edges, np.float32(np.inf))])
        x = v.astype(np.float64)
        idx = np.floor((x - vmin) / dz).astype(np.int64)
        want = np.bincount(idx[(idx >= 0) & (idx < 60)], minlength=60)
        got = ks.histogram(v, np.empty(0, np.uint8), -1e300, 1e300, vmin, float(dz), 60)
        np.testing.assert_array_equal(got, want)


def test_kernels_reject_a_mask_of_another_length():
    from romancore._ext import skystats as ks
    v = np.ones(10, np.float32)
    for call in (lambda m: ks.clip_moments(v, m, 0.0, 2.0, 1.0),
                 lambda m: ks.histogram(v, m, 0.0, 2.0, 0.0, 0.5, 4),
                 lambda m: ks.select(v, m, 0.0, 2.0, 10)):
        with pytest.raises(ValueError, match="mask has 9 elements"):
            call(np.ones(9, np.uint8))


@pytest.mark.parametrize("stat", sm.SKYSTATS)
def test_statistic_with_mask_equals_statistic_of_masked_values(stat):
    """``mask=`` (no gathered copy) gives the statistic of ``data[mask]``."""
    rng = np.random.default_rng(21)
    data = rng.normal(10.0, 2.0, (120, 150)).astype(np.float32)
    data[rng.random(data.shape) < 0.01] += 80.0
    mask = rng.random(data.shape) > 0.3
    # the same values, summed in other chunks: equal to rounding
    want, wn = sm.sky_statistic(data[mask], stat)
    for m in (mask, mask.astype(np.uint8)):
        got, n = sm.sky_statistic(data, stat, mask=m)
        assert n == wn and got == pytest.approx(want, rel=1e-13)
    with pytest.raises(ParameterError, match=r"mask has shape \(150, 120\)"):
        sm.sky_statistic(data, stat, mask=mask.T)


# --------------------------------------------------------------------------- deferred pixels

@pytest.mark.parametrize("method", ["local", "global", "match", "global+match"])
def test_deferred_images_read_one_image_at_a_time(method):
    """Images whose pixels come from a loader give the same levels as in-memory images,
    and each image's pixels are dropped before the next image is read."""
    import gc
    import weakref

    rng = np.random.default_rng(17)
    offsets = [(c * STEP, r * STEP) for r in range(2) for c in range(3)]
    eager = [_image(ox, oy, v, rng=rng, noise=2.0) for (ox, oy), v in zip(offsets, TABLE1["sky"],
                                                                            strict=True)]
    alive, calls = [], []

    def loader(k):
        def load():
            gc.collect()
            assert all(ref() is None for ref in alive), "an earlier image's pixels are still held"
            calls.append(k)
            data = np.array(eager[k].data)
            mask = np.isfinite(data)
            alive.append(weakref.ref(data))
            return data, mask
        return load

    deferred = []
    for k, (ox, oy) in enumerate(offsets):
        w = _tan_wcs(ox, oy)
        deferred.append(sm.SkyImage.deferred(
            (SIZE, SIZE), loader(k), lambda x, y, w=w: w.all_pix2world(x, y, 0),
            lambda ra, dec, w=w: w.all_world2pix(ra, dec, 0), id=k))
    want = sm.match_sky(eager, skymethod=method)
    got = sm.match_sky(deferred, skymethod=method)
    np.testing.assert_array_equal(got.levels, want.levels)
    assert got.pairs == want.pairs
    assert sorted(calls) == list(range(len(offsets)))  # every image read exactly once
    with pytest.raises(ParameterError, match="deferred"):
        sm.match_sky(deferred, skymethod=method, subtract=True)


def test_deferred_image_bad_loader_output():
    w = _tan_wcs(0, 0)
    im = sm.SkyImage.deferred((SIZE, SIZE), lambda: (np.zeros((3, 3), np.float32), None),
                              lambda x, y: w.all_pix2world(x, y, 0),
                              lambda ra, dec: w.all_world2pix(ra, dec, 0), id="bad")
    with pytest.raises(ParameterError, match="loader returned data of shape"):
        sm.match_sky([im], skymethod="local")
    with pytest.raises(ParameterError, match="shape"):
        sm.SkyImage.deferred((SIZE,), lambda: None, None, None)
