"""Pixel maps from WCS callables: sparse-grid interpolation against dense evaluation."""

import numpy as np
import pytest
from astropy import coordinates as coord
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs

from romancore.algorithms.pixmap import calc_pixmap
from romancore.errors import ParameterError

# detector-corner region of a 4088x4088 detector: distortion is strongest there
OFFSET = (3576.0, 3576.0)
SHAPE = (512, 512)


def _frames():
    return cf.Frame2D(name="detector"), cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")


def distorted_wcs(shape=SHAPE, offset=OFFSET, ra=80.0, dec=-30.0, roll=20.0):
    """Polynomial (5th order) detector -> arcsec distortion followed by a TAN projection.

    Scale ~0.11"/pixel with a ~1.5% skew and ~1-2 arcsec of non-linear
    distortion at the detector corners, the size of a real WFI distortion.
    """
    ny, nx = shape
    centre = models.Shift(offset[0] - 2043.5) & models.Shift(offset[1] - 2043.5)
    cx = dict(c1_0=0.1100, c0_1=0.0021, c2_0=2.5e-7, c1_1=-1.2e-7, c0_2=0.8e-7,
              c3_0=-1.5e-11, c2_1=0.7e-11, c1_2=-1.1e-11, c0_3=0.4e-11,
              c4_0=2.0e-15, c2_2=-1.0e-15, c0_4=1.5e-15, c5_0=-3.0e-19, c3_2=2.0e-19,
              c1_4=-1.0e-19)
    cy = dict(c1_0=-0.0017, c0_1=0.1085, c2_0=-0.9e-7, c1_1=2.1e-7, c0_2=-1.6e-7,
              c3_0=0.6e-11, c2_1=-1.3e-11, c1_2=0.9e-11, c0_3=-1.8e-11,
              c4_0=-1.0e-15, c3_1=1.2e-15, c0_4=-2.0e-15, c0_5=2.5e-19, c2_3=-1.5e-19,
              c4_1=1.0e-19)
    dist = centre | models.Mapping((0, 1, 0, 1)) | (models.Polynomial2D(5, **cx) & models.Polynomial2D(5, **cy))
    rot = np.deg2rad(roll)
    m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) / 3600.0
    sky = (models.AffineTransformation2D(matrix=m) | models.Pix2Sky_TAN()
           | models.RotateNative2Celestial(ra, dec, 180.0))
    det, world = _frames()
    w = gwcs_wcs.WCS([(det, dist | sky), (world, None)])
    w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return w


def tan_wcs(shape, crpix, scale_arcsec, ra, dec, roll=0.0):
    """Undistorted TAN output grid."""
    ny, nx = shape
    rot = np.deg2rad(roll)
    m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) * scale_arcsec / 3600.0
    t = ((models.Shift(-crpix[0]) & models.Shift(-crpix[1])) | models.AffineTransformation2D(matrix=m)
         | models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra, dec, 180.0))
    det, world = _frames()
    w = gwcs_wcs.WCS([(det, t), (world, None)])
    w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return w


@pytest.fixture(scope="module")
def wcs_pair():
    win = distorted_wcs()
    ra, dec = win(255.5, 255.5)
    wout = tan_wcs((720, 720), (360.0, 360.0), 0.11 * 0.75, ra, dec, roll=5.0)
    return win, wout


@pytest.fixture(scope="module")
def dense(wcs_pair):
    win, wout = wcs_pair
    return calc_pixmap(win, wout, SHAPE, stepsize=1)


def test_dense_matches_direct_evaluation(wcs_pair, dense):
    win, wout = wcs_pair
    rng = np.random.default_rng(3)
    x = rng.integers(0, SHAPE[1], 50)
    y = rng.integers(0, SHAPE[0], 50)
    X, Y = wout.invert(*win(x.astype(float), y.astype(float)), with_bounding_box=False)
    np.testing.assert_allclose(dense[y, x, 0], X, rtol=0, atol=1e-9)
    np.testing.assert_allclose(dense[y, x, 1], Y, rtol=0, atol=1e-9)
    assert np.isfinite(dense).all()


@pytest.mark.parametrize(("stepsize", "order", "tol"), [(10, 3, 1e-4), (40, 3, 1e-3), (10, 1, 1e-3)])
def test_sparse_accuracy(wcs_pair, dense, stepsize, order, tol):
    win, wout = wcs_pair
    sparse = calc_pixmap(win, wout, SHAPE, stepsize=stepsize, order=order)
    err = np.abs(sparse - dense).max()
    print(f"pixmap stepsize={stepsize} order={order}: max |sparse - dense| = {err:.3g} output px")
    assert err < tol


def test_distortion_is_not_trivial(dense):
    """The test WCS is far from affine, so the accuracy test means something."""
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    a = np.c_[np.ones(xx.size), xx.ravel(), yy.ravel()]
    coef, *_ = np.linalg.lstsq(a, dense[..., 0].ravel(), rcond=None)
    resid = np.abs(a @ coef - dense[..., 0].ravel()).max()
    print(f"non-affine part of the test pixmap: {resid:.3g} px")
    assert resid > 0.2


def test_affine_callables_exact():
    """Cubic splines reproduce an affine map exactly; callables need not be WCS objects."""
    shape = (37, 53)

    def fwd(x, y):
        return 0.3 * x - 0.2 * y + 5.0, 0.1 * x + 0.4 * y - 2.0

    def inv(a, b):
        return 2.0 * a + 1.0, -b + 3.0

    pm = calc_pixmap(fwd, inv, shape, stepsize=10, order=3)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    X, Y = inv(*fwd(xx, yy))
    np.testing.assert_allclose(pm[..., 0], X, atol=1e-10)
    np.testing.assert_allclose(pm[..., 1], Y, atol=1e-10)
    pm1 = calc_pixmap(fwd, inv, shape, stepsize=7, order=1)
    np.testing.assert_allclose(pm1[..., 0], X, atol=1e-10)


def test_outside_bounding_box_is_nan():
    shape = (30, 40)

    def fwd(x, y):
        return x + 0.5, y - 0.25

    def inv(a, b):
        return a, b

    pm = calc_pixmap(fwd, inv, shape, stepsize=5, bounding_box=((4.6, 30.2), (-0.5, 20.4)))
    # rounded limits: x 5..30, y 0..20
    assert np.isnan(pm[:, :5]).all() and np.isnan(pm[:, 31:]).all()
    assert np.isnan(pm[21:]).all()
    assert np.isfinite(pm[0:21, 5:31]).all()
    np.testing.assert_allclose(pm[3, 7], [7.5, 2.75], atol=1e-10)
    # all four margins, sparse and dense evaluation
    for step in (5, 1):
        pm = calc_pixmap(fwd, inv, shape, stepsize=step, bounding_box=((2.6, 35.2), (3.4, 25.1)))
        inside = np.zeros(shape, bool)
        inside[3:26, 3:36] = True
        assert np.isnan(pm[~inside]).all() and np.isfinite(pm[inside]).all()


def test_nonfinite_sparse_values_fall_back_to_dense():
    shape = (25, 25)

    def fwd(x, y):
        return x, y

    def inv(a, b):
        a = np.array(a, dtype=float)
        a[(a > 11.5) & (a < 12.5)] = np.nan  # a column the sparse grid samples
        return a, np.asarray(b, dtype=float)

    pm = calc_pixmap(fwd, inv, shape, stepsize=2)
    assert np.isnan(pm[:, 12, 0]).all()
    assert np.isfinite(pm[:, 11, 0]).all() and np.isfinite(pm[:, 13, 0]).all()
    np.testing.assert_allclose(pm[:, 13, 0], 13.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"stepsize": 0}, "stepsize"), ({"order": 2}, "order"), ({"bounding_box": ((50, 60), (0, 5))}, "bounding_box")],
)
def test_bad_parameters(kwargs, match):
    def ident(x, y):
        return x, y

    with pytest.raises(ParameterError, match=match):
        calc_pixmap(ident, ident, (10, 10), **kwargs)


@pytest.mark.parametrize("order", [1, 3])
def test_separable_spline_evaluation_matches_fitpack(order):
    """The blocked sparse design-matrix evaluation equals the spline's own grid evaluation."""
    from scipy.interpolate import RectBivariateSpline

    from romancore.algorithms import pixmap as pm

    rng = np.random.default_rng(7)
    gy, gx = np.linspace(0, 300, 13), np.linspace(0, 200, 9)
    z = rng.normal(size=(13, 9)) + gy[:, None] * 0.5
    spline = RectBivariateSpline(gy, gx, z, kx=order, ky=order, s=0)
    ys, xs = np.arange(0.0, 301.0), np.arange(0.0, 201.0)
    out = np.full((301, 402), np.nan)[:, ::2]  # a strided target like pixmap[..., 0]
    old = pm._BLOCK_ROWS
    pm._BLOCK_ROWS = 64  # several row blocks, the last one partial
    try:
        pm._fill_separable(spline, order, ys, xs, out)
    finally:
        pm._BLOCK_ROWS = old
    np.testing.assert_allclose(out, spline(ys, xs), rtol=0, atol=1e-10)
