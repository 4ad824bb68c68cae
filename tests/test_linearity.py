import numpy as np
import pytest

from romancore.algorithms.linearity import CLIP_DN, correct_linearity
from romancore.dq import group, pixel
from romancore.errors import ParameterError
from tests.oracles import detector as oracle

SAT, DNU = int(group.SATURATED), int(group.DO_NOT_USE)
NOLIN = int(pixel.NO_LIN_CORR)


def _zeros_dq(data):
    return np.zeros(data.shape, np.uint8), np.zeros(data.shape[1:], np.uint32)


def test_classic_hand_computed():
    data = np.array([[[100.0, 100.0, 100.0, 100.0, 2000.0]], [[200.0, 200.0, 200.0, 200.0, 5000.0]]], np.float32)
    gdq, pdq = _zeros_dq(data)
    gdq[1, 0, 1] = SAT
    coeffs = np.zeros((3, 1, 5), np.float32)
    coeffs[1] = 1.0
    coeffs[2] = 1e-3
    coeffs[2, 0, 4] = 1.0  # 5000 + 2.5e7 -> clipped
    coeffs[2, 0, 2] = np.nan
    lin_dq = np.array([[0, 0, 0, NOLIN, 0]], np.uint32)
    assert correct_linearity(data, gdq, pdq, coeffs, lin_dq) == "classic"
    np.testing.assert_allclose(data[:, 0, 0], [110.0, 240.0], rtol=1e-6)
    np.testing.assert_allclose(data[:, 0, 1], [110.0, 200.0], rtol=1e-6)  # saturated untouched
    np.testing.assert_array_equal(data[:, 0, 2], [100.0, 200.0])  # NaN coefficient
    np.testing.assert_array_equal(data[:, 0, 3], [100.0, 200.0])  # NO_LIN_CORR in reference
    assert data[1, 0, 4] == CLIP_DN and gdq[1, 0, 4] == DNU
    assert data[0, 0, 4] == CLIP_DN and gdq[0, 0, 4] == DNU  # 2000 + 4e6
    assert pdq[0].tolist() == [0, 0, NOLIN, NOLIN, 0]


def test_zero_linear_term_flagged():
    data = np.full((2, 1, 1), 50.0, np.float32)
    gdq, pdq = _zeros_dq(data)
    coeffs = np.zeros((2, 1, 1), np.float32)
    coeffs[0] = 3.0
    correct_linearity(data, gdq, pdq, coeffs)
    assert np.all(data == 50.0) and pdq[0, 0] == NOLIN


def _nonlinear_setup(rng, npix, rp):
    """Raw reads from a known compressive response raw = s - beta s^2."""
    beta = rng.uniform(1e-6, 3e-6, npix)
    rate = rng.uniform(50.0, 1500.0, npix)
    nread = rp[-1][-1]
    s = rate[None, :] * np.arange(1, nread + 1)[:, None]
    raw_reads = s - beta * s**2
    raw = np.stack([raw_reads[np.array(r) - 1].mean(axis=0) for r in rp])
    true = np.stack([s[np.array(r) - 1].mean(axis=0) for r in rp])
    # per-pixel polynomial fits of the forward (raw -> s) and inverse (s -> raw) maps
    grid = np.linspace(0, 32000, 400)
    ncoef = 6
    lin = np.empty((ncoef, npix))
    ilin = np.empty((ncoef, npix))
    for p in range(npix):
        sg = grid
        rg = sg - beta[p] * sg**2
        keep = rg > 0
        lin[:, p] = np.polynomial.polynomial.polyfit(rg[keep] / 1e4, sg[keep], ncoef - 1)
        ilin[:, p] = np.polynomial.polynomial.polyfit(sg[keep] / 1e4, rg[keep], ncoef - 1)
    scale = 1e4 ** -np.arange(ncoef)
    lin *= scale[:, None]
    ilin *= scale[:, None]
    return raw, true, lin, ilin


def test_physics_inverts_known_nonlinearity():
    rng = np.random.default_rng(5)
    rp = [[1], [2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12, 13], [14], [15, 16, 17, 18], [19]]
    npix = 300
    raw, true, lin, ilin = _nonlinear_setup(rng, npix, rp)
    shape3 = (len(rp), 1, npix)
    c = lin.reshape(-1, 1, npix).astype(np.float32)
    ic = ilin.reshape(-1, 1, npix).astype(np.float32)

    classic = raw.reshape(shape3).astype(np.float32)
    gdq, pdq = _zeros_dq(classic)
    correct_linearity(classic, gdq, pdq, c)
    err_classic = np.abs(classic[:, 0] - true)

    readlev = raw.reshape(shape3).astype(np.float32)
    gdq, pdq = _zeros_dq(readlev)
    assert correct_linearity(readlev, gdq, pdq, c, read_pattern=rp, inverse_coeffs=ic) == "read_level"
    err_read = np.abs(readlev[:, 0] - true)

    single = [i for i, r in enumerate(rp) if len(r) == 1]
    multi = [i for i, r in enumerate(rp) if len(r) > 1]
    rel_classic = err_classic / true
    rel_read = err_read / true
    # raw counts are up to ~8 % low; classic is exact (to the polynomial fit, ~3e-4 at
    # 50 DN) on single reads ...
    assert np.max(np.abs(raw - true) / true) > 0.05
    assert np.max(rel_classic[single]) < 5e-4
    # ... but biased on resultants averaging many reads; read-level removes the bias
    assert np.median(rel_classic[multi]) > 100 * np.median(rel_read[multi])
    assert np.max(rel_read[multi]) < 1e-4


@pytest.mark.parametrize("with_inl", [False, True])
def test_read_level_matches_oracle(with_inl):
    rng = np.random.default_rng(7 + with_inl)
    rp = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11]]
    ny, nx = 4, 300
    n = len(rp)
    tbar = np.array([np.mean(r) for r in rp])
    data = (rng.uniform(10, 800, (ny, nx))[None] * tbar[:, None, None] + rng.normal(0, 4, (n, ny, nx)))
    data = data.astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    first = rng.integers(1, n + 3, (ny, nx))
    for g in range(n):
        gdq[g][first <= g] |= SAT
    pdq = np.where(rng.random((ny, nx)) < 0.05, pixel.HOT, 0).astype(np.uint32)
    c = np.zeros((4, ny, nx), np.float32)
    c[1] = rng.uniform(0.98, 1.02, (ny, nx))
    c[2] = rng.uniform(0, 3e-6, (ny, nx))
    c[3] = rng.uniform(0, 1e-11, (ny, nx))
    c[0] = rng.normal(0, 1, (ny, nx))
    ic = np.zeros((3, ny, nx), np.float32)
    ic[1] = 1.0 / c[1]
    ic[2] = -c[2]
    c[2, 0, 3] = np.nan
    c[1, 1, 4] = 0.0
    ldq = np.where(rng.random((ny, nx)) < 0.05, NOLIN, 0).astype(np.uint32)
    idq = np.where(rng.random((ny, nx)) < 0.05, pixel.DEAD, 0).astype(np.uint32)
    if with_inl:
        value = np.linspace(0, 20000, 11)
        corr = rng.normal(0, 3, (3, 11))
    else:
        value = corr = None
    exp_d, exp_g, exp_p = oracle.linearity(data, gdq, pdq, c, ldq, rp, ic, idq, value, corr)
    d, g, p = data.copy(), gdq.copy(), pdq.copy()
    correct_linearity(d, g, p, c, ldq, read_pattern=rp, inverse_coeffs=ic, inverse_dq=idq,
                      inl_value=value, inl_correction=corr)
    np.testing.assert_allclose(d, exp_d, rtol=2e-6, atol=1e-3)
    np.testing.assert_array_equal(g, exp_g)
    np.testing.assert_array_equal(p, exp_p)
    sat = (gdq & SAT) != 0
    np.testing.assert_array_equal(d[sat], data[sat])
    assert np.abs(d - data)[~sat].max() > 1.0


def test_classic_matches_oracle():
    rng = np.random.default_rng(3)
    data = rng.uniform(-100, 60000, (4, 20, 30)).astype(np.float32)
    gdq = np.where(rng.random(data.shape) < 0.2, SAT, 0).astype(np.uint8)
    pdq = np.zeros((20, 30), np.uint32)
    c = rng.normal(0, 1, (5, 20, 30)).astype(np.float32) * np.array([1, 0.1, 1e-6, 1e-11, 1e-16], np.float32)[:, None, None]
    c[1] += 1.0
    ldq = np.where(rng.random((20, 30)) < 0.1, NOLIN | pixel.DEAD, 0).astype(np.uint32)
    exp_d, exp_g, exp_p = oracle.linearity(data, gdq, pdq, c, ldq)
    correct_linearity(data, gdq, pdq, c, ldq)
    np.testing.assert_allclose(data, exp_d, rtol=1e-6, atol=1e-3)
    np.testing.assert_array_equal(gdq, exp_g)
    np.testing.assert_array_equal(pdq, exp_p)


def test_bad_inputs():
    data = np.ones((3, 2, 2), np.float32)
    gdq, pdq = _zeros_dq(data)
    c = np.zeros((2, 2, 2), np.float32)
    with pytest.raises(ParameterError, match="coeffs must have shape"):
        correct_linearity(data, gdq, pdq, np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ParameterError, match="read_pattern is required"):
        correct_linearity(data, gdq, pdq, c, inverse_coeffs=c)
    with pytest.raises(ParameterError, match="inl_correction must have shape"):
        correct_linearity(data, gdq, pdq, c, read_pattern=[[1], [2], [3]], inverse_coeffs=c,
                          inl_value=np.arange(3.0), inl_correction=np.zeros((2, 3)))
    with pytest.raises(ParameterError, match="pixeldq must have dtype uint32"):
        correct_linearity(data, gdq, pdq.astype(np.int32), c)
    with pytest.raises(ParameterError, match="data must be C-contiguous"):
        correct_linearity(data[:, :, ::-1], gdq, pdq, c)


@pytest.mark.parametrize("read_level", [False, True])
def test_constant_only_polynomial_is_identity(read_level):
    data = np.array([[[10.0, 20.0]], [[30.0, 40.0]], [[50.0, 60.0]]], np.float32)
    gdq, pdq = _zeros_dq(data)
    c = np.full((1, 1, 2), 5.0, np.float32)
    kw = dict(read_pattern=[[1], [2], [3, 4]], inverse_coeffs=c) if read_level else {}
    before = data.copy()
    correct_linearity(data, gdq, pdq, c, **kw)
    np.testing.assert_allclose(data, before, rtol=1e-6)
    assert np.all(pdq == NOLIN)
