import numpy as np
import pytest

from romancore.algorithms import refpix as rp_mod
from romancore.algorithms.refpix import PAD, correct_refpix
from romancore.dq import pixel
from romancore.errors import ParameterError
from tests.oracles import detector as oracle

NRES, NY, W = 5, 64, 16
NX = 32 * W
ROW = W + PAD
LENGTH = NY * ROW
NFREQ = LENGTH // 2 + 1


def _zero_coeffs():
    z = np.zeros((32, NFREQ), np.complex128)
    return z, z.copy(), z.copy()


def _readout_time():
    """Read-out time index of every detector pixel and of amp33 (same clock for all channels)."""
    tc = np.arange(NY)[:, None] * ROW + np.arange(W)[None, :] - (LENGTH - 1) / 2.0
    det = np.empty((NY, NX))
    for c in range(32):
        det[:, c * W:(c + 1) * W] = tc[:, ::-1] if c % 2 else tc
    return det, tc


def _scene(rng):
    """True signal: ramps of positive rates in the science area, nothing on reference pixels."""
    rate = rng.uniform(1.0, 20.0, (NY, NX))
    rate[:4] = rate[-4:] = 0
    rate[:, :4] = rate[:, -4:] = 0
    return rate[None] * np.arange(1, NRES + 1)[:, None, None] + 1000.0 * (rate[None] > 0)


def _bias(rng):
    """Per-channel, per-frame offsets (+-50 DN) and drifts in read-out time."""
    det_t, amp_t = _readout_time()
    a = rng.uniform(-50, 50, (NRES, 33))
    s = rng.uniform(-1e-3, 1e-3, (NRES, 33))
    b = np.empty((NRES, NY, NX))
    for c in range(32):
        cols = slice(c * W, (c + 1) * W)
        b[:, :, cols] = a[:, c, None, None] + s[:, c, None, None] * det_t[None, :, cols]
    bamp = a[:, 32, None, None] + s[:, 32, None, None] * amp_t[None]
    return b, bamp


def _frame_diffs(x):
    return x[1:] - x[0]


def test_removes_injected_amplifier_offsets_and_drifts():
    rng = np.random.default_rng(1)
    truth = _scene(rng)
    b, bamp = _bias(rng)
    data = (truth + b + 2000.0).astype(np.float32)
    amp33 = np.round(bamp + 3000.0).astype(np.uint16)
    before = np.abs(_frame_diffs(data) - _frame_diffs(truth)).max()
    out = data.copy()
    correct_refpix(out, amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs())
    resid = _frame_diffs(out) - _frame_diffs(truth)
    assert before > 20
    # float32 arithmetic on ~3000 DN values: residual at the 1e-3 DN level
    assert np.abs(resid).max() < 2e-3
    # the per-pixel frame mean (pedestal) is kept
    np.testing.assert_allclose(out.mean(axis=0), data.mean(axis=0), atol=2e-3)


def test_trend_residual_with_read_noise():
    rng = np.random.default_rng(2)
    truth = _scene(rng)
    b, bamp = _bias(rng)
    noise = rng.normal(0, 5.0, truth.shape)
    data = (truth + b + noise + 2000.0).astype(np.float32)
    amp33 = np.round(bamp + 3000.0).astype(np.uint16)
    out = data.copy()
    correct_refpix(out, amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs())
    resid = _frame_diffs(out) - _frame_diffs(truth + noise)
    # the line is fitted to 8 rows x 16 columns = 128 reference pixels per channel with
    # 5 DN noise: offsets to ~0.5 DN; differences of two frames ~0.7 DN rms (plus drift error)
    rms = resid.std()
    assert 0.2 < rms < 1.5
    assert np.abs(resid.mean()) < 0.2


def test_switch_remove_trends_off_keeps_drifts():
    rng = np.random.default_rng(3)
    truth = _scene(rng)
    b, bamp = _bias(rng)
    data = (truth + b + 2000.0).astype(np.float32)
    amp33 = np.round(bamp + 3000.0).astype(np.uint16)
    out = data.copy()
    correct_refpix(out, amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs(), remove_trends=False)
    np.testing.assert_allclose(out, data, atol=1e-3)


def test_switch_remove_offset():
    rng = np.random.default_rng(4)
    truth = _scene(rng)
    b, bamp = _bias(rng)
    data = (truth + b).astype(np.float32)
    amp33 = np.round(bamp + 3000.0).astype(np.uint16)
    on, off = data.copy(), data.copy()
    correct_refpix(on, amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs(), remove_offset=True)
    correct_refpix(off, amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs(), remove_offset=False)
    # with the offset removed and restored the pedestal (frame mean of the bias) stays ...
    np.testing.assert_allclose(on, truth + b.mean(axis=0), atol=2e-3)
    # ... without it the whole bias, pedestal included, is fitted away on the reference rows
    np.testing.assert_allclose(off, truth, atol=2e-3)


def test_switch_cosine_interpolate_fills_missing_amp33():
    rng = np.random.default_rng(5)
    data = rng.normal(100, 2, (NRES, NY, NX)).astype(np.float32)
    amp33 = np.round(3000 + 10 * np.sin(np.arange(NY) / 5.0))[None, :, None] + np.zeros((NRES, 1, W))
    amp33 = (amp33 + np.arange(NRES)[:, None, None] * 7).astype(np.uint16)
    amp33[:, 30, 5] = 0  # a dead amp33 pixel
    on = correct_refpix(data.copy(), amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs(),
                        cosine_interpolate=True, remove_trends=False)
    off = correct_refpix(data.copy(), amp33, np.zeros((NY, NX), np.uint32), *_zero_coeffs(),
                         cosine_interpolate=False, remove_trends=False)
    assert np.all(off[:, 30, 5] == 0)
    # the dead pixel has offset 0; it is filled with its neighbours' deviation from their
    # frame mean (7 DN per frame), and the output amp33 is |value|
    np.testing.assert_allclose(on[:, 30, 5], np.abs(7.0 * (np.arange(NRES) - 2)), atol=1.0)
    mask = np.ones(amp33.shape, bool)
    mask[:, 30, 5] = False
    np.testing.assert_array_equal(on[mask], off[mask])


def _common_mode(rng, smooth):
    """A signal n(t) in read-out time shared by all channels and amp33 (pads included)."""
    tt = np.arange(LENGTH).reshape(NY, ROW)
    n = np.empty((NRES, NY, ROW))
    for f in range(NRES):
        if smooth:
            n[f] = 20 * np.sin(2 * np.pi * tt / 300.0 + f) + 10 * np.cos(2 * np.pi * tt / 1000.0 - f)
        else:
            n[f] = rng.integers(-20, 21, (NY, ROW))
    return n


def _inject_common_mode(n):
    data = np.full((NRES, NY, NX), 500.0)
    for c in range(32):
        blk = n[:, :, :W]
        data[:, :, c * W:(c + 1) * W] += blk[:, :, ::-1] if c % 2 else blk
    amp33 = (3000 + n[:, :, :W]).astype(np.uint16)
    return data.astype(np.float32), amp33


def test_alpha_transfers_amp33_noise():
    # alpha = L / (2 nfreq) makes the correction of every channel equal to the amp33 series
    rng = np.random.default_rng(6)
    n = _common_mode(rng, smooth=False)
    data, amp33 = _inject_common_mode(n)
    alpha = np.full((32, NFREQ), LENGTH / (2 * NFREQ), np.complex128)
    gamma = np.zeros_like(alpha)
    out = data.copy()
    correct_refpix(out, amp33, np.zeros((NY, NX), np.uint32), alpha, gamma, gamma.copy(),
                   remove_trends=False, cosine_interpolate=False)
    assert np.abs(data - 500).max() >= 19
    # what is left is the per-pixel mean over frames of the common mode (offset restored)
    expect, _ = _inject_common_mode(np.repeat(n.mean(axis=0, keepdims=True), NRES, axis=0))
    np.testing.assert_allclose(out, expect, atol=1e-3)


def test_switch_fft_interpolate_improves_lowpass_correction():
    # a smooth common mode seen through a low-pass alpha: the pads must hold the
    # signal too, which the FFT interpolation provides
    n = _common_mode(None, smooth=True)
    data, amp33 = _inject_common_mode(np.round(n))
    k = np.arange(NFREQ)
    lowpass = np.exp(-0.5 * (k / 60.0) ** 2)
    alpha = np.repeat((LENGTH / (2 * NFREQ) * lowpass)[None], 32, axis=0).astype(np.complex128)
    zero = np.zeros_like(alpha)
    res = {}
    for fft in (False, True):
        out = data.copy()
        correct_refpix(out, amp33, np.zeros((NY, NX), np.uint32), alpha, zero, zero.copy(),
                       remove_trends=False, cosine_interpolate=False, fft_interpolate=fft)
        res[fft] = np.std(out - out.mean(axis=0))
    # the 3 apodised iterations only reach ~3 samples into each 12-sample pad: a modest gain
    assert res[True] < 0.95 * res[False]


def test_fft_fill_reconstructs_pad_edges():
    tt = np.arange(LENGTH)
    s = (20 * np.sin(2 * np.pi * tt / 300.0)).astype(np.float32)
    pad = np.zeros((NY, ROW), bool)
    pad[:, W:] = True
    x = s.copy()
    x[pad.ravel()] = 0
    y = rp_mod._fft_fill_pads(x, pad.ravel(), 3)
    err = np.sqrt(np.mean(((y - s).reshape(NY, ROW)) ** 2, axis=0))
    before = np.sqrt(np.mean(s.reshape(NY, ROW) ** 2, axis=0))
    np.testing.assert_array_equal(y[~pad.ravel()], s[~pad.ravel()])
    assert err[W] < 0.6 * before[W] and err[-1] < 0.6 * before[-1]


def test_bad_reference_pixels_are_zeroed():
    rng = np.random.default_rng(7)
    data = rng.normal(100, 2, (NRES, NY, NX)).astype(np.float32)
    amp33 = np.full((NRES, NY, W), 3000, np.uint16)
    pdq = np.zeros((NY, NX), np.uint32)
    pdq[0, 0] = pixel.BAD_REF_PIXEL
    out = data.copy()
    correct_refpix(out, amp33, pdq, *_zero_coeffs(), remove_trends=False)
    assert np.all(out[:, 0, 0] == 0)
    kept = data.copy()
    correct_refpix(kept, amp33, pdq, *_zero_coeffs(), remove_trends=False, zero_bad_ref_pix=False)
    assert np.all(kept[:, 0, 0] != 0)


@pytest.mark.parametrize("switches", [
    dict(),
    dict(remove_offset=False),
    dict(cosine_interpolate=False, fft_interpolate=False),
])
def test_matches_oracle(switches):
    rng = np.random.default_rng(8)
    truth = _scene(rng)
    b, bamp = _bias(rng)
    data = (truth + b + rng.normal(0, 3, truth.shape) + 2000).astype(np.float32)
    amp33 = np.round(bamp + 3000 + rng.normal(0, 3, bamp.shape)).astype(np.uint16)
    amp33[:, 10, 3] = 0
    pdq = np.zeros((NY, NX), np.uint32)
    pdq[2, 100] = pixel.BAD_REF_PIXEL
    coef = [(rng.normal(0, 1e-3, (32, NFREQ)) + 1j * rng.normal(0, 1e-3, (32, NFREQ))) for _ in range(3)]
    exp_d, exp_a = oracle.refpix(data, amp33, pdq, *coef, **switches)
    out = data.copy()
    a33 = correct_refpix(out, amp33, pdq, *coef, **switches)
    np.testing.assert_allclose(out, exp_d, atol=2e-3)
    assert np.abs(a33.astype(int) - exp_a.astype(int)).max() <= 1


def test_bad_inputs():
    data = np.zeros((NRES, NY, NX), np.float32)
    amp33 = np.zeros((NRES, NY, W), np.uint16)
    pdq = np.zeros((NY, NX), np.uint32)
    z = _zero_coeffs()
    with pytest.raises(ParameterError, match="not a whole number of channels of the amp33 width 16"):
        correct_refpix(data[:, :, :-1].copy(), amp33, pdq[:, :-1].copy(), *z)
    with pytest.raises(ParameterError, match="alpha must have shape"):
        correct_refpix(data, amp33, pdq, np.zeros((32, 7), complex), *z[1:])
    with pytest.raises(ParameterError, match="amp33 must have shape"):
        correct_refpix(data, amp33[:2], pdq, *z)
    with pytest.raises(ParameterError, match="data must have dtype float32"):
        correct_refpix(data.astype(np.float64), amp33, pdq, *z)
    assert rp_mod.cosine_kernel()[15] == 1.0


# ------------------------------------------------------------------ sub-arrays: 1 and 2 channels
def _readout_time_n(nchan):
    """Read-out time index (centred) of the detector pixels of ``nchan`` channels."""
    tc = np.arange(NY)[:, None] * ROW + np.arange(W)[None, :] - (LENGTH - 1) / 2.0
    return np.hstack([tc[:, ::-1] if c % 2 else tc for c in range(nchan)])


def _oracle_n(data, amp33, alpha, gamma, zeta, remove_offset=True, remove_trends=True):
    """Literal section 4 for ``nchan = nx // w`` channels (no bad pixels, no amp33 holes, amp33
    interpolation left out: alpha must be zero). The right reference columns are the last 4
    detector columns at their own read-out times."""
    data = data.astype(np.float64)
    nres, ny, nx = data.shape
    nchan = nx // W
    if remove_offset:
        off = data.mean(axis=0)
        data = data - off
    t = _readout_time_n(nchan)
    ref = np.zeros((ny, nx), bool)
    ref[:4] = ref[-4:] = True
    tpos = (t + (LENGTH - 1) / 2.0).astype(int)  # position in the padded read-out series
    for f in range(nres):
        fr = data[f]
        if remove_trends:
            for c in range(nchan):
                cols = slice(c * W, (c + 1) * W)
                sel = ref[:, cols] & (fr[:, cols] != 0)
                m, b = np.polyfit(t[:, cols][sel], fr[:, cols][sel], 1)
                nz = fr[:, cols] != 0
                blk = fr[:, cols]
                blk[nz] -= m * t[:, cols][nz] + b
        hats = []
        for cols in (slice(0, 4), slice(nx - 4, nx)):
            series = np.zeros(LENGTH)
            series[tpos[:, cols].ravel()] = fr[:, cols].ravel()
            hats.append(np.fft.rfft(series / LENGTH) * (ROW / 4))
        for c in range(nchan):
            corr = np.fft.irfft((hats[0] * gamma[c] + hats[1] * zeta[c]) * 2 * NFREQ, n=LENGTH)
            cols = slice(c * W, (c + 1) * W)
            fr[:, cols] -= corr[tpos[:, cols]]
    if remove_offset:
        data = data + off
    return data


def _lowpass_coeffs(nchan, cutoff=20):
    g = np.zeros((nchan, NFREQ), np.complex128)
    g[:, :cutoff] = 0.5
    return g, g.copy()


@pytest.mark.parametrize("nchan", [1, 2])
def test_subarray_removes_offsets_and_drifts(nchan):
    rng = np.random.default_rng(20 + nchan)
    nx = nchan * W
    rate = rng.uniform(1.0, 20.0, (NY, nx))
    rate[:4] = rate[-4:] = 0
    rate[:, :4] = rate[:, -4:] = 0
    truth = rate[None] * np.arange(1, NRES + 1)[:, None, None] + 1000.0 * (rate[None] > 0)
    t = _readout_time_n(nchan)
    a = rng.uniform(-50, 50, (NRES, nchan))
    s = rng.uniform(-1e-3, 1e-3, (NRES, nchan))
    bias = np.repeat(a, W, axis=1)[:, None, :] + np.repeat(s, W, axis=1)[:, None, :] * t[None]
    data = (truth + bias + 2000.0).astype(np.float32)
    amp33 = np.full((NRES, NY, W), 3000, np.uint16)
    z = np.zeros((nchan, NFREQ), np.complex128)
    out = data.copy()
    correct_refpix(out, amp33, np.zeros((NY, nx), np.uint32), z, z.copy(), z.copy())
    resid = _frame_diffs(out) - _frame_diffs(truth)
    assert np.abs(_frame_diffs(data) - _frame_diffs(truth)).max() > 20
    assert np.abs(resid).max() < 2e-3


@pytest.mark.parametrize("nchan", [1, 2])
def test_subarray_common_mode_from_left_and_right_columns(nchan):
    """A periodic common-mode signal in read-out time, seen by the left and right reference
    columns at their own read-out times, is removed by gamma = zeta = 1/2 low-pass coefficients."""
    nx = nchan * W
    t = _readout_time_n(nchan) + (LENGTH - 1) / 2.0
    phase = np.arange(NRES) * 0.9
    n = 20 * np.sin(2 * np.pi * 3 * t[None] / LENGTH + phase[:, None, None])
    n += 8 * np.cos(2 * np.pi * 7 * t[None] / LENGTH - 2 * phase[:, None, None])
    data = (500.0 + n).astype(np.float32)
    amp33 = np.full((NRES, NY, W), 3000, np.uint16)
    gamma, zeta = _lowpass_coeffs(nchan)
    out = data.copy()
    correct_refpix(out, amp33, np.zeros((NY, nx), np.uint32), np.zeros_like(gamma), gamma, zeta,
                   remove_trends=False)
    before = np.abs(data - data.mean(axis=0)).max()
    after = np.abs(out - out.mean(axis=0)).max()
    assert before > 20
    # the correction is scaled by 2 nfreq / length = 1 + 2 / length (section 4): what is left
    # is that 0.11 % of the signal (a right-column series misplaced by 12 clocks leaves ~1 DN)
    assert after < 2.5 / LENGTH * before
    # only the left or only the right columns do the same job
    for g, zz in ((2 * gamma, 0 * zeta), (0 * gamma, 2 * zeta)):
        one = data.copy()
        correct_refpix(one, amp33, np.zeros((NY, nx), np.uint32), np.zeros_like(g), g, zz,
                       remove_trends=False)
        assert np.abs(one - one.mean(axis=0)).max() < 2.5 / LENGTH * before


@pytest.mark.parametrize("nchan", [1, 2, 32])
def test_subarray_matches_channel_oracle(nchan):
    rng = np.random.default_rng(30 + nchan)
    nx = nchan * W
    data = (rng.normal(2000, 3, (NRES, NY, nx))
            + 40 * np.sin(2 * np.pi * (_readout_time_n(nchan)[None] / 500.0 + np.arange(NRES)[:, None, None]))
            + rng.uniform(-30, 30, (NRES, 1, 1))).astype(np.float32)
    amp33 = np.full((NRES, NY, W), 3000, np.uint16)
    gamma = rng.normal(0, 1e-3, (nchan, NFREQ)) + 1j * rng.normal(0, 1e-3, (nchan, NFREQ))
    zeta = rng.normal(0, 1e-3, (nchan, NFREQ)) + 1j * rng.normal(0, 1e-3, (nchan, NFREQ))
    alpha = np.zeros_like(gamma)
    # a pixel whose float32 value equals its float32 frame mean becomes 0 = "missing" and keeps
    # its trend in the kernel; the float64 oracle does not see that zero: leave such pixels out
    off32 = np.mean(data, axis=0, dtype=np.float64).astype(np.float32)
    for switches in (dict(), dict(remove_offset=False), dict(remove_trends=False)):
        expect = _oracle_n(data, amp33, alpha, gamma, zeta, **switches)
        out = data.copy()
        correct_refpix(out, amp33, np.zeros((NY, nx), np.uint32), alpha, gamma, zeta,
                       cosine_interpolate=False, fft_interpolate=False, **switches)
        keep = (data - off32) != 0 if switches.get("remove_offset", True) else np.ones(data.shape, bool)
        assert keep.sum() >= data.size - 3
        np.testing.assert_allclose(out[keep], expect[keep], atol=3e-3)
    if nchan == 32:  # the channel oracle agrees with the full-detector oracle
        exp_d, _ = oracle.refpix(data, amp33, np.zeros((NY, nx), np.uint32), alpha, gamma, zeta,
                                 cosine_interpolate=False, fft_interpolate=False)
        keep = (data - off32) != 0
        np.testing.assert_allclose(_oracle_n(data, amp33, alpha, gamma, zeta)[keep], exp_d[keep], atol=3e-3)


def test_subarray_coefficient_shape_names_channels():
    data = np.zeros((NRES, NY, 2 * W), np.float32)
    amp33 = np.zeros((NRES, NY, W), np.uint16)
    z = np.zeros((32, NFREQ), np.complex128)
    with pytest.raises(ParameterError, match=r"alpha must have shape \(2, "):
        correct_refpix(data, amp33, np.zeros((NY, 2 * W), np.uint32), z, z, z)
