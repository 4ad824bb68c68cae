"""Physics of the ramp simulator: rates, Casertano covariance, cosmic rays, saturation,
non-linearity and the reference arrays that undo it."""

import numpy as np
import pytest

from romancore.errors import ParameterError
from romancore.simulate.instrument import MA_TABLES, resultant_times
from romancore.simulate.ramps import CR_DTYPE, cosmic_ray_hits, simulate_resultants
from romancore.simulate.references import (
    evaluate_poly,
    inverselinearity_coeffs,
    linearity_coeffs,
    make_detector_truth,
    mask_dq,
    reference_arrays,
    saturation_threshold,
)

HLWAS = MA_TABLES["C2A_IMG_HLWAS"]
SHORT = MA_TABLES["SIM_SHORT_6"]


def test_ma_tables_match_the_issue():
    assert HLWAS.as_list() == [[1], [2], [3, 4], [5, 6, 7, 8, 9], list(range(10, 18)),
                               list(range(18, 26)), list(range(26, 34)), list(range(34, 44)), [44]]
    assert HLWAS.frame_time == 3.16247
    assert SHORT.nresultants == 6


def test_tau_for_consecutive_reads_matches_closed_form():
    n, tbar, tau = resultant_times(HLWAS.read_pattern, HLWAS.frame_time)
    closed = tbar - (n - 1) * (n + 1) * HLWAS.frame_time / (6 * n)
    np.testing.assert_allclose(tau, closed, rtol=1e-12)


@pytest.mark.parametrize("ma", [HLWAS, SHORT], ids=lambda m: m.name)
def test_mean_difference_slopes_equal_injected_rates(ma):
    rates = np.array([0.0, 0.5, 5.0, 80.0])
    rate = np.repeat(rates[:, None], 4000, axis=1)
    gain = 1.7
    res = simulate_resultants(rate, ma.read_pattern, ma.frame_time, gain=gain, read_noise=4.0,
                              rng=11, dtype=np.float64)
    n, tbar, tau = resultant_times(ma.read_pattern, ma.frame_time)
    sigma_e = 4.0 * gain
    for i in range(len(n) - 1):
        d = (res[i + 1] - res[i]) * gain / (tbar[i + 1] - tbar[i])
        mean = d.mean(axis=1)
        var_diff = rates * (tau[i + 1] + tau[i] - 2 * tbar[i]) + sigma_e**2 * (1 / n[i] + 1 / n[i + 1])
        err = np.sqrt(var_diff / (tbar[i + 1] - tbar[i]) ** 2 / rate.shape[1])
        assert np.all(np.abs(mean - rates) < 5 * err), (i, mean, rates, err)


@pytest.mark.parametrize("ma", [HLWAS, SHORT], ids=lambda m: m.name)
def test_resultant_covariance_matches_casertano(ma):
    f, sigma = 30.0, 5.0
    npix = 30000
    res = simulate_resultants(np.full((1, npix), f), ma.read_pattern, ma.frame_time,
                              read_noise=sigma, rng=5, dtype=np.float64)[:, 0, :]
    n, tbar, tau = resultant_times(ma.read_pattern, ma.frame_time)
    expected = f * np.minimum.outer(tbar, tbar)
    expected[np.diag_indices(len(n))] = f * tau + sigma**2 / n
    cov = np.cov(res)
    # Sampling error of a covariance element of Gaussian-like data.
    se = np.sqrt((np.outer(np.diag(expected), np.diag(expected)) + expected**2) / (npix - 1))
    pulls = (cov - expected) / se
    assert np.max(np.abs(pulls)) < 4.5, np.round(pulls, 2)
    # The means follow f·t̄.
    np.testing.assert_allclose(res.mean(axis=1), f * tbar,
                               atol=5 * np.sqrt(np.diag(expected) / npix).max())


def test_cosmic_rays_add_their_charge_where_recorded():
    ma = HLWAS
    shape = (40, 50)
    rate = np.full(shape, 2.0)
    crs = np.zeros(3, dtype=CR_DTYPE)
    crs["y"], crs["x"], crs["read"], crs["charge"] = [10, 20, 30], [5, 25, 45], [1, 7, 44], [900.0, 5000.0, 300.0]
    gain = 2.0
    kw = dict(gain=gain, read_noise=5.0, rng=3, dtype=np.float64, rows_per_block=16)
    clean = simulate_resultants(rate, ma.read_pattern, ma.frame_time, **kw)
    hit = simulate_resultants(rate, ma.read_pattern, ma.frame_time, cosmic_rays=crs, **kw)
    diff = hit - clean
    expect = np.zeros_like(diff)
    for c in crs:
        for i, reads in enumerate(ma.read_pattern):
            frac = np.mean(np.asarray(reads) >= c["read"])
            expect[i, c["y"], c["x"]] = c["charge"] / gain * frac
    np.testing.assert_allclose(diff, expect, atol=1e-9)


def test_cosmic_ray_generator_records_positions_and_reads():
    rng = np.random.default_rng(2)
    crs = cosmic_ray_hits((300, 300), HLWAS.read_pattern, HLWAS.frame_time, rng, rate_per_cm2_s=500.0)
    assert len(crs) > 50
    assert np.all(np.diff(crs["read"]) >= 0)
    assert crs["read"].min() >= 1 and crs["read"].max() <= 44
    assert crs["y"].min() >= 4 and crs["y"].max() < 296
    # Each hit's brightest deposit is its centre pixel with the log-normal charge.
    centres = crs[np.unique(crs["hit"], return_index=True)[1]]
    assert np.median(centres["charge"]) == pytest.approx(1500, rel=0.3)


def test_saturation_plateau_and_reference_threshold():
    truth = make_detector_truth("WFI07", (32, 32), seed=4)
    rate = np.zeros((32, 32))
    sci = truth.science
    # A range of rates: some pixels fill the well during the exposure, some never do.
    rate[sci] = np.geomspace(10.0, 20000.0, 24 * 24).reshape(24, 24)
    res = simulate_resultants(rate, HLWAS.read_pattern, HLWAS.frame_time, gain=truth.gain,
                              read_noise=truth.read_noise, pedestal=truth.pedestal,
                              nonlinearity=truth.beta, full_well=truth.full_well, rng=1,
                              dtype=np.float64)
    thr = saturation_threshold(truth)
    n, tbar, tau = resultant_times(HLWAS.read_pattern, HLWAS.frame_time)
    # Expected linear signal at the *first* read of a resultant: if it exceeds the full well,
    # the whole resultant sits on the plateau, above the threshold.
    first = np.array([r[0] for r in HLWAS.read_pattern]) * HLWAS.frame_time
    last = np.array([r[-1] for r in HLWAS.read_pattern]) * HLWAS.frame_time
    lin_first = rate[None] * first[:, None, None] / truth.gain[None]
    lin_last = rate[None] * last[:, None, None] / truth.gain[None]
    margin = 8 * np.sqrt(lin_last * truth.gain + 1) / truth.gain + 6 * truth.read_noise
    sat = lin_first > truth.full_well + margin
    unsat = lin_last < 0.97 * truth.full_well - margin
    assert sat.sum() > 100 and unsat.sum() > 100
    assert np.all(res[sat] >= np.broadcast_to(thr, res.shape)[sat])
    assert np.all(res[unsat] < np.broadcast_to(thr, res.shape)[unsat])
    plateau = truth.pedestal + truth.full_well - truth.beta * truth.full_well**2
    np.testing.assert_allclose(res[sat], np.broadcast_to(plateau, res.shape)[sat],
                               atol=6 * truth.read_noise.max())


def test_linearity_references_invert_the_simulated_nonlinearity():
    truth = make_detector_truth("WFI11", (24, 24), seed=8)
    lin = linearity_coeffs(truth)
    ilin = inverselinearity_coeffs(truth)
    assert lin.shape == (6, 24, 24) and ilin.shape == (3, 24, 24)
    assert lin.dtype == np.float32 and ilin.dtype == np.float32
    y = truth.pedestal[None] + np.linspace(0, 1, 41)[:, None, None] * truth.full_well[None]
    raw = evaluate_poly(ilin, y)
    assert np.max(np.abs(evaluate_poly(lin, raw) - y)) < 0.05  # DN, over 0..50000 DN
    # The simulator's single-read values (noise-free, one read per resultant) are IL(linear).
    rate = np.full((24, 24), 600.0)
    pattern = [[1], [10], [20], [40]]
    res = simulate_resultants(rate, pattern, 3.0, gain=truth.gain, pedestal=truth.pedestal,
                              nonlinearity=truth.beta, rng=9, dtype=np.float64)
    linear = evaluate_poly(lin, res)
    t = np.array([1, 10, 20, 40]) * 3.0
    expected = truth.pedestal[None] + 600.0 * t[:, None, None] / truth.gain[None]
    pull = (linear - expected) / np.sqrt(600.0 * t[:, None, None]) * truth.gain[None]
    assert abs(pull.mean()) < 0.1 and 0.8 < pull.std() < 1.2
    # Without the correction the highest resultant is visibly low (~1.5 % at 36000 DN).
    assert np.mean(res[-1] - expected[-1]) < -200


def test_reference_arrays_describe_the_truth():
    truth = make_detector_truth("WFI02", (64, 64), seed=1, dead_fraction=0.02, hot_fraction=0.02)
    refs = reference_arrays(truth)
    dq = mask_dq(truth)
    assert np.all(dq[truth.dead] & 1024) and np.all(dq[truth.hot] & 2048)
    assert np.all(dq[:4] & (1 << 31)) and not np.any(dq[4:-4, 4:-4] & (1 << 31))
    np.testing.assert_array_equal(refs["gain"]["data"], truth.gain)
    np.testing.assert_allclose(refs["dark"]["dark_slope"], truth.dark_rate / truth.gain, rtol=1e-6)
    assert refs["flat"]["data"].shape == (56, 56)
    # DN response: QE flat times the amplifier gain relative to the nominal gain
    np.testing.assert_allclose(refs["flat"]["data"], truth.flat[4:-4, 4:-4] * 2.0 / truth.gain[4:-4, 4:-4],
                               rtol=1e-6)
    g = refs["refpix"]["gamma"]
    assert g.shape == (1, 64 * 140 // 2 + 1) and g.dtype == np.complex128
    # The same seed gives the same detector; another detector differs.
    again = make_detector_truth("WFI02", (64, 64), seed=1, dead_fraction=0.02, hot_fraction=0.02)
    np.testing.assert_array_equal(again.gain, truth.gain)
    other = make_detector_truth("WFI03", (64, 64), seed=1)
    assert not np.array_equal(other.gain, truth.gain)


def test_uint16_output_is_rounded_and_clipped_and_split():
    rate = np.zeros((8, 12))
    rate[:, :4] = 1e6
    main = np.empty((2, 8, 8), np.uint16)
    extra = np.empty((2, 8, 4), np.uint16)
    out = simulate_resultants(rate, [[1], [2]], 3.0, pedestal=100.0, rng=0, out=[main, extra])
    assert out[0] is main and out[1] is extra
    assert np.all(main[:, :, :4] == 65535)
    assert np.all(main[:, :, 4:] == 100) and np.all(extra == 100)


def test_bad_inputs_raise_parameter_errors():
    with pytest.raises(ParameterError, match="rate"):
        simulate_resultants(np.full((4, 4), -1.0), [[1]], 3.0)
    with pytest.raises(ParameterError, match="rate"):
        simulate_resultants(np.full((4, 4), np.nan), [[1]], 3.0)
    with pytest.raises(ParameterError, match="read_pattern"):
        simulate_resultants(np.ones((4, 4)), [[2], [1]], 3.0)
    with pytest.raises(ParameterError, match="gain"):
        simulate_resultants(np.ones((4, 4)), [[1]], 3.0, gain=np.ones((3, 3)))
    with pytest.raises(ParameterError, match="frame_time"):
        simulate_resultants(np.ones((4, 4)), [[1]], 0.0)
    with pytest.raises(ParameterError, match="out"):
        simulate_resultants(np.ones((4, 4)), [[1]], 3.0, out=np.empty((1, 4, 3)))
