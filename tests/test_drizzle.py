"""Drizzle kernels and accumulator: properties (flux, weights, context, variances) and oracle checks."""

import logging

import numpy as np
import pytest
from oracles import drizzle as oracle

from romancore.algorithms.drizzle import (
    Drizzler,
    blot,
    build_driz_weight,
    build_mask,
    decode_context,
    estimate_pixel_scale_ratio,
)
from romancore.dq import pixel
from romancore.errors import OutputTooLargeError, ParameterError

ALL_KERNELS = ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3")
CONSERVING = ("square", "point", "turbo")


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.ERROR, logger="romancore.algorithms.drizzle")


def affine_pixmap(shape, *, scale=1.0, theta=0.0, shift=(0.0, 0.0)):
    """Input pixel -> output pixel: rotation by theta, magnification 1/scale, shift."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    c, s = np.cos(theta), np.sin(theta)
    X = (c * xx - s * yy) / scale + shift[0]
    Y = (s * xx + c * yy) / scale + shift[1]
    return np.dstack([X, Y])


def distorted_pixmap(shape, shift=(2.3, 1.1)):
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    X = 0.9 * (np.cos(0.4) * xx - np.sin(0.4) * yy) + shift[0] + 0.01 * xx * yy + 0.004 * xx**2
    Y = 0.9 * (np.sin(0.4) * xx + np.cos(0.4) * yy) + shift[1] + 0.006 * yy**2 - 0.008 * xx * yy
    return np.dstack([X, Y])


def run(data, weight, pixmap, out_shape, **kw):
    add_kw = {k: kw.pop(k) for k in ("iscale", "exptime", "variances") if k in kw}
    d = Drizzler(out_shape, **kw)
    d.add_image(data, weight, pixmap, **add_kw)
    return d.finalize()


def total(result):
    ok = result.weight != 0
    return float(np.sum(result.data[ok].astype(np.float64) * result.weight[ok]))


# ---------------------------------------------------------------- oracle agreement
@pytest.mark.parametrize(
    ("kernel", "pixfrac"),
    [(k, pf) for k in ALL_KERNELS for pf in (1.0, 0.6) if pf == 1.0 or not k.startswith("lanczos")],
)
def test_kernel_matches_oracle(kernel, pixfrac):
    rng = np.random.default_rng(1)
    shape = (12, 14)
    data = rng.random(shape).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    pm = distorted_pixmap(shape)
    out_shape = (15, 17)  # the input crosses the output edges
    res = run(data, weight, pm, out_shape, kernel=kernel, pixfrac=pixfrac,
              pixel_scale_ratio=1 / 0.9, num_threads=2)
    o, ow = oracle.drizzle(data, weight, pm, out_shape, kernel=kernel, pixfrac=pixfrac, pscale=1 / 0.9)
    covered = ow != 0
    assert np.array_equal(res.weight != 0, covered)
    np.testing.assert_allclose(res.weight, ow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.data[covered], o[covered], rtol=1e-5, atol=2e-6)
    assert np.isnan(res.data[~covered]).all()


def test_square_oracle_with_nan_free_edges_and_random_weights():
    """Square kernel on an affine map, compared pixel by pixel including the input edges."""
    rng = np.random.default_rng(7)
    shape = (9, 11)
    data = rng.normal(10, 2, shape).astype(np.float32)
    weight = rng.uniform(0, 1, shape).astype(np.float32)
    pm = affine_pixmap(shape, scale=0.7, theta=0.3, shift=(-3.2, 0.4))
    out_shape = (16, 12)
    res = run(data, weight, pm, out_shape, pixfrac=0.8)
    o, ow = oracle.drizzle(data, weight, pm, out_shape, pixfrac=0.8)
    np.testing.assert_allclose(res.weight, ow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.data[ow != 0], o[ow != 0], rtol=1e-5)


# ---------------------------------------------------------------- flux conservation
@pytest.mark.parametrize("kernel", CONSERVING)
@pytest.mark.parametrize("pixfrac", [1.0, 0.5])
def test_flux_conserved_inside(kernel, pixfrac):
    rng = np.random.default_rng(2)
    shape = (40, 50)
    data = rng.uniform(0, 5, shape).astype(np.float32)
    weight = rng.uniform(0.2, 1.0, shape).astype(np.float32)
    pm = affine_pixmap(shape, scale=0.8, theta=0.5, shift=(40.0, 5.0))
    res = run(data, weight, pm, (110, 110), kernel=kernel, pixfrac=pixfrac, pixel_scale_ratio=0.8)
    expected = float(np.sum(data.astype(np.float64) * weight))
    assert total(res) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kernel", CONSERVING)
@pytest.mark.parametrize("pixfrac", [1.0, 0.7])
def test_flux_at_output_edges(kernel, pixfrac):
    """Inputs crossing the output edges lose only what truly falls outside."""
    rng = np.random.default_rng(3)
    shape = (30, 30)
    data = rng.uniform(1, 3, shape).astype(np.float32)
    weight = rng.uniform(0.5, 1.0, shape).astype(np.float32)
    scale = 0.9
    pm = affine_pixmap(shape, scale=scale, theta=0.35, shift=(-6.3, -9.2))
    out_shape = (25, 27)
    res = run(data, weight, pm, out_shape, kernel=kernel, pixfrac=pixfrac, pixel_scale_ratio=scale)
    ny, nx = out_shape
    expected = 0.0
    for j in range(shape[0]):
        for i in range(shape[1]):
            X, Y = pm[j, i]
            if kernel == "square":
                frac = oracle.fraction_inside(oracle.pixel_quad(pm, i, j, pixfrac), out_shape)
            elif kernel == "point":
                frac = float(-0.5 <= X < nx - 0.5 and -0.5 <= Y < ny - 0.5)
            else:
                h = 0.5 * pixfrac / scale
                fx = max(0.0, min(X + h, nx - 0.5) - max(X - h, -0.5)) / (2 * h)
                fy = max(0.0, min(Y + h, ny - 0.5) - max(Y - h, -0.5)) / (2 * h)
                frac = fx * fy
            expected += float(data[j, i]) * float(weight[j, i]) * frac
    full = float(np.sum(data.astype(np.float64) * weight))
    assert expected < 0.9 * full  # the test really crosses edges
    assert total(res) == pytest.approx(expected, rel=1e-5)


def test_pixels_touching_edge_deposit_everything():
    """An input exactly covering the output (pixel edges on the output edges) loses nothing."""
    shape = (20, 20)
    data = np.arange(400, dtype=np.float32).reshape(shape)
    weight = np.ones(shape, np.float32)
    for kernel in CONSERVING:
        res = run(data, weight, affine_pixmap(shape), shape, kernel=kernel, pixel_scale_ratio=1.0)
        assert total(res) == pytest.approx(float(data.sum()), rel=1e-6)
        np.testing.assert_allclose(res.data, data, rtol=1e-6)
        np.testing.assert_allclose(res.weight, 1.0, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["square", "turbo"])
@pytest.mark.parametrize("psr", [0.5, 0.75, 1.0])
@pytest.mark.parametrize("pixfrac", [0.5, 0.75, 1.0])
def test_star_flux(kernel, psr, pixfrac):
    """A star's flux is preserved through scaled/rotated/shifted affine maps."""
    shape = (48, 48)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    flux = 1000.0
    sigma = 1.3
    star = flux / (2 * np.pi * sigma**2) * np.exp(-((xx - 23.4) ** 2 + (yy - 24.7) ** 2) / (2 * sigma**2))
    star = star.astype(np.float32)
    pm = affine_pixmap(shape, scale=psr, theta=0.61, shift=(60.2, 3.7))
    out_shape = (130, 130)
    res = run(star, np.ones(shape, np.float32), pm, out_shape, kernel=kernel, pixfrac=pixfrac,
              pixel_scale_ratio=psr)
    assert total(res) == pytest.approx(float(star.astype(np.float64).sum()), rel=1e-4)
    if kernel == "square" and pixfrac == 1.0:
        # a full-size drop covers the output uniformly: W = psr**2 on covered pixels,
        # so the surface-brightness sum times the output pixel area is the flux too
        ok = res.weight > 0
        inner = res.weight > 0.999 * psr**2
        assert inner.sum() > 0.5 * ok.sum()
        sb_flux = float(np.nansum(res.data[ok].astype(np.float64))) * psr**2
        assert sb_flux == pytest.approx(flux, rel=1e-4)


# ---------------------------------------------------------------- constant images
@pytest.mark.parametrize("kernel", ALL_KERNELS)
def test_constant_stays_constant(kernel):
    shape = (30, 30)
    data = np.full(shape, 3.25, np.float32)
    pm = distorted_pixmap(shape, shift=(5.0, 8.0))
    rng = np.random.default_rng(4)
    weight = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    res = run(data, weight, pm, (60, 60), kernel=kernel, pixfrac=0.8, pixel_scale_ratio=1 / 0.9)
    sig = np.abs(res.weight) > 1e-3 * np.abs(res.weight).max()
    np.testing.assert_allclose(res.data[sig], 3.25, rtol=2e-5)


# ---------------------------------------------------------------- weights and context
def test_context_agrees_with_weight():
    rng = np.random.default_rng(5)
    shape = (20, 25)
    out_shape = (45, 45)
    shifts = [(3.0, 4.0), (12.5, 9.3), (20.2, 22.7)]
    d = Drizzler(out_shape, pixfrac=0.7)
    per_input = []
    for k, sh in enumerate(shifts):
        data = rng.random(shape).astype(np.float32)
        weight = (rng.random(shape) > 0.2).astype(np.float32)
        pm = affine_pixmap(shape, theta=0.1 * k, shift=sh)
        d.add_image(data, weight, pm)
        per_input.append(run(data, weight, pm, out_shape, pixfrac=0.7).weight)
    res = d.finalize()
    for k, w in enumerate(per_input):
        bit = (res.context[0] >> k) & 1
        assert np.array_equal(bit == 1, w > 0)
    assert res.context[0].max() == 7  # some pixels got all three
    np.testing.assert_allclose(res.weight, sum(per_input), rtol=1e-5, atol=1e-6)


def test_zero_weight_deposits_nothing():
    shape = (15, 15)
    out_shape = (30, 30)
    rng = np.random.default_rng(6)
    data = rng.random(shape).astype(np.float32)
    pm = affine_pixmap(shape, shift=(5.0, 5.0))
    d = Drizzler(out_shape)
    d.add_image(data, np.ones(shape, np.float32), pm)
    before = (d.data.copy(), d.weight.copy(), d.context.copy())
    n = d.add_image(rng.random(shape) * 100, np.zeros(shape, np.float32), pm)
    assert n == 0
    assert np.array_equal(d.data, before[0], equal_nan=True)
    assert np.array_equal(d.weight, before[1]) and np.array_equal(d.context, before[2])
    # NaN data and NaN / negative weights are skipped too
    data2 = np.full(shape, np.nan, np.float32)
    d.add_image(data2, np.ones(shape, np.float32), pm)
    w_bad = np.full(shape, np.nan, np.float32)
    w_bad[::2] = -1.0
    d.add_image(data, w_bad, pm)
    assert np.array_equal(d.data, before[0], equal_nan=True)
    assert np.array_equal(d.weight, before[1]) and np.array_equal(d.context, before[2])
    # partially zero weights: masked pixels do not reach the output
    w = np.ones(shape, np.float32)
    w[:, 7:] = 0
    res = run(data, w, pm, out_shape, kernel="point")
    assert np.isnan(res.data[:, 12:]).all() and (res.weight[:, 12:] == 0).all()


def test_hit_count_every_pixel_inside():
    shape = (300, 300)  # large enough for the multi-threaded band split
    pm = affine_pixmap(shape, scale=0.8, theta=0.3, shift=(150.0, 10.0))
    for kernel in CONSERVING:
        d = Drizzler((600, 600), kernel=kernel, num_threads=2, pixel_scale_ratio=0.8)
        assert d.add_image(np.ones(shape), None, pm) == shape[0] * shape[1]


def test_more_than_32_inputs_use_second_plane():
    shape = (4, 4)
    out_shape = (10, 10)
    d = Drizzler(out_shape, kernel="point")
    for k in range(40):
        d.add_image(np.full(shape, float(k), np.float32), None,
                    affine_pixmap(shape, shift=(k % 7, (k // 7) % 7)))
    res = d.finalize()
    assert res.context.shape == (2, 10, 10) and res.context.dtype == np.uint32
    for y in range(10):
        for x in range(10):
            expected = [k for k in range(40) if k % 7 <= x < k % 7 + 4 and (k // 7) % 7 <= y < (k // 7) % 7 + 4]
            assert decode_context(res.context, x, y)[0].tolist() == expected
    assert res.n_inputs == 40


def test_explicit_input_index_and_preallocated_planes():
    d = Drizzler((5, 5), kernel="point", n_inputs=70)
    assert d.context.shape[0] == 3
    d.add_image(np.ones((2, 2)), None, affine_pixmap((2, 2)), input_index=65)
    res = d.finalize()
    assert res.context[2, 0, 0] == 2 and res.context[:2].max() == 0
    assert [a.tolist() for a in decode_context(res.context, [0, 4], [0, 4])] == [[65], []]


def test_decode_context_seed_example():
    con = np.array(
        [[[0, 0, 0, 0, 0, 0], [0, 0, 0, 36196864, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0],
          [0, 0, 537920000, 0, 0, 0]],
         [[0, 0, 0, 0, 0, 0], [0, 0, 0, 67125536, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0],
          [0, 0, 163856, 0, 0, 0]],
         [[0, 0, 0, 0, 0, 0], [0, 0, 0, 8203, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0],
          [0, 0, 32865, 0, 0, 0]]],
        dtype=np.int32,
    )
    a, b = decode_context(con, [3, 2], [1, 4])
    # the bits of each word, written out independently
    for idx, (x, y) in zip((a, b), ((3, 1), (2, 4)), strict=True):
        want = [32 * p + k for p in range(3) for k in range(32) if int(con[p, y, x]) >> k & 1]
        assert idx.tolist() == want
    assert a.tolist() == [9, 12, 14, 19, 21, 25, 37, 40, 46, 58, 64, 65, 67, 77]


def test_threads_do_not_change_results():
    rng = np.random.default_rng(8)
    shape = (260, 260)  # above the size where the parallel path is used
    data = rng.random(shape).astype(np.float32)
    pm = affine_pixmap(shape, scale=0.9, theta=0.8, shift=(200.0, -10.0))
    outs = []
    hit_counts = []
    for nt in (1, 2, 3):
        d = Drizzler((400, 420), num_threads=nt, variance_planes=("var_rnoise",), exptime_map=True)
        hits = [d.add_image(data + k, None, pm + k * 0.37, variances={"var_rnoise": data + 1}, exptime=10.0)
                for k in range(3)]
        outs.append(d.finalize())
        hit_counts.append(hits)
    assert hit_counts[1] == hit_counts[0] == hit_counts[2]
    assert 0 < hit_counts[0][0] <= data.size
    for r in outs[1:]:
        assert np.array_equal(r.data, outs[0].data, equal_nan=True)
        assert np.array_equal(r.weight, outs[0].weight)
        assert np.array_equal(r.context, outs[0].context)
        assert np.array_equal(r.variances["var_rnoise"], outs[0].variances["var_rnoise"], equal_nan=True)


def test_caller_accumulators_updated_in_place():
    shape = (10, 10)
    out = np.full((12, 12), np.nan, np.float32)
    wht = np.zeros((12, 12), np.float32)
    ctx = np.zeros((1, 12, 12), np.uint32)
    d = Drizzler((12, 12), out_data=out, out_weight=wht, out_context=ctx, fillval=-1.0)
    d.add_image(np.ones(shape), None, affine_pixmap(shape, shift=(1, 1)))
    res = d.finalize()
    assert res.data is out and res.weight is wht and res.context is ctx
    assert out[0, 0] == -1.0 and out[5, 5] == 1.0 and ctx[0, 5, 5] == 1


def test_nan_pixmap_region_is_skipped():
    shape = (10, 10)
    pm = affine_pixmap(shape, shift=(2, 2))
    pm[:, :3] = np.nan
    res = run(np.ones(shape, np.float32), None, pm, (14, 14))
    # 7 mapped columns, each fully deposited (edge columns extrapolated)
    assert total(res) == pytest.approx(70.0, rel=1e-6)
    assert (res.weight[:, :5] == 0).all()


# ---------------------------------------------------------------- variances, exptime
def test_variance_single_input_identity():
    shape = (10, 12)
    v = np.full(shape, 4.0, np.float32)
    vp = np.full(shape, 9.0, np.float32)
    res = run(np.ones(shape, np.float32), None, affine_pixmap(shape, shift=(0.3, 0.6)), (12, 14),
              variance_planes=("var_rnoise", "var_poisson"),
              variances={"var_rnoise": v, "var_poisson": vp}, pixel_scale_ratio=1.0)
    ok = res.weight > 0
    np.testing.assert_allclose(res.variances["var_rnoise"][ok], 4.0, rtol=1e-5)
    np.testing.assert_allclose(res.variances["var_poisson"][ok], 9.0, rtol=1e-5)
    assert np.isnan(res.variances["var_rnoise"][~ok]).all()


@pytest.mark.parametrize("psr", [1.0, 0.5])
def test_variance_ivm_combination(psr):
    """Two inputs on the same footprint: V = 1/(1/V1 + 1/V2) / psr**2 (§6.5)."""
    shape = (8, 8)
    pm = affine_pixmap(shape, scale=psr, shift=(1.0, 1.0))
    out_shape = (int(8 / psr) + 4,) * 2
    d = Drizzler(out_shape, variance_planes=("var_rnoise", "var_poisson"), pixel_scale_ratio=psr)
    for v1, p1 in ((2.0, 5.0), (6.0, 1.0)):
        d.add_image(np.ones(shape), np.full(shape, 1 / v1, np.float32), pm,
                    variances={"var_rnoise": np.full(shape, v1), "var_poisson": np.full(shape, p1)})
    res = d.finalize()
    inner = res.weight > 0.999 * res.weight.max()
    assert inner.sum() > 20
    om1, om2 = 1 / 2.0, 1 / 6.0
    np.testing.assert_allclose(res.variances["var_rnoise"][inner], 1 / (om1 + om2) / psr**2, rtol=1e-5)
    want_p = (5.0 * om1**2 + 1.0 * om2**2) / (om1 + om2) ** 2 / psr**2
    np.testing.assert_allclose(res.variances["var_poisson"][inner], want_p, rtol=1e-5)


def test_variance_needs_rnoise_for_ivm():
    with pytest.raises(ParameterError, match="var_rnoise"):
        Drizzler((5, 5), variance_planes=("var_poisson",))
    d = Drizzler((5, 5), variance_planes=("var_poisson",), variance_weight="exptime")
    with pytest.raises(ParameterError, match="variances"):
        d.add_image(np.ones((3, 3)), None, affine_pixmap((3, 3)))


@pytest.mark.parametrize("pixfrac", [1.0, 0.5])
def test_exptime_map(pixfrac):
    shape = (10, 10)
    d = Drizzler((30, 30), exptime_map=True, pixfrac=pixfrac, kernel="square")
    d.add_image(np.ones(shape), None, affine_pixmap(shape, shift=(2.0, 2.0)), exptime=100.0)
    d.add_image(np.ones(shape), None, affine_pixmap(shape, shift=(7.0, 2.0)), exptime=50.0)
    res = d.finalize()
    assert res.exptime[5, 4] == pytest.approx(100.0)
    assert res.exptime[5, 10] == pytest.approx(150.0)
    assert res.exptime[5, 15] == pytest.approx(50.0)
    assert res.exptime[20, 20] == 0.0
    assert res.exptime_max == pytest.approx(150.0)
    covered = res.exptime[res.exptime > 0]
    assert res.exptime_mean == pytest.approx(covered.mean(), rel=1e-6)


# ---------------------------------------------------------------- blot
def test_blot_matches_oracle_and_linear_truth():
    rng = np.random.default_rng(9)
    img = rng.random((20, 24)).astype(np.float32)
    img[3, 4] = np.nan
    pm = distorted_pixmap((15, 15), shift=(-2.0, -1.0))
    pm[0, 0] = np.nan
    got = blot(img, pm, (15, 15))
    want = oracle.blot(img, pm)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.isnan(got[0, 0])
    # a linear image is reproduced exactly where the interpolation is 2-D
    yy, xx = np.mgrid[0:20, 0:24].astype(np.float32)
    lin = 2 * xx - 3 * yy + 1
    pm2 = affine_pixmap((10, 10), scale=1.3, theta=0.2, shift=(3.0, 2.0))
    out = blot(lin, pm2, fillval=-99.0)
    X, Y = pm2[..., 0], pm2[..., 1]
    inside = (X >= 0) & (X < 23) & (Y >= 0) & (Y < 19)
    np.testing.assert_allclose(out[inside], (2 * X - 3 * Y + 1)[inside], atol=1e-4)
    outside = ~((X >= 0) & (X < 24) & (Y >= 0) & (Y < 20))
    assert (out[outside] == -99.0).all()


# ---------------------------------------------------------------- weights and masks
def test_build_mask():
    dq = np.array([[0, 1, 2], [512, 513, 8192]], dtype=np.uint32)
    np.testing.assert_array_equal(build_mask(dq, "~DO_NOT_USE"), [[1, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(build_mask(dq, "~DO_NOT_USE+NON_SCIENCE"), [[1, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(build_mask(dq, "8192"), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(build_mask(dq, None), np.ones((2, 3)))
    assert build_mask(dq, 0).dtype == np.uint8
    np.testing.assert_array_equal(build_mask(dq.astype(np.int64), "~DO_NOT_USE"), [[1, 0, 1], [1, 0, 1]])


def test_build_driz_weight():
    data = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    dq = np.array([[0, pixel.DO_NOT_USE], [pixel.JUMP_DET, 0]], np.uint32)
    var = np.array([[0.5, 0.5], [0.25, 0.0]], np.float32)
    w = build_driz_weight(data, dq, var, 10.0)
    # ivm uses the source-free (box median) read-noise variance of the good pixels: 0.375
    np.testing.assert_allclose(w, [[1 / 0.375, 0.0], [1 / 0.375, 1 / 0.375]], rtol=1e-6)
    assert w.dtype == np.float32
    np.testing.assert_allclose(build_driz_weight(data, dq, None, 10.0), [[1, 0], [1, 1]])
    np.testing.assert_allclose(build_driz_weight(data, dq, var, 10.0, weight_type="exptime"),
                               [[10, 0], [10, 10]])
    np.testing.assert_allclose(build_driz_weight(data, dq, var, None, weight_type=None,
                                                 good_bits="~DO_NOT_USE+JUMP_DET"), [[1, 0], [0, 1]])
    vp = np.full((2, 2), 2.0, np.float32)
    w_sky = build_driz_weight(data, dq, np.ones((2, 2)), None, weight_type="ivm-sky", var_poisson=vp)
    med = np.median([1.0, 3.0, 4.0])
    np.testing.assert_allclose(w_sky, [[1 / (1 + 2 / 1 * med), 0], [1 / (1 + 2 / 3 * med), 1 / (1 + 2 / 4 * med)]],
                               rtol=1e-6)
    with pytest.raises(ParameterError, match="weight_type"):
        build_driz_weight(data, dq, var, 1.0, weight_type="bogus")
    with pytest.raises(ParameterError, match="exptime"):
        build_driz_weight(data, dq, var, None, weight_type="exptime")


def test_ivm_weights_ignore_the_sources_imprint_on_var_rnoise():
    """A star raises var_rnoise at its core; its weight must not drop there (no flux bias)."""
    rng = np.random.default_rng(4)
    var = np.full((128, 128), 1e-3, np.float32) * rng.uniform(0.95, 1.05, (128, 128)).astype(np.float32)
    var[:, 64:] *= 1.5  # a second amplifier with more read noise
    star = var.copy()
    star[30:33, 30:33] *= 3.0
    dq = np.zeros((128, 128), np.uint32)
    data = np.ones((128, 128), np.float32)
    w_flat = build_driz_weight(data, dq, var, None)
    w_star = build_driz_weight(data, dq, star, None)
    np.testing.assert_allclose(w_star, w_flat, rtol=0.02)
    # the amplifier structure stays
    assert np.median(w_flat[:, :64]) / np.median(w_flat[:, 64:]) == pytest.approx(1.5, rel=0.05)


# ---------------------------------------------------------------- errors and misc
def test_bad_inputs():
    with pytest.raises(ParameterError, match="kernel"):
        Drizzler((5, 5), kernel="tophat")
    with pytest.raises(ParameterError, match="pixfrac"):
        Drizzler((5, 5), pixfrac=0)
    with pytest.raises(ParameterError, match="out_shape"):
        Drizzler((5, 0))
    d = Drizzler((5, 5))
    with pytest.raises(ParameterError, match="pixmap"):
        d.add_image(np.ones((3, 3)), None, np.zeros((3, 4, 2)))
    with pytest.raises(ParameterError, match="weight_map"):
        d.add_image(np.ones((3, 3)), np.ones((2, 3)), affine_pixmap((3, 3)))
    with pytest.raises(ParameterError, match="data"):
        d.add_image(np.ones((3, 3, 1)), None, affine_pixmap((3, 3)))
    with pytest.raises(ParameterError, match="square kernel"):
        d.add_image(np.ones((1, 3)), None, affine_pixmap((1, 3)))
    with pytest.raises(ParameterError, match="input_index"):
        d.add_image(np.ones((3, 3)), None, affine_pixmap((3, 3)), input_index=-1)
    ctx = np.zeros((1, 5, 5), np.uint32)
    d2 = Drizzler((5, 5), out_context=ctx)
    with pytest.raises(ParameterError, match="context plane"):
        d2.add_image(np.ones((3, 3)), None, affine_pixmap((3, 3)), input_index=40)


def test_allowed_memory(monkeypatch):
    with pytest.raises(OutputTooLargeError):
        Drizzler((20000, 20000), allowed_memory=1e-6)
    monkeypatch.setenv("DMODEL_ALLOWED_MEMORY", "1e-6")
    with pytest.raises(OutputTooLargeError):
        Drizzler((20000, 20000))
    monkeypatch.delenv("DMODEL_ALLOWED_MEMORY")
    Drizzler((100, 100), allowed_memory=0.5)


def test_pixel_scale_ratio_estimate():
    pm = affine_pixmap((50, 60), scale=0.55, theta=1.0, shift=(3, 4))
    assert estimate_pixel_scale_ratio(pm) == pytest.approx(0.55, rel=1e-9)
    d = Drizzler((100, 100), kernel="turbo")
    d.add_image(np.ones((50, 60)), None, pm)
    assert d.pixel_scale_ratio == pytest.approx(0.55, rel=1e-9)


def test_fillval_indef_leaves_untouched():
    out = np.full((6, 6), 7.0, np.float32)
    d = Drizzler((6, 6), fillval="INDEF", out_data=out)
    d.add_image(np.ones((2, 2)), None, affine_pixmap((2, 2)))
    res = d.finalize()
    assert res.data[5, 5] == 7.0 and res.data[0, 0] == 1.0


# ---------------------------------------------------------------- fused single pass
def _separate_variances(inputs, out_shape, planes, weighting, psr, **kw):
    """§6.5 step by step: drizzle sqrt(V) of each input alone, square, combine in numpy."""
    vsum = {p: np.zeros(out_shape) for p in planes}
    vwht = {p: np.zeros(out_shape) for p in planes}
    for _data, weight, pm, var, texp in inputs:
        vprime = {}
        for p in planes:
            r = run(np.sqrt(var[p]).astype(np.float32), weight, pm, out_shape, want_context=False,
                    pixel_scale_ratio=psr, **kw)
            vprime[p] = r.data.astype(np.float64) ** 2
        if weighting == "ivm":
            with np.errstate(divide="ignore"):
                om = 1.0 / vprime["var_rnoise"]
            om[~(np.isfinite(om) & (om > 0))] = 0.0
        else:
            om = np.full(out_shape, texp)
        for p in planes:
            ok = np.isfinite(vprime[p]) & (vprime[p] >= 0) & (om > 0)
            vsum[p][ok] += vprime[p][ok] * om[ok] ** 2
            vwht[p][ok] += om[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {p: np.where(vwht[p] > 0, vsum[p] / psr**2 / vwht[p] ** 2, np.nan) for p in planes}


@pytest.mark.parametrize(("kernel", "weighting", "psr"),
                         [("square", "ivm", 1.0), ("square", "exptime", 0.7), ("turbo", "ivm", 0.8),
                          ("point", "ivm", 1.0)])
def test_fused_variances_match_separate_drizzles(kernel, weighting, psr):
    rng = np.random.default_rng(11)
    shape = (90, 80)
    out_shape = (150, 140)  # several bands of output rows; inputs cross the output edge
    planes = ("var_rnoise", "var_poisson", "var_flat")
    inputs = []
    for k in range(3):
        data = rng.random(shape).astype(np.float32)
        weight = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        weight[5 + k:9 + k, 10:20] = 0.0
        var = {p: rng.uniform(0.5, 3.0, shape).astype(np.float32) for p in planes}
        pm = affine_pixmap(shape, scale=psr, theta=0.3 + 0.2 * k, shift=(40.0 + 7 * k, -5.0 + 3 * k))
        inputs.append((data, weight, pm, var, 50.0 + 10 * k))
    d = Drizzler(out_shape, kernel=kernel, variance_planes=planes, variance_weight=weighting,
                 pixel_scale_ratio=psr, num_threads=2)
    for data, weight, pm, var, texp in inputs:
        d.add_image(data, weight, pm, variances=var, exptime=texp)
    res = d.finalize()
    want = _separate_variances(inputs, out_shape, planes, weighting, psr, kernel=kernel)
    for p in planes:
        got = res.variances[p]
        assert np.array_equal(np.isnan(got), np.isnan(want[p]))
        ok = ~np.isnan(got)
        assert ok.sum() > 5000
        np.testing.assert_allclose(got[ok], want[p][ok], rtol=2e-5)


@pytest.mark.parametrize("pixfrac", [1.0, 0.6])
def test_exptime_weight_coverage_independent_of_data_weight(pixfrac):
    """The exposure-time map follows exptime_weight (pixfrac 1), not the data weights."""
    shape = (40, 40)
    weight = np.ones(shape, np.float32)
    weight[:, :20] = 0.0  # no data weight on the left half ...
    ew = np.ones(shape, np.float32)
    ew[:10] = 0.0  # ... and no exposure on the bottom rows
    pm = affine_pixmap(shape, theta=0.25, shift=(30.0, 20.0))
    out_shape = (100, 110)
    d = Drizzler(out_shape, exptime_map=True, pixfrac=pixfrac, num_threads=2)
    d.add_image(np.ones(shape), weight, pm, exptime=30.0, exptime_weight=ew)
    d.add_image(np.ones(shape), weight, pm + 9.0, exptime=20.0, exptime_weight=ew)
    res = d.finalize()
    cov = [run(np.ones(shape), ew, p, out_shape, want_context=False).weight != 0 for p in (pm, pm + 9.0)]
    want = np.where(cov[0], 30.0, 0.0) + np.where(cov[1], 20.0, 0.0)
    np.testing.assert_array_equal(res.exptime, want.astype(np.float32))
    # the two coverages really differ both ways, so the map cannot have followed the data weights
    data_cov = run(np.ones(shape), weight, pm, out_shape, pixfrac=pixfrac).weight != 0
    assert (cov[0] & ~data_cov).sum() > 100 and (data_cov & ~cov[0]).sum() > 100


@pytest.mark.parametrize("scale", [0.3, 0.11])
def test_square_large_drops_match_oracle(scale):
    """Drops covering many output pixels (edge sweep up to 64 pixels, exact boxer beyond)."""
    rng = np.random.default_rng(12)
    shape = (5, 6)
    data = rng.random(shape).astype(np.float32)
    pm = affine_pixmap(shape, scale=scale, theta=0.35, shift=(3.0, -4.0))
    out_shape = (60, 64)  # the magnified input crosses the output edges
    res = run(data, None, pm, out_shape, kernel="square", pixfrac=0.9, num_threads=2)
    o, ow = oracle.drizzle(data, np.ones(shape, np.float32), pm, out_shape, kernel="square", pixfrac=0.9)
    covered = ow != 0
    assert np.array_equal(res.weight != 0, covered)
    np.testing.assert_allclose(res.weight, ow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.data[covered], o[covered], rtol=1e-5, atol=2e-6)


# ---------------------------------------------------------------- square kernel overlap fast path
def _oracle_cells(qx, qy, i0, i1, j0, j1):
    """Kernel-signed (clockwise positive: minus shoelace) area of the quad in each cell."""
    quad = list(zip(qx, qy, strict=True))
    out = np.zeros((j1 - j0 + 1, i1 - i0 + 1))
    for jj in range(j0, j1 + 1):
        for ii in range(i0, i1 + 1):
            out[jj - j0, ii - i0] = -oracle.shoelace(
                oracle.clip_polygon(quad, ii - 0.5, ii + 0.5, jj - 0.5, jj + 0.5))
    return out


def _random_quads(rng, n):
    """Rotated, sheared, scaled (some mirrored) and slightly warped unit squares, kernel corner order."""
    base = np.array([[-0.5, 0.5], [0.5, 0.5], [0.5, -0.5], [-0.5, -0.5]])
    for _ in range(n):
        th = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        shear = np.array([[1.0, rng.uniform(-0.4, 0.4)], [0.0, 1.0]])
        scale = np.diag(rng.uniform(0.2, 2.0, 2) * (1 if rng.random() < 0.8 else np.array([1, -1])))
        corners = base @ (rot @ shear @ scale).T + rng.uniform(4.0, 6.0, 2)
        corners += rng.uniform(-0.04, 0.04, corners.shape)  # not a parallelogram
        yield np.ascontiguousarray(corners[:, 0]), np.ascontiguousarray(corners[:, 1])


def _bbox_block(qx, qy):
    i0, i1 = int(np.floor(qx.min() + 0.5)), int(np.floor(qx.max() + 0.5))
    j0, j1 = int(np.floor(qy.min() + 0.5)), int(np.floor(qy.max() + 0.5))
    return i0, i1, j0, j1


def test_square_overlaps_match_polygon_clipping():
    from romancore._ext import drizzle as kern

    rng = np.random.default_rng(21)
    worst = 0.0
    for qx, qy in _random_quads(rng, 3000):
        i0, i1, j0, j1 = _bbox_block(qx, qy)
        got = kern.square_overlaps(qx, qy, i0, i1, j0, j1)
        want = _oracle_cells(qx, qy, i0, i1, j0, j1)
        worst = max(worst, float(np.max(np.abs(got - want))))
        # the block holds the whole quadrilateral: the cells add up to its area
        assert got.sum() == pytest.approx(-oracle.shoelace(list(zip(qx, qy, strict=True))), abs=1e-12)
    assert worst < 1e-12


def test_square_overlaps_on_a_cut_block():
    """Blocks cut by the output edges or a band boundary: only the cells inside are computed."""
    from romancore._ext import drizzle as kern

    rng = np.random.default_rng(22)
    for qx, qy in _random_quads(rng, 1500):
        i0, i1, j0, j1 = _bbox_block(qx, qy)
        a0 = int(rng.integers(i0, i1 + 1))
        a1 = int(rng.integers(a0, i1 + 1))
        b0 = int(rng.integers(j0, j1 + 1))
        b1 = int(rng.integers(b0, j1 + 1))
        got = kern.square_overlaps(qx, qy, a0, a1, b0, b1)
        np.testing.assert_allclose(got, _oracle_cells(qx, qy, a0, a1, b0, b1), rtol=0, atol=1e-12)


def test_square_overlaps_exact_on_grid_aligned_quads():
    """Edges on cell boundaries (vertical and horizontal edges, corners at half-integers): exact areas."""
    from romancore._ext import drizzle as kern

    rng = np.random.default_rng(23)
    for _ in range(300):
        x0, y0 = rng.integers(0, 6, 2) + 0.5
        w, h = rng.integers(1, 4, 2) * rng.choice([0.5, 1.0])
        qx = np.array([x0, x0 + w, x0 + w, x0])
        qy = np.array([y0 + h, y0 + h, y0, y0])
        i0, i1, j0, j1 = _bbox_block(qx, qy)
        got = kern.square_overlaps(qx, qy, i0, i1, j0, j1)
        want = _oracle_cells(qx, qy, i0, i1, j0, j1)
        assert np.array_equal(got, want)   # halves and quarters: exact in binary
        assert np.array_equal(got == 0, want == 0)


@pytest.mark.parametrize("theta", [0.0, 0.003, 0.7, 2.4])
def test_single_band_and_band_table_paths_agree(theta):
    """One thread without scratch drops in one band; more threads use the band table: same results."""
    rng = np.random.default_rng(24)
    shape = (260, 256)  # above the size where the parallel path is used
    data = rng.random(shape).astype(np.float32)
    weight = rng.uniform(0.0, 2.0, shape).astype(np.float32)
    weight[rng.random(shape) < 0.1] = 0.0
    pm = affine_pixmap(shape, scale=rng.uniform(0.9, 1.1), theta=theta, shift=(60.0, 20.0))
    pm[5, 7] = np.nan
    outs, hits = [], []
    for nt in (1, 2):
        d = Drizzler((300, 280), num_threads=nt)   # the input crosses the output edges
        hits.append([d.add_image(data + k, weight, pm + 0.31 * k) for k in range(2)])
        outs.append(d.finalize())
    assert hits[0] == hits[1]
    assert 0 < hits[0][0] < int(np.sum(weight > 0))
    assert np.array_equal(outs[0].data, outs[1].data, equal_nan=True)
    assert np.array_equal(outs[0].weight, outs[1].weight)
    assert np.array_equal(outs[0].context, outs[1].context)


def test_square_kernel_matches_oracle_rotated_sheared():
    """Whole square drizzle (single-band path) against the oracle on a rotated, sheared map."""
    rng = np.random.default_rng(25)
    shape = (10, 11)
    data = rng.random(shape).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    X = 1.05 * xx * np.cos(0.3) - 0.95 * yy * np.sin(0.3) + 0.2 * yy - 1.3
    Y = 1.05 * xx * np.sin(0.3) + 0.95 * yy * np.cos(0.3) + 0.4
    pm = np.dstack([X, Y])
    out_shape = (12, 12)   # cuts the input on every side
    res = run(data, weight, pm, out_shape, kernel="square", num_threads=1)
    o, ow = oracle.drizzle(data, weight, pm, out_shape, kernel="square")
    covered = ow != 0
    assert np.array_equal(res.weight != 0, covered)
    np.testing.assert_allclose(res.weight, ow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.data[covered], o[covered], rtol=1e-5, atol=2e-6)


def _nanmedian_tiles(var, good, block):
    """numpy oracle of the tile medians of source_free_variance."""
    ny, nx = var.shape
    by, bx = -(-ny // block), -(-nx // block)
    vals = np.where(good & np.isfinite(var) & (var > 0), var, np.nan).astype(np.float32)
    out = np.full((by, bx), np.nan, np.float32)
    for b in range(by):
        for a in range(bx):
            t = vals[b * block:(b + 1) * block, a * block:(a + 1) * block]
            if np.isfinite(t).any():
                out[b, a] = np.nanmedian(t)
    return out


@pytest.mark.parametrize("nthreads", [1, 2])
def test_tile_medians_match_nanmedian(nthreads):
    from romancore._ext import drizzle as kern

    rng = np.random.default_rng(31)
    shape = (203, 190)   # edge tiles are cut
    var = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    var[rng.random(shape) < 0.05] = np.nan
    var[rng.random(shape) < 0.05] = -1.0
    var[:40, :40] = np.round(var[:40, :40], 1)    # ties
    good = rng.random(shape) > 0.2
    good[60:100, 0:40] = False                    # a tile without good pixels
    good[0:20, 160:] = False                      # few values: odd and even counts
    for block in (7, 8, 20, 64):
        got = kern.tile_medians(var, good.view(np.uint8), block, nthreads)
        want = _nanmedian_tiles(var, good, block)
        assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(kern.tile_medians(var, good.view(np.uint8), 20, nthreads)[3, 0])


def test_source_free_variance_fills_empty_boxes():
    from romancore.algorithms.drizzle import source_free_variance

    rng = np.random.default_rng(32)
    var = rng.uniform(1.0, 2.0, (130, 128)).astype(np.float32)
    good = np.ones(var.shape, bool)
    good[:64, :64] = False
    out = source_free_variance(var, good)
    med = _nanmedian_tiles(var, good, 64)
    assert out.dtype == np.float32 and out.shape == var.shape
    assert np.all(out[:64, :64] == np.nanmedian(med))
    assert np.all(out[64:128, 64:] == med[1, 1]) and np.all(out[128:, :64] == med[2, 0])
    assert np.isnan(source_free_variance(var, np.zeros(var.shape, bool))).all()
