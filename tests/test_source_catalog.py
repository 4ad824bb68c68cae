"""Tests of romancore.algorithms.source_catalog on simulated scenes with known truth."""

import math

import numpy as np
import pytest
from astropy.modeling import models
from scipy.spatial import cKDTree

from romancore.algorithms import source_catalog as sc
from romancore.dq import pixel
from romancore.errors import ParameterError

SCALE = 0.11  # arcsec / pixel
PIXEL_AREA = (SCALE / 206264.80624709636) ** 2  # sr
FWHM = 2.0
SIG = FWHM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
NOISE = 0.05  # DN/s per pixel
# Detection settings of these tests: the defaults (snr_threshold=3 on the unconvolved
# RMS, npixels=25) only find FWHM-2 px stars much brighter than S/N 10.
DETECT = dict(bkg_boxsize=64, snr_threshold=1.5, npixels=5)


def tan_wcs(ra0=30.0, dec0=-20.0, scale=SCALE, crpix=(160.0, 160.0)):
    """A plain TAN pixel->sky model (degrees), rotated 30 degrees."""
    th = math.radians(30.0)
    s = scale / 3600.0
    mat = np.array([[-s * math.cos(th), s * math.sin(th)], [s * math.sin(th), s * math.cos(th)]])
    return (
        (models.Shift(-crpix[0]) & models.Shift(-crpix[1]))
        | models.AffineTransformation2D(matrix=mat)
        | models.Pix2Sky_Gnomonic()
        | models.RotateNative2Celestial(ra0, dec0, 180.0)
    )


def optimal_snr_flux(snr):
    """Total flux of a Gaussian star with optimal-extraction S/N ``snr`` (background noise)."""
    return snr * NOISE * math.sqrt(4.0 * math.pi) * SIG


def add_gaussian(img, x0, y0, flux, sigma):
    ny, nx = img.shape
    y, x = np.mgrid[:ny, :nx]
    img += flux / (2 * np.pi * sigma**2) * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))


def make_scene(seed=42, n=80, shape=(320, 320), min_sep=26.0, snr_range=(10.0, 1000.0)):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pos = []
    for _ in range(20000):
        if len(pos) >= n:
            break
        p = rng.uniform(20, [nx - 20, ny - 20])
        if all(math.hypot(*(p - q)) > min_sep for q in pos):
            pos.append(p)
    pos = np.array(pos)
    snr = 10 ** rng.uniform(*np.log10(snr_range), len(pos))
    flux = optimal_snr_flux(snr)
    y, x = np.mgrid[:ny, :nx]
    img = 0.8 + 4e-4 * x - 2e-4 * y + rng.normal(0.0, NOISE, shape)
    for (px, py), f in zip(pos, flux, strict=True):
        add_gaussian(img, px, py, f, SIG)
    err = np.full(shape, NOISE, np.float32)
    return img.astype(np.float32), err, pos, flux, snr


@pytest.fixture(scope="module")
def scene():
    img, err, pos, flux, snr = make_scene()
    res = sc.make_source_catalog(
        img, err, photmjsr=0.3, pixel_area=PIXEL_AREA, wcs=tan_wcs(), **DETECT
    )
    return img, err, pos, flux, snr, res


def _match(cat, pos, xcol="x_centroid_win", ycol="y_centroid_win"):
    d, i = cKDTree(np.column_stack([cat[xcol], cat[ycol]])).query(pos)
    return d, i, d < 1.5


def test_point_sources_recovered_with_flux_and_position(scene):
    img, err, pos, flux, snr, res = scene
    cat = res.catalog
    d, i, ok = _match(cat, pos)
    assert ok[snr > 10].mean() >= 0.95
    truth_njy = flux[ok] * 0.3 * PIXEL_AREA * 1e15
    # A Gaussian of FWHM 2 px has 1 - exp(-r^2 / 2 sigma^2) = 0.99988 of its flux inside
    # the 0.4" (3.64 px) aperture: compared without aperture correction.
    ratio04 = np.asarray(cat["aper04_flux"])[i[ok]] / truth_njy
    assert abs(np.median(ratio04) - 1) < 0.02
    ratio_kron = np.asarray(cat["kron_flux"])[i[ok]] / truth_njy
    assert abs(np.median(ratio_kron) - 1) < 0.02
    assert np.median(d[ok]) < 0.05
    dx = np.asarray(cat["x_centroid"])[i[ok]] - pos[ok, 0]
    assert np.median(np.abs(dx)) < 0.05
    # no spurious detections in pure noise between the stars
    assert len(cat) <= len(pos) + 2


def test_flux_errors_are_calibrated(scene):
    img, err, pos, flux, snr, res = scene
    cat = res.catalog
    d, i, ok = _match(cat, pos)
    truth_njy = flux[ok] * 0.3 * PIXEL_AREA * 1e15
    pull = (np.asarray(cat["aper04_flux"])[i[ok]] - truth_njy) / np.asarray(cat["aper04_flux_err"])[i[ok]]
    # noise-only error, background from the annulus adds a little
    assert 0.7 < np.std(pull) < 1.4
    assert abs(np.median(pull)) < 0.5


def test_columns_units_and_segmentation(scene):
    img, err, pos, flux, snr, res = scene
    cat = res.catalog
    assert cat.colnames == [c[0] for c in sc.catalog_columns()]
    assert res.segmentation.dtype == np.uint32
    assert res.segmentation.shape == img.shape
    assert set(np.unique(res.segmentation)) - {0} == set(np.asarray(cat["label"]))
    assert res.detection_image.dtype == np.float32
    assert str(cat["aper04_flux"].unit) == "nJy"
    assert res.meta["n_sources"] == len(cat)
    assert res.meta["pixel_scale"] == pytest.approx(SCALE, rel=1e-6)
    assert res.meta["to_njy"] == pytest.approx(0.3 * PIXEL_AREA * 1e15)
    good = np.asarray(cat["kron_flux"]) > 0
    np.testing.assert_allclose(
        np.asarray(cat["kron_abmag"])[good], 31.4 - 2.5 * np.log10(np.asarray(cat["kron_flux"])[good])
    )
    # bright sources: sky position is the WCS at the windowed centroid
    ra, dec = tan_wcs()(np.asarray(cat["x_centroid_win"]), np.asarray(cat["y_centroid_win"]))
    np.testing.assert_allclose(cat["ra"], ra, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cat["dec"], dec, rtol=0, atol=1e-10)
    # point sources: DAOFIND-like shape statistics of round stars, not extended
    assert 0.3 < np.median(cat["sharpness"]) < 1.0
    assert abs(np.median(cat["roundness1"])) < 0.1
    assert np.mean(cat["is_extended"]) < 0.05
    # round sources: tiny ellipticity; fwhm of the detection image ~ hypot(2, 2) px
    assert np.median(cat["ellipticity"]) < 0.1
    assert np.median(cat["fwhm"]) / SCALE == pytest.approx(math.hypot(FWHM, 2.0), rel=0.1)
    # the local background (nJy/arcsec^2) of a background-subtracted image is ~0
    assert abs(np.median(cat["aper_bkg_flux"])) < 3 * np.median(cat["aper_bkg_flux_err"]) + 1e-9


def test_empty_image_gives_empty_catalog_with_all_columns():
    rng = np.random.default_rng(3)
    img = (1.0 + rng.normal(0, NOISE, (128, 128))).astype(np.float32)
    res = sc.make_source_catalog(img, np.full_like(img, NOISE), photmjsr=1.0, pixel_area=PIXEL_AREA)
    assert len(res.catalog) == 0
    assert res.catalog.colnames == [c[0] for c in sc.catalog_columns()]
    assert res.catalog["label"].dtype == np.uint32
    assert not res.segmentation.any()
    assert res.meta["n_sources"] == 0
    assert sc.tweakreg_catalog(res.catalog).colnames[:3] == ["label", "x", "y"]


def test_l3_mjysr_with_weight_map_matches_l2_fluxes():
    img, err, pos, flux, snr = make_scene(seed=7, n=20, shape=(200, 200), snr_range=(50, 500))
    photmjsr = 0.25
    l2 = sc.make_source_catalog(img, err, photmjsr=photmjsr, pixel_area=PIXEL_AREA, **DETECT)
    weight = np.ones(img.shape, np.float32)
    l3 = sc.make_source_catalog(
        img * photmjsr, err * photmjsr, data_unit="MJy/sr", weight=weight,
        pixel_area=PIXEL_AREA, **DETECT,
    )
    assert len(l2.catalog) == len(l3.catalog) > 0
    np.testing.assert_allclose(l3.catalog["aper08_flux"], l2.catalog["aper08_flux"], rtol=1e-4)
    np.testing.assert_allclose(l3.catalog["kron_flux"], l2.catalog["kron_flux"], rtol=1e-4)
    # zero weight at the centre pixel of an extended source: masked there, source flagged
    gal = img * photmjsr
    gal = gal.astype(float)
    grid = [(float(gx), float(gy)) for gx in range(30, 171, 10) for gy in range(30, 171, 10)]
    gx, gy = max(grid, key=lambda g: np.min(np.hypot(pos[:, 0] - g[0], pos[:, 1] - g[1])))
    add_gaussian(gal, gx, gy, optimal_snr_flux(3000) * photmjsr, 3.0)
    weight[int(gy), int(gx)] = 0
    l3m = sc.make_source_catalog(
        gal.astype(np.float32), err * photmjsr, data_unit="MJy/sr", weight=weight,
        pixel_area=PIXEL_AREA, **DETECT,
    )
    cat = l3m.catalog
    d, i = cKDTree(np.column_stack([cat["x_centroid"], cat["y_centroid"]])).query([gx, gy])
    assert d < 0.3
    assert cat["warning_flags"][i] == pixel.DO_NOT_USE
    assert np.sum(cat["warning_flags"] != 0) == 1
    assert np.isfinite(cat["aper04_flux"][i])


def test_dq_do_not_use_masks_and_flags():
    img, err, pos, flux, snr = make_scene(seed=11, n=10, shape=(160, 160), snr_range=(100, 300))
    img = img.astype(float)
    add_gaussian(img, 80.0, 80.0, optimal_snr_flux(3000), 3.0)
    dq = np.zeros(img.shape, np.uint32)
    dq[80, 80] = pixel.DO_NOT_USE | pixel.HOT
    img[84, 84] = np.nan  # NaN pixels are masked, not propagated
    res = sc.make_source_catalog(img.astype(np.float32), err, dq=dq, photmjsr=1.0,
                                 pixel_area=PIXEL_AREA, **DETECT)
    cat = res.catalog
    assert np.all(np.isfinite(cat["aper04_flux"]))
    d, i = cKDTree(np.column_stack([cat["x_centroid"], cat["y_centroid"]])).query([80.0, 80.0])
    assert d < 0.3
    assert cat["warning_flags"][i] == pixel.DO_NOT_USE
    assert cat["image_flags"][i] == pixel.DO_NOT_USE | pixel.HOT
    assert np.sum(cat["warning_flags"] != 0) == 1
    tw = sc.tweakreg_catalog(cat)
    assert len(tw) == len(cat) - 1


def test_deblending_splits_a_close_pair():
    rng = np.random.default_rng(5)
    img = rng.normal(0, NOISE, (96, 96))
    add_gaussian(img, 44.0, 48.0, optimal_snr_flux(400), SIG)
    add_gaussian(img, 50.5, 48.0, optimal_snr_flux(300), SIG)
    img = img.astype(np.float32)
    err = np.full_like(img, NOISE)
    kw = dict(photmjsr=1.0, pixel_area=PIXEL_AREA, **DETECT)
    assert len(sc.make_source_catalog(img, err, **kw).catalog) == 1
    try:
        import skimage  # noqa: F401
    except ImportError:
        with pytest.raises(ParameterError, match="scikit-image"):
            sc.make_source_catalog(img, err, deblend=True, **kw)
        return
    res = sc.make_source_catalog(img, err, deblend=True, **kw)
    assert len(res.catalog) == 2
    xs = np.sort(np.asarray(res.catalog["x_centroid_win"]))
    np.testing.assert_allclose(xs, [44.0, 50.5], atol=0.3)


def test_extended_sources_flagged():
    img, err, pos, flux, snr = make_scene(seed=21, n=30, shape=(256, 256), min_sep=30, snr_range=(50, 500))
    img = img.astype(float)
    galaxies = np.array([[40.0, 128.0], [128.0, 128.0], [215.0, 128.0]])
    for gx, gy in galaxies:
        add_gaussian(img, gx, gy, optimal_snr_flux(2000), 4.0)
    stars = pos[np.min(np.hypot(*(pos[:, None, :] - galaxies[None]).transpose(2, 0, 1)), axis=1) > 25]
    res = sc.make_source_catalog(img.astype(np.float32), err, photmjsr=1.0, pixel_area=PIXEL_AREA,
                                 psf_fwhm=FWHM, **DETECT)
    cat = res.catalog
    _, gi, gok = _match(cat, galaxies)
    assert gok.all() and np.all(cat["is_extended"][gi])
    _, si, sok = _match(cat, stars)
    assert np.mean(np.asarray(cat["is_extended"])[si[sok]]) < 0.05


def test_update_sky_coordinates_follows_new_wcs(scene):
    cat = scene[-1].catalog.copy()
    new = tan_wcs(ra0=30.001, dec0=-20.0005)
    sc.update_sky_coordinates(cat, new)
    ra, dec = new(np.asarray(cat["x_centroid"]), np.asarray(cat["y_centroid"]))
    np.testing.assert_allclose(cat["ra_centroid"], ra, atol=1e-10)
    np.testing.assert_allclose(cat["dec_centroid"], dec, atol=1e-10)
    rw, dw = new(np.asarray(cat["x_centroid_win"]), np.asarray(cat["y_centroid_win"]))
    np.testing.assert_allclose(cat["ra"], rw, atol=1e-10)
    np.testing.assert_allclose(cat["dec"], dw, atol=1e-10)
    # errors: pixel error times the pixel scale (square pixels, independent x/y errors)
    expect = np.hypot(cat["x_centroid_err"], cat["y_centroid_err"]) * SCALE
    np.testing.assert_allclose(np.hypot(cat["ra_centroid_err"], cat["dec_centroid_err"]), expect, rtol=1e-3)


def test_pixel_area_from_wcs():
    area = sc.pixel_area_from_wcs(tan_wcs(), 160.0, 160.0)
    assert area == pytest.approx(PIXEL_AREA, rel=1e-6)
    img, err, *_ = make_scene(seed=2, n=5, shape=(120, 120), snr_range=(100, 200))
    res = sc.make_source_catalog(img, err, photmjsr=1.0, wcs=tan_wcs(crpix=(60, 60)), **DETECT)
    assert res.meta["pixel_area"] == pytest.approx(PIXEL_AREA, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(photmjsr=None), "photmjsr"),
        (dict(kernel_fwhm=0.0), "kernel_fwhm"),
        (dict(npixels=2.5), "npixels"),
        (dict(data_unit="Jy"), "data_unit"),
        (dict(deblend_contrast=2.0), "deblend_contrast"),
        (dict(pixel_area=None), "pixel_area"),
        (dict(annulus_arcsec=(2.8, 2.4)), "annulus_arcsec"),
    ],
)
def test_bad_parameters(kwargs, match):
    img = np.zeros((32, 32), np.float32)
    args = dict(photmjsr=1.0, pixel_area=PIXEL_AREA)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=match):
        sc.make_source_catalog(img, np.ones_like(img), **args)


def test_bad_arrays():
    img = np.zeros((32, 32), np.float32)
    with pytest.raises(ParameterError, match="err"):
        sc.make_source_catalog(img, np.ones((32, 31)), photmjsr=1.0, pixel_area=PIXEL_AREA)
    with pytest.raises(ParameterError, match="data"):
        sc.make_source_catalog(np.zeros(5), np.ones(5), photmjsr=1.0, pixel_area=PIXEL_AREA)
    with pytest.raises(ParameterError, match="dq"):
        sc.make_source_catalog(img, np.ones_like(img), dq=np.zeros((32, 32), float),
                               photmjsr=1.0, pixel_area=PIXEL_AREA)


# --------------------------------------------------------------------------------------
# the fast image operations against photutils / scipy / slow oracles


def _bkg_scene(shape, seed):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    img = 2.0 + 3e-3 * x - 2e-3 * y + 0.5 * np.sin(x / 40.0) * np.cos(y / 55.0)
    img = (img + rng.normal(0, 0.05 + 1e-4 * x, shape)).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[: ny // 5, : nx // 3] = True  # a no-coverage corner, as on a mosaic
    mask[rng.random(shape) < 0.01] = True
    img[mask] = 0.0
    return img, mask


@pytest.mark.parametrize(
    "shape, box",
    [((300, 260), 64), ((256, 192), 64), ((200, 330), 50), ((100, 700), 128), ((150, 150), 1000)],
)
def test_background_matches_photutils(shape, box):
    """Two 1-D spline passes == photutils' zoom of the padded mesh grid (grid_mode, reflect,
    clip, coverage mask), to float32 rounding, for partial edge boxes and rectangular boxes."""
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    img, mask = _bkg_scene(shape, seed=sum(shape))
    bkg, rms = sc._background(img, mask, box, num_threads=1)
    b2, r2 = sc._background(img, mask, box, num_threads=2)
    np.testing.assert_array_equal(bkg, b2)
    np.testing.assert_array_equal(rms, r2)
    clip = SigmaClip(sigma=3.0, stdfunc="mad_std")
    bx = (min(box, shape[0]), min(box, shape[1]))
    ref = Background2D(img, bx, coverage_mask=mask, filter_size=(3, 3), sigma_clip=clip,
                       bkg_estimator=MedianBackground())
    assert bkg.dtype == rms.dtype == np.float32
    if ref.background_mesh.size > 1:
        assert np.ptp(ref.background_mesh) > 0  # the spline path is exercised
    np.testing.assert_array_max_ulp(bkg, ref.background.astype(np.float32), maxulp=1)
    np.testing.assert_array_max_ulp(rms, ref.background_rms.astype(np.float32), maxulp=1)
    assert np.all(bkg[mask] == 0) and np.all(rms[mask] == 0)


def test_zoom_operator_reproduces_2d_zoom():
    from scipy.ndimage import zoom

    mesh = np.random.default_rng(1).normal(size=(4, 6))
    full = zoom(mesh, (7, 5), order=3, mode="reflect", grid_mode=True)[:25, :27]
    sep = sc._zoom_operator(4, 7, 25) @ mesh @ sc._zoom_operator(6, 5, 27).T
    np.testing.assert_allclose(sep, full, rtol=0, atol=1e-13)


def test_masked_convolve_matches_oracle():
    from oracles.source_catalog import masked_convolve_oracle

    rng = np.random.default_rng(8)
    data = rng.normal(1.0, 1.0, (70, 53)).astype(np.float32)
    mask = rng.random(data.shape) < 0.05
    mask[30:45, 10:25] = True  # a block with no good pixel under the kernel in its middle
    mask[:, -3:] = True
    gauss = np.asarray(sc._detection_kernel(2.0).array)
    assert sc._separable_factors(gauss) is not None
    blob = np.array([[0.0, 1.0, 0.0], [1.0, 3.0, 2.0], [0.0, 1.0, 0.5]])  # not separable
    assert sc._separable_factors(blob) is None
    for kern in (gauss, blob):
        expect = masked_convolve_oracle(data, kern, mask)
        one = sc._masked_convolve(data, kern, mask, num_threads=1, block=7)
        two = sc._masked_convolve(data, kern, mask, num_threads=2, block=7)
        whole = sc._masked_convolve(data, kern, mask, num_threads=1, block=1000)
        assert one.dtype == np.float32
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(one, whole)
        np.testing.assert_allclose(one, expect, rtol=2e-6, atol=1e-6)
        assert np.all(one[mask] == 0)


def test_daofind_shape_matches_full_image_oracle():
    from oracles.source_catalog import daofind_shape_oracle

    rng = np.random.default_rng(4)
    img = rng.normal(0, NOISE, (60, 70))
    xs = np.array([30.2, 0.4, 69.3, 12.0, 50.7, 35.0, np.nan, 2.0])
    ys = np.array([30.1, 25.0, 59.4, 1.6, 40.2, 12.0, 5.0, 58.0])
    for x0, y0 in zip(xs, ys, strict=True):
        if np.isfinite(x0):
            add_gaussian(img, x0, y0, optimal_snr_flux(200), SIG)
    img = img.astype(np.float32)
    img[40, 51] = np.nan
    mask = np.zeros(img.shape, bool)
    mask[12, 34:37] = True
    kern, footprint, half = sc._daofind_kernel(FWHM)
    sharp, round1 = sc._daofind_shape(img, xs, ys, FWHM, mask)
    es, er = daofind_shape_oracle(img, mask, xs, ys, kern, footprint, half)
    np.testing.assert_allclose(sharp, es, rtol=1e-12, atol=0)
    np.testing.assert_allclose(round1, er, rtol=1e-12, atol=1e-15)
    assert np.isnan(sharp[6]) and np.all(np.isfinite(sharp[:6]))


def _aperture_scene():
    rng = np.random.default_rng(12)
    data = rng.normal(0.0, 1.0, (80, 90)).astype(np.float32)
    err = rng.uniform(0.5, 1.5, data.shape).astype(np.float32)
    mask = rng.random(data.shape) < 0.03
    mask[50:70, 5:25] = True  # a fully masked aperture
    data[3, 40] = np.nan  # non-finite data is masked
    pos = np.array([
        [45.3, 40.7], [1.2, 30.5], [88.6, 78.9], [-3.0, 10.0], [15.0, 60.0], [200.0, 10.0],
        [40.0, 3.2], [60.5, 20.5], [24.4, 50.0],
    ])
    # a position where every pixel centre within 2.55 px is masked: an aperture of
    # radius 2.5 there has unmasked partial pixels only (finite sum, NaN area)
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
    mask[(yy - 10.0) ** 2 + (xx - 62.0) ** 2 <= 2.55**2] = True
    pos = np.vstack([pos, [62.0, 10.0]])
    return data, err, mask, pos


@pytest.mark.parametrize("radius", [0.7, 2.5, 5.3])
def test_aperture_sums_equal_photutils_aperturestats(radius):
    from photutils.aperture import ApertureStats, CircularAperture

    data, err, mask, pos = _aperture_scene()
    aper = CircularAperture(pos, radius)
    total, total_err, area = sc._aperture_sums(data, err, mask, aper)
    ref = ApertureStats(data, aper, error=err, mask=mask, sum_method="exact")
    np.testing.assert_array_equal(total, np.asarray(ref.sum, float))
    np.testing.assert_array_equal(total_err, np.asarray(ref.sum_err, float))
    np.testing.assert_array_equal(area, np.asarray(ref.sum_aper_area.value, float))
    assert np.isnan(total[5]) and np.isfinite(total[0]) and np.isnan(area[4])
    if radius == 2.5:
        assert np.isfinite(total[9]) and np.isnan(area[9])


def test_annulus_clipped_stats_equal_photutils_aperturestats():
    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats, CircularAnnulus

    data, err, mask, pos = _aperture_scene()
    data = data.copy()
    data[38:42, 50:53] = 40.0  # outliers in the annulus of the first position
    for r_in, r_out in ((3.0, 6.0), (8.5, 11.0)):
        ann = CircularAnnulus(pos, r_in, r_out)
        med, std, n = sc._annulus_clipped_stats(data, mask, ann, SigmaClip(sigma=3.0))
        ref = ApertureStats(data, ann, mask=mask, sigma_clip=SigmaClip(sigma=3.0), sum_method="center")
        np.testing.assert_array_equal(med, np.asarray(ref.median, float))
        np.testing.assert_array_equal(std, np.asarray(ref.std, float))
        np.testing.assert_array_equal(n, np.asarray(ref.sum_aper_area.value, float))
    assert np.isfinite(med[0]) and np.isnan(med[5])


def test_masked_conv_kernel_checks_its_arguments():
    from romancore._ext.masked_conv import masked_separable_correlate

    data = np.zeros((8, 9), np.float32)
    mask = np.zeros((8, 9), np.uint8)
    k3 = np.array([0.25, 0.5, 0.25])
    with pytest.raises(ValueError, match="odd"):
        masked_separable_correlate(data, mask, np.array([0.5, 0.5]), k3)
    with pytest.raises(ValueError, match="mask shape"):
        masked_separable_correlate(data, np.zeros((8, 8), np.uint8), k3, k3)
    with pytest.raises(ValueError, match="num_threads"):
        masked_separable_correlate(data, mask, k3, k3, num_threads=0)
    # a single good pixel spreads its value over its kernel footprint (ratio = value)
    data[4, 4], mask[:] = 3.0, 1
    mask[4, 4] = 0
    mask[4, 5] = 0
    out = masked_separable_correlate(data, mask, k3, k3)
    assert out[4, 4] == pytest.approx(3.0 * 0.5 / 0.75) and out[4, 5] == pytest.approx(3.0 * 0.25 / 0.75)
    assert np.count_nonzero(out) == 2
