"""Tests of the ols_cas22 ramp fitter with integrated jump detection.

Physics with known truth (ramps simulated read by read with Poisson and read noise, fixed
seeds), hand-computed small cases, a pure-numpy oracle (tests/oracles/cas22.py), edge cases
and the real L1 fixture.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from oracles import cas22 as oracle  # noqa: E402

from romancore.algorithms.ramp_fit import (  # noqa: E402
    fit_ramps_cas22,
    jump_threshold,
    read_pattern_quantities,
)
from romancore.dq import group as G  # noqa: E402
from romancore.dq import pixel as P  # noqa: E402
from romancore.errors import ParameterError  # noqa: E402

PATTERN_9 = [[1], [2], [3, 4], list(range(5, 10)), list(range(10, 18)), list(range(18, 26)),
             list(range(26, 34)), list(range(34, 44)), [44]]
FRAME_9 = 3.16247
PATTERN_6 = [[1], [2, 3], [4, 5, 6], [7, 8, 9, 10], [11, 12], [13, 14, 15, 16, 17, 18]]
FRAME_6 = 3.04
GAIN = 2.0          # e/DN
SIGMA_E = 12.0      # read noise of one read, electrons
RATES = np.array([0.1, 1.0, 10.0, 100.0, 1.0e3, 1.0e4])  # e/s

FIXTURES = Path("/work/shared/fixtures")


# --------------------------------------------------------------------------- simulator

def simulate(rates_e, pattern, frame_time, rng, *, sigma_e=SIGMA_E, cr_read=None, cr_amp=None,
             bias_e=2000.0):
    """Resultants (nres, npix) in electrons of ramps read every ``frame_time``.

    Charge accumulates from t = 0 with Poisson increments between reads; every read adds
    independent Gaussian read noise; a resultant is the mean of its reads.  A cosmic ray of
    ``cr_amp`` electrons lands before read ``cr_read`` (1-based; 0 = none) of each pixel.
    """
    rates_e = np.asarray(rates_e, dtype=float)
    nreads = pattern[-1][-1]
    charge = np.cumsum(rng.poisson(rates_e * frame_time, size=(nreads, rates_e.size)), axis=0)
    charge = charge.astype(float) + bias_e
    if cr_read is not None:
        after = np.arange(1, nreads + 1)[:, None] >= np.asarray(cr_read)[None, :]
        after &= np.asarray(cr_read)[None, :] > 0
        charge += after * np.asarray(cr_amp, dtype=float)[None, :]
    reads = charge + rng.normal(0.0, sigma_e, charge.shape)
    return np.stack([reads[np.asarray(r) - 1].mean(axis=0) for r in pattern])


def as_cube(resultants_e, gain=GAIN, width=200):
    """Electrons (nres, npix) -> DN float32 cube (nres, npix / width, width)."""
    nres, npix = resultants_e.shape
    return (resultants_e / gain).astype(np.float32).reshape(nres, npix // width, width)


def fit_sim(res_e, pattern, frame, **kw):
    return fit_ramps_cas22(as_cube(res_e), None, None, SIGMA_E / GAIN, GAIN, pattern, frame, **kw)


# --------------------------------------------------------------------------- read pattern

def test_read_pattern_quantities_hand_values():
    q = read_pattern_quantities([[1], [2, 3], [4, 5, 6]], 2.0)
    assert q.t_bar.tolist() == [2.0, 5.0, 10.0]
    assert q.n_reads.tolist() == [1.0, 2.0, 3.0]
    # tau = ft/N^2 sum (2N-2k+1) r_k: [2], 2/4 (3*2 + 1*3) = 4.5, 2/9 (5*4 + 3*5 + 1*6) = 82/9
    np.testing.assert_allclose(q.tau, [2.0, 4.5, 82.0 / 9.0], rtol=1e-15)
    # consecutive reads: tau = tbar - (N-1)(N+1) ft / (6N)
    q9 = read_pattern_quantities(PATTERN_9, FRAME_9)
    n = q9.n_reads
    np.testing.assert_allclose(q9.tau, q9.t_bar - (n - 1) * (n + 1) * FRAME_9 / (6 * n), rtol=1e-13)


def test_read_pattern_validation():
    with pytest.raises(ParameterError, match="read_pattern"):
        read_pattern_quantities([[1], [1, 2]], 3.0)
    with pytest.raises(ParameterError, match=r"read_pattern\[1\]"):
        read_pattern_quantities([[1], []], 3.0)
    with pytest.raises(ParameterError, match="frame_time"):
        read_pattern_quantities([[1], [2]], 0.0)
    with pytest.raises(ParameterError, match="integers"):
        read_pattern_quantities([[1], [2.5]], 3.0)


# --------------------------------------------------------------------------- hand-computed

def test_three_resultant_hand_computed():
    # gain 1, sigma 10 e, single reads at t = 1, 2, 3 s; signal S = 5/sqrt(105) < 5 -> P = 0,
    # i.e. ordinary least squares: K = (-1/2, 0, 1/2)
    ramp = np.array([0.0, 1.0, 5.0], dtype=np.float32).reshape(3, 1, 1)
    out = fit_ramps_cas22(ramp, None, None, 10.0, 1.0, [[1], [2], [3]], 1.0)
    slope = 2.5
    var_r = 100.0 * (0.25 + 0.25)
    # sum K_i^2 tau_i + 2 K_i sum_{j<i} K_j tbar_j = 0.25 + 0.75 - 0.5 = 0.5 per unit flux
    var_p = 0.5 * slope
    assert out.slope[0, 0] == np.float32(slope)
    assert out.var_rnoise[0, 0] == pytest.approx(var_r, rel=1e-6)
    assert out.var_poisson[0, 0] == pytest.approx(var_p, rel=1e-6)
    assert out.err[0, 0] == pytest.approx(np.sqrt(var_r + var_p), rel=1e-6)
    assert out.dq[0, 0] == 0 and not out.groupdq.any()


def test_hand_computed_jump_splits_ramp():
    # a 100 e step between resultants 2 and 3 of a slope-1 ramp, sigma = 1 e: both resultants
    # are flagged, [0, 1] is fitted (slope exactly 1), [4] alone cannot be
    ramp = np.array([0.0, 1.0, 2.0, 103.0, 104.0], dtype=np.float32).reshape(5, 1, 1)
    out = fit_ramps_cas22(ramp, None, None, 1.0, 1.0, [[1], [2], [3], [4], [5]], 1.0,
                          record_jumps=True)
    assert out.groupdq[:, 0, 0].tolist() == [0, 0, 4, 4, 0]
    assert out.slope[0, 0] == 1.0
    # two-point segment: K = (-1, 1): read variance 2 sigma^2, Poisson 1 per unit flux
    assert out.var_rnoise[0, 0] == pytest.approx(2.0)
    assert out.var_poisson[0, 0] == pytest.approx(1.0)
    assert out.dq[0, 0] == P.JUMP_DET
    assert out.jumps.tolist() == [[2, 0, 0], [3, 0, 0]]


# --------------------------------------------------------------------------- oracle

def _random_cube(rng, pattern, frame, ny=12, nx=15):
    nres = len(pattern)
    npix = ny * nx
    rates = 10 ** rng.uniform(-1, 4, npix)
    nreads = pattern[-1][-1]
    cr_read = np.where(rng.random(npix) < 0.4, rng.integers(2, nreads + 1, npix), 0)
    cr_amp = 10 ** rng.uniform(1, 4, npix)
    res = simulate(rates, pattern, frame, rng, cr_read=cr_read, cr_amp=cr_amp)
    gain = rng.uniform(1.0, 3.0, (ny, nx)).astype(np.float32)
    rn = rng.uniform(2.0, 10.0, (ny, nx)).astype(np.float32)
    data = (res.reshape(nres, ny, nx) / gain).astype(np.float32)
    gdq = np.zeros((nres, ny, nx), np.uint8)
    sat_from = rng.integers(1, nres + 3, (ny, nx))
    gdq[np.arange(nres)[:, None, None] >= sat_from[None]] = G.SATURATED
    dnu = rng.random((nres, ny, nx)) < 0.05
    gdq[dnu] |= np.uint8(G.DO_NOT_USE)
    return data, gdq, rn, gain


@pytest.mark.parametrize("pattern,frame", [(PATTERN_9, FRAME_9), (PATTERN_6, FRAME_6)])
@pytest.mark.parametrize("params", [dict(), dict(refit=False), dict(use_jump=False),
                                    dict(intercept=4.0, constant=0.0),
                                    dict(intercept=4.0, constant=0.0, refit=False),
                                    dict(screen=-np.inf)])
def test_kernel_matches_numpy_oracle(pattern, frame, params):
    rng = np.random.default_rng(20240611)
    data, gdq, rn, gain = _random_cube(rng, pattern, frame)
    kw = dict(use_jump_detection=params.get("use_jump", True),
              threshold_intercept=params.get("intercept", 5.5),
              threshold_constant=params.get("constant", 1 / 3),
              jump_refit=params.get("refit", True),
              jump_refit_screen=params.get("screen", 3.0))
    out = fit_ramps_cas22(data, gdq, None, rn, gain, pattern, frame, **kw)
    o_slope, o_vp, o_vr, o_gdq = oracle.fit_cube(
        data, gdq, rn, gain, pattern, frame, use_jump=kw["use_jump_detection"],
        intercept=kw["threshold_intercept"], constant=kw["threshold_constant"],
        refit=kw["jump_refit"], screen=kw["jump_refit_screen"])
    np.testing.assert_array_equal(out.groupdq, o_gdq)
    np.testing.assert_allclose(out.slope, o_slope, rtol=1e-6, atol=0)
    np.testing.assert_allclose(out.var_poisson, o_vp, rtol=1e-6, atol=0)
    np.testing.assert_allclose(out.var_rnoise, o_vr, rtol=1e-6, atol=0)
    np.testing.assert_allclose(out.err, np.sqrt(o_vp + o_vr), rtol=1e-6, atol=0)
    if kw["use_jump_detection"]:
        assert (out.groupdq & G.JUMP_DET).any()  # the random cube does exercise the jump path


def _low_signal_hits(pattern, frame, n, seed, amp_sigma=8.0, rate=0.5):
    """Low-rate ramps with cosmic rays of ``amp_sigma`` times the read noise of one read."""
    rng = np.random.default_rng(seed)
    nreads = pattern[-1][-1]
    cr_read = rng.integers(2, nreads + 1, n)
    return simulate(np.full(n, rate), pattern, frame, rng, cr_read=cr_read,
                    cr_amp=np.full(n, amp_sigma * SIGMA_E))


@pytest.mark.parametrize("pattern,frame", [(PATTERN_9, FRAME_9), (PATTERN_6, FRAME_6)])
def test_refit_stage_matches_oracle_where_it_fires(pattern, frame):
    # low-signal hits that the Cas22 statistic often misses: stage 2 decides many pixels
    res = _low_signal_hits(pattern, frame, 400, 4)
    data = as_cube(res, width=20)
    nres = len(pattern)
    off = fit_ramps_cas22(data, None, None, SIGMA_E / GAIN, GAIN, pattern, frame, jump_refit=False)
    on = fit_ramps_cas22(data, None, None, SIGMA_E / GAIN, GAIN, pattern, frame)
    o_slope, o_vp, o_vr, o_gdq = oracle.fit_cube(data, None, SIGMA_E / GAIN, GAIN, pattern, frame,
                                                 refit=True)
    changed = (on.groupdq != off.groupdq).any(axis=0)
    assert changed.sum() >= 20, changed.sum()
    # stage 2 only adds flags: every pixel Cas22 flags keeps its flags
    assert ((off.groupdq & ~on.groupdq) == 0).all()
    np.testing.assert_array_equal(on.groupdq, o_gdq)
    np.testing.assert_allclose(on.slope, o_slope, rtol=1e-6, atol=0)
    np.testing.assert_allclose(on.var_rnoise, o_vr, rtol=1e-6, atol=0)
    np.testing.assert_allclose(on.var_poisson, o_vp, rtol=1e-6, atol=0)
    assert nres == data.shape[0]


def test_refit_hand_computed_statistic():
    # 4 single-read resultants at t = 1..4 s, sigma = 1 e, gain 1: a 9 e step between
    # resultants 1 and 2 of a flat ramp (0, 0, 9, 9).  Signal 9/sqrt(10) < 5 -> OLS weights.
    # Cas22: whole-segment slope m = (1.5*9 + 0.5*9) / 5 = 3.6 e/s; the best candidate is
    # the single difference i = 1: (9 - 3.6) / sqrt(2 + 3.6*1 - 3.6/3) = 5.4 / sqrt(4.4) = 2.57.
    # Refit, candidate i = 1: sides [0, 1] and [2, 3] both have slope 0, weights 1/2 each, so
    # m_c = 0 with coefficients (-1/2, 1/2, -1/2, 1/2).  Adjacent estimate R2 - R1 - 1*m_c:
    # a = (1/2, -3/2, 3/2, -1/2); intercept estimate (R2+R3)/2 - (R0+R1)/2 - 2 m_c: the same
    # vector.  J = 9, var = sigma^2 |a|^2 = 5 (no Poisson part: m_c = 0), Z = 9 / sqrt(5).
    # The other candidates give 9 / sqrt(14) (double steps) or negative steps.
    ramp = np.array([0.0, 0.0, 9.0, 9.0], dtype=np.float32).reshape(4, 1, 1)
    pattern = [[1], [2], [3], [4]]
    q = read_pattern_quantities(pattern, 1.0)
    R = ramp[:, 0, 0].astype(float)
    arg, z = oracle.refit_stat(R, 0, 3, q.t_bar, q.tau, q.n_reads, 1.0)
    assert arg == 1 and z == pytest.approx(9.0 / np.sqrt(5.0), rel=1e-12)
    arg1, z1 = oracle.jump_stat(R, 0, 3, 3.6, q.t_bar, q.tau, q.n_reads, 1.0)
    assert arg1 == 1 and z1 == pytest.approx(5.4 / np.sqrt(4.4), rel=1e-12)
    kw = dict(threshold_intercept=3.5, threshold_constant=0.0)
    off = fit_ramps_cas22(ramp, None, None, 1.0, 1.0, pattern, 1.0, jump_refit=False, **kw)
    assert not off.groupdq.any() and off.slope[0, 0] == pytest.approx(3.6)
    # 2.57 is below the default screening level 3: no refit
    screened = fit_ramps_cas22(ramp, None, None, 1.0, 1.0, pattern, 1.0, **kw)
    assert not screened.groupdq.any()
    on = fit_ramps_cas22(ramp, None, None, 1.0, 1.0, pattern, 1.0, jump_refit_screen=2.0, **kw)
    assert on.groupdq[:, 0, 0].tolist() == [0, 4, 4, 0]
    # resultants 1 and 2 flagged: the two one-point segments left give no slope
    assert on.slope[0, 0] == 0 and on.dq[0, 0] == P.JUMP_DET | P.DO_NOT_USE
    with pytest.raises(ParameterError, match="jump_refit_screen"):
        fit_ramps_cas22(ramp, None, None, 1.0, 1.0, pattern, 1.0, jump_refit_screen=np.nan)


# --------------------------------------------------------------------------- physics

@pytest.mark.parametrize("pattern,frame,npix", [(PATTERN_9, FRAME_9, 16000),
                                                (PATTERN_6, FRAME_6, 8000)])
def test_bias_pull_and_false_flags(pattern, frame, npix):
    rng = np.random.default_rng(7)
    rates = np.repeat(RATES, npix)
    out = fit_sim(simulate(rates, pattern, frame, rng), pattern, frame)
    slope_e = out.slope.ravel() * GAIN
    err_e = out.err.ravel() * GAIN
    jumped = out.dq.ravel() & P.JUMP_DET > 0
    for k, rate in enumerate(RATES):
        sel = slice(k * npix, (k + 1) * npix)
        resid = slope_e[sel] - rate
        pull = resid / err_e[sel]
        good = ~jumped[sel]
        assert abs(resid.mean()) < 0.1 * np.median(err_e[sel]), (rate, resid.mean())
        assert abs(pull[good].std() - 1.0) < 0.05, (rate, pull[good].std())
        assert jumped[sel].mean() <= 0.005, (rate, jumped[sel].mean())
    assert out.dq.ravel()[~jumped].max() == 0


def completeness_table(pattern, frame, rates, amplitudes, npix, seed, *, per_read=False, **kw):
    """Fraction of cosmic rays flagged on the resultant j holding their first affected read,
    per rate (e/s) and amplitude.

    The amplitude is the visible step in units of the noise (read + Poisson) of the
    difference R_{j+1} - R_{j-1} that contains the whole step, or with ``per_read`` in
    units of the read noise of one read (plus that difference's Poisson noise, which
    dominates at high rates); a hit inside the last resultant only shows the fraction of
    its reads that follow the hit, so the injected charge is scaled up by the inverse of
    that fraction.
    """
    rng = np.random.default_rng(seed)
    q = read_pattern_quantities(pattern, frame)
    nres = len(pattern)
    read_to_res = np.concatenate([[i] * len(r) for i, r in enumerate(pattern)])
    pos_in_res = np.concatenate([np.arange(len(r)) for r in pattern])
    nreads = pattern[-1][-1]
    table = np.zeros((len(rates), len(amplitudes)))
    for a, rate in enumerate(rates):
        n = npix * len(amplitudes)
        cr_read = rng.integers(2, nreads + 1, n)
        j = read_to_res[cr_read - 1]
        i, k = j - 1, np.minimum(j + 1, nres - 1)
        visible = np.where(j == nres - 1,
                           (q.n_reads[j] - pos_in_res[cr_read - 1]) / q.n_reads[j], 1.0)
        read_var = SIGMA_E**2 if per_read else SIGMA_E**2 * (1 / q.n_reads[i] + 1 / q.n_reads[k])
        sigma = np.sqrt(read_var + rate * (q.tau[i] + q.tau[k] - 2 * q.t_bar[i]))
        amp = np.repeat(amplitudes, npix) * sigma / visible
        out = fit_sim(simulate(np.full(n, rate), pattern, frame, rng, cr_read=cr_read,
                               cr_amp=amp), pattern, frame, **kw)
        gdq = out.groupdq.reshape(nres, n)
        hit = (gdq[j, np.arange(n)] & G.JUMP_DET) > 0
        table[a] = hit.reshape(len(amplitudes), npix).mean(axis=1)
    return table


def test_jump_completeness():
    # measured (seed 11, 600 CRs per cell), Cas22 alone (jump_refit=False) -> with the refit:
    #   9 resultants, 10 sigma: 0.1 e/s 0.69 -> 0.89, 1 e/s 0.91 -> 0.96
    #   6 resultants, 10 sigma: 0.1 e/s 0.68 -> 0.79, 1 e/s 0.75 -> 0.86
    # >= 100 e/s and >= 15 sigma: >= 0.95 either way.  At 0.1-1 e/s a hit inside a multi-read
    # resultant in mid-ramp is partly degenerate with the slope: even the generalised least-
    # squares step estimate with the hit read known has an expected Z of only ~5-5.3 for a
    # "10 sigma" hit in resultant 5 of the 9-resultant pattern or 3-4 of the 6-resultant one,
    # which bounds the completeness at 0.1 e/s to ~0.92 (9) and ~0.89 (6) at threshold 5.5.
    amplitudes = np.array([10.0, 15.0, 20.0, 100.0])
    for pattern, frame in ((PATTERN_9, FRAME_9), (PATTERN_6, FRAME_6)):
        rates = [0.1, 1.0, 100.0, 1.0e4]
        table = completeness_table(pattern, frame, rates, amplitudes, 600, 11)
        old = completeness_table(pattern, frame, rates, amplitudes, 600, 11,
                                 jump_refit=False)
        assert table[:, 1:].min() >= 0.95, table
        assert table[2:, 0].min() >= 0.95, table
        assert table[:2, 0].min() >= 0.75, table
        assert (table[:2, 0] - old[:2, 0]).min() >= 0.04, (table[:, 0], old[:, 0])
        assert (table >= old).all(), (table, old)


def test_jump_completeness_in_read_noise_units():
    # amplitude in units of one read's noise (the "read-noise sigma"), seed 11,
    # 2000 CRs per cell, measured at 10 sigma: 9 resultants 0.989 / 0.993 / 1.000 at 0.1 / 1 / 100 e/s;
    # 6 resultants 0.914 / 0.925 / 1.000 (at 0.1-1 e/s the hits inside the mid-ramp
    # multi-read resultants of the uneven table, see test_jump_completeness)
    rates = [0.1, 1.0, 100.0]
    t9 = completeness_table(PATTERN_9, FRAME_9, rates, np.array([10.0]), 2000, 11, per_read=True)
    t6 = completeness_table(PATTERN_6, FRAME_6, rates, np.array([10.0]), 2000, 11, per_read=True)
    assert t9.min() >= 0.95, t9
    assert t6.min() >= 0.90 and t6[2, 0] >= 0.95, t6


def test_jump_detection_removes_cosmic_ray_bias():
    rng = np.random.default_rng(3)
    n = 4000
    cr_read = rng.integers(2, 45, n)
    res = simulate(np.full(n, 50.0), PATTERN_9, FRAME_9, rng, cr_read=cr_read,
                   cr_amp=np.full(n, 2000.0))
    on = fit_sim(res, PATTERN_9, FRAME_9)
    off = fit_sim(res, PATTERN_9, FRAME_9, use_jump_detection=False)
    err = np.median(on.err) * GAIN
    assert abs(on.slope.mean() * GAIN - 50.0) < 0.1 * err * 3
    assert off.slope.mean() * GAIN - 50.0 > 5 * err


def test_threshold_parameters_change_the_outcome():
    rng = np.random.default_rng(5)
    n = 4000
    rate = 1000.0
    cr_read = rng.integers(2, 45, n)
    q = read_pattern_quantities(PATTERN_9, FRAME_9)
    sigma = np.sqrt(SIGMA_E**2 * 2 + rate * 2 * FRAME_9 * 8)
    res = simulate(np.full(n, rate), PATTERN_9, FRAME_9, rng, cr_read=cr_read,
                   cr_amp=rng.uniform(2, 8, n) * sigma)
    counts = {}
    for icpt, const in ((5.5, 1 / 3), (5.5, 0.0), (8.0, 1 / 3), (50.0, 1 / 3)):
        out = fit_sim(res, PATTERN_9, FRAME_9, threshold_intercept=icpt, threshold_constant=const)
        counts[icpt, const] = int((out.dq & P.JUMP_DET > 0).sum())
    # the constant lowers the threshold at 1000 e/s from 5.5 to 4.5: more jumps
    assert counts[5.5, 1 / 3] > counts[5.5, 0.0] > counts[8.0, 1 / 3] > counts[50.0, 1 / 3] == 0
    assert jump_threshold(1000.0) == pytest.approx(4.5)
    assert jump_threshold(0.01) == pytest.approx(5.5) and jump_threshold(1e6) == pytest.approx(5.5 - 4 / 3)
    assert q.t_bar.size == 9


# --------------------------------------------------------------------------- edge cases

def _ramp(values, dtype=np.float32):
    return np.asarray(values, dtype=dtype).reshape(len(values), 1, 1)


def test_single_resultant_exposure():
    out = fit_ramps_cas22(np.full((1, 2, 3), 500, np.float32), None, None, 5.0, 2.0, [[1, 2]], 3.0)
    assert (out.slope == 0).all() and (out.err == 0).all() and (out.var_poisson == 0).all()
    assert (out.dq == P.DO_NOT_USE).all()


def test_all_resultants_flagged():
    gdq = np.full((4, 1, 2), G.SATURATED, np.uint8)
    gdq[:, 0, 1] = G.DO_NOT_USE
    out = fit_ramps_cas22(np.ones((4, 1, 2), np.float32), gdq, None, 5.0, 2.0,
                          [[1], [2], [3], [4]], 3.0)
    assert (out.slope == 0).all() and (out.err == 0).all()
    assert out.dq[0, 0] == P.SATURATED | P.DO_NOT_USE
    assert out.dq[0, 1] == P.DO_NOT_USE


def test_isolated_good_resultants_give_no_slope():
    gdq = _ramp([0, G.DO_NOT_USE, 0, G.DO_NOT_USE], np.uint8)
    out = fit_ramps_cas22(_ramp([1, 2, 3, 4]), gdq, None, 5.0, 2.0, [[1], [2], [3], [4]], 3.0)
    assert out.slope[0, 0] == 0 and out.dq[0, 0] == P.DO_NOT_USE


def test_saturation_ends_the_ramp():
    ramp = _ramp([100, 110, 120, 130, 60000, 60000])
    gdq = _ramp([0, 0, 0, 0, G.SATURATED, G.SATURATED], np.uint8)
    out = fit_ramps_cas22(ramp, gdq, None, 1.0, 1.0, [[1], [2], [3], [4], [5], [6]], 2.0)
    assert out.slope[0, 0] == pytest.approx(5.0)
    assert out.dq[0, 0] == 0  # not every resultant is saturated


@pytest.mark.parametrize("gain", [0.0, np.nan, -1.0])
def test_bad_gain(gain):
    out = fit_ramps_cas22(_ramp([1, 2, 3]), None, np.uint32([[P.HOT]]), 5.0, gain,
                          [[1], [2], [3]], 3.0)
    assert np.isnan(out.slope[0, 0]) and np.isnan(out.err[0, 0])
    assert out.dq[0, 0] == P.HOT | P.NO_GAIN_VALUE | P.DO_NOT_USE


@pytest.mark.parametrize("rn", [np.nan, -1.0])
def test_bad_read_noise(rn):
    out = fit_ramps_cas22(_ramp([1, 2, 3]), None, None, rn, 1.0, [[1], [2], [3]], 3.0)
    assert np.isnan(out.slope[0, 0])
    assert out.dq[0, 0] == P.DO_NOT_USE


def test_zero_read_noise_noiseless_ramp():
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8]]
    q = read_pattern_quantities(pattern, 2.0)
    out = fit_ramps_cas22(_ramp(50 + 7.0 * q.t_bar), None, None, 0.0, 1.5, pattern, 2.0)
    assert out.slope[0, 0] == pytest.approx(7.0, rel=1e-6)
    assert out.var_rnoise[0, 0] == 0 and out.var_poisson[0, 0] > 0
    assert out.dq[0, 0] == 0


def test_nan_resultant_is_excluded_and_flagged():
    ramp = _ramp([10, 20, np.nan, 40, 50, 60])
    gdq = np.zeros((6, 1, 1), np.uint8)
    out = fit_ramps_cas22(ramp, gdq, None, 1.0, 1.0, [[i] for i in range(1, 7)], 1.0)
    assert out.slope[0, 0] == pytest.approx(10.0)
    assert out.groupdq[:, 0, 0].tolist() == [0, 0, G.DO_NOT_USE, 0, 0, 0]
    assert not gdq.any()  # input untouched


def test_strided_input_threads_and_dtypes_agree():
    rng = np.random.default_rng(9)
    nres = len(PATTERN_9)
    res = simulate(10 ** rng.uniform(0, 4, 40 * 48), PATTERN_9, FRAME_9, rng,
                   cr_read=rng.integers(0, 45, 40 * 48), cr_amp=np.full(40 * 48, 3000.0))
    full = (res / GAIN).astype(np.float32).reshape(nres, 40, 48)
    view = full[:, 4:-4, 4:-4]
    assert not view.flags.c_contiguous
    ref = fit_ramps_cas22(np.ascontiguousarray(view), None, None, 6.0, GAIN, PATTERN_9, FRAME_9,
                          nthreads=1, record_jumps=True)
    for kw in (dict(nthreads=2), dict(nthreads=None)):
        out = fit_ramps_cas22(view, None, None, 6.0, GAIN, PATTERN_9, FRAME_9, record_jumps=True, **kw)
        for a, b in zip(out[:6], ref[:6], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(out.jumps, ref.jumps)
    as64 = fit_ramps_cas22(view.astype(np.float64), None, None, 6.0, GAIN, PATTERN_9, FRAME_9)
    np.testing.assert_array_equal(as64.slope, ref.slope)
    # jump positions agree with the flags
    flagged = np.argwhere(ref.groupdq & G.JUMP_DET)
    assert len(flagged) > 0
    by_pixel = flagged[np.lexsort((flagged[:, 0], flagged[:, 2], flagged[:, 1]))]
    np.testing.assert_array_equal(ref.jumps, by_pixel)


def test_in_place_group_dq_and_dumo():
    rng = np.random.default_rng(12)
    nres = len(PATTERN_9)
    res = simulate(10 ** rng.uniform(-1, 4, 30 * 36), PATTERN_9, FRAME_9, rng,
                   cr_read=rng.integers(0, 45, 30 * 36), cr_amp=np.full(30 * 36, 2000.0))
    cube = (res / GAIN).astype(np.float32).reshape(nres, 30, 36)
    cube[3, 5, 7] = np.nan
    gdq_full = np.zeros((nres, 30, 36), np.uint8)
    gdq_full[6:, 2, 3] = G.SATURATED
    gdq_full[4, 9, 9] = G.JUMP_DET
    data, gdq = cube[:, 3:-3, 3:-3], gdq_full[:, 3:-3, 3:-3]
    gain = rng.uniform(1.5, 2.5, data.shape[1:]).astype(np.float32)
    gain[0, 0] = 0.0
    ref = fit_ramps_cas22(data, gdq, None, 6.0, gain, PATTERN_9, FRAME_9, record_jumps=True,
                          return_dumo=True)
    before = gdq_full.copy()
    out = fit_ramps_cas22(data, gdq, None, 6.0, gain, PATTERN_9, FRAME_9, record_jumps=True,
                          groupdq_out=gdq, return_dumo=True, nthreads=2)
    assert out.groupdq is gdq
    np.testing.assert_array_equal(gdq_full[:, 3:-3, 3:-3], ref.groupdq)
    np.testing.assert_array_equal(gdq_full[:, :3], before[:, :3])  # outside the view untouched
    np.testing.assert_array_equal(out.jumps, ref.jumps)
    assert len(ref.jumps) > 0
    for a, b in zip(out[:5], ref[:5], strict=True):
        np.testing.assert_array_equal(a, b)
    # dumo: least-squares slope of all resultants weighted by their read counts, minus slope
    q = read_pattern_quantities(PATTERN_9, FRAME_9)
    x = np.stack([np.ones(nres), q.t_bar], 1)
    w = q.n_reads
    flat = data.reshape(nres, -1).astype(float)
    uniform = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w[:, None] * flat))[1]
    expect = uniform.reshape(data.shape[1:]) - ref.slope
    np.testing.assert_allclose(ref.dumo, expect, rtol=1e-5, atol=1e-5)
    assert np.isnan(ref.dumo[0, 0]) and np.isnan(ref.dumo[2, 4])  # bad gain / NaN resultant
    np.testing.assert_array_equal(out.dumo, ref.dumo)
    assert fit_ramps_cas22(data, gdq, None, 6.0, gain, PATTERN_9, FRAME_9).dumo is None
    one = fit_ramps_cas22(data[:1], None, None, 6.0, gain, [[1]], FRAME_9, return_dumo=True)
    assert (one.dumo == 0).all()
    with pytest.raises(ParameterError, match="groupdq_out"):
        fit_ramps_cas22(data, gdq, None, 6.0, gain, PATTERN_9, FRAME_9,
                        groupdq_out=np.zeros(data.shape, np.int16))


def test_existing_jump_flags_are_kept_and_not_recorded():
    ramp = _ramp([0, 10, 20, 30, 40, 50])
    gdq = _ramp([0, 0, G.JUMP_DET, 0, 0, 0], np.uint8)
    out = fit_ramps_cas22(ramp, gdq, None, 1.0, 1.0, [[i] for i in range(1, 7)], 1.0,
                          record_jumps=True)
    assert out.groupdq[2, 0, 0] == G.JUMP_DET and out.dq[0, 0] == P.JUMP_DET
    assert out.jumps.shape == (0, 3)
    assert out.slope[0, 0] == pytest.approx(10.0)


def test_bad_arguments_are_named():
    cube = np.zeros((3, 2, 2), np.float32)
    pat = [[1], [2], [3]]
    with pytest.raises(ParameterError, match="read_pattern has 2"):
        fit_ramps_cas22(cube, None, None, 1.0, 1.0, [[1], [2]], 3.0)
    with pytest.raises(ParameterError, match="groupdq has shape"):
        fit_ramps_cas22(cube, np.zeros((3, 2, 3), np.uint8), None, 1.0, 1.0, pat, 3.0)
    with pytest.raises(ParameterError, match="gain has shape"):
        fit_ramps_cas22(cube, None, None, 1.0, np.ones((3, 3)), pat, 3.0)
    with pytest.raises(ParameterError, match="resultants must be a 3-D"):
        fit_ramps_cas22(cube[0], None, None, 1.0, 1.0, pat, 3.0)
    with pytest.raises(ParameterError, match="nthreads"):
        fit_ramps_cas22(cube, None, None, 1.0, 1.0, pat, 3.0, nthreads=-1)
    with pytest.raises(ParameterError, match="threshold_intercept"):
        fit_ramps_cas22(cube, None, None, 1.0, 1.0, pat, 3.0, threshold_intercept=np.nan)
    with pytest.raises(ParameterError, match="frame_time"):
        fit_ramps_cas22(cube, None, None, 1.0, 1.0, pat, -3.0)
    with pytest.raises(ParameterError, match="groupdq must be an integer"):
        fit_ramps_cas22(cube, np.zeros((3, 2, 2)), None, 1.0, 1.0, pat, 3.0)


# --------------------------------------------------------------------------- real data

def _open_roman(path):
    import asdf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        af = asdf.open(path, lazy_load=False, memmap=False)
        tree = af["roman"]
    return af, tree


@pytest.fixture(scope="module")
def l1_fixture():
    uncal = FIXTURES / "r0000101001001001001_0001_wfi01_f158_uncal.asdf"
    if not uncal.exists():
        pytest.fail(f"fixture missing: {uncal}")
    af, tree = _open_roman(uncal)
    with af:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.array(tree["data"])
            exposure = tree["meta"]["exposure"]
            pattern = [list(map(int, r)) for r in exposure["read_pattern"]]
            frame = float(exposure["frame_time"])
    refs = {}
    for name in ("gain", "readnoise"):
        af, tree = _open_roman(FIXTURES / "refs" / f"roman_wfi_{name}_fixture.asdf")
        with af:
            refs[name] = np.array(tree["data"])
    truth = np.load(FIXTURES / "l1_true_rate_dn_per_s.npy")
    return data, pattern, frame, refs, truth


def test_l1_fixture_with_its_placeholder_refs_is_flagged(l1_fixture):
    data, pattern, frame, refs, truth = l1_fixture
    # the fixture's gain and read-noise references are all zero (placeholders)
    assert not refs["gain"].any() and not refs["readnoise"].any()
    out = fit_ramps_cas22(data, None, None, refs["readnoise"], refs["gain"], pattern, frame)
    assert np.isnan(out.slope).all()
    assert (out.dq == P.NO_GAIN_VALUE | P.DO_NOT_USE).all()


def test_l1_fixture_matches_true_rates(l1_fixture):
    data, pattern, frame, refs, truth = l1_fixture
    # The truth covers the whole 64 x 64 array (no reference-pixel border), pixel for pixel.
    # The fixture's noise is white, ~5 DN per resultant whatever its read count, with no
    # Poisson part and no saturation (max < 3400 DN).  Model it as Poisson-free (huge gain)
    # with 5*sqrt(2) DN per read, so the modelled resultant variance 50/N DN^2 brackets the
    # data's 25 DN^2 over N = 1..6.
    assert data.shape == (6, 64, 64) and truth.shape == (64, 64) and data.max() < 4000
    out = fit_ramps_cas22(data, None, None, 5.0 * np.sqrt(2.0), 1.0e4, pattern, frame)
    resid = out.slope - truth
    pull = resid / out.err
    assert abs(resid.mean()) < 0.1 * np.median(out.err)
    assert abs(pull.mean()) < 3.0 / 64
    assert 0.9 < pull.std() < 1.1
    assert (out.dq & P.JUMP_DET > 0).mean() <= 0.005
