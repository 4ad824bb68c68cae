import numpy as np
import pytest

from romancore.algorithms.dark_decay import (
    CHANNEL_WIDTH,
    PIXEL_CLOCK,
    ROW_PAD_CLOCKS,
    correct_wfi18_transient,
    detector_number,
    frame_read_times,
    subtract_dark_decay,
)
from romancore.dq import group
from romancore.errors import ParameterError

FT = 3.04


def _direct_decay(shape, rp, amp, tau, det):
    """Slow reference: average A exp(-t/tau) over the reads, each read time explicit."""
    tpix = frame_read_times(det, shape)
    out = np.zeros((len(rp),) + tuple(shape))
    for i, reads in enumerate(rp):
        for r in reads:
            out[i] += amp * np.exp(-((r - 1.5) * FT + tpix) / tau)
        out[i] /= len(reads)
    return out


def test_frame_read_times_model():
    row = (CHANNEL_WIDTH + ROW_PAD_CLOCKS) * PIXEL_CLOCK
    t = frame_read_times("WFI01", (600, 256))  # row flip: the last science row is read first
    assert t[-1, 0] == 0.0
    assert t[-1, 127] == pytest.approx(127 * PIXEL_CLOCK)
    assert t[-1, 255] == 0.0 and t[-1, 128] == pytest.approx(127 * PIXEL_CLOCK)  # odd channel reversed
    assert t[-2, 0] == pytest.approx(row)
    # one guide-window excursion after 256 rows adds half a row
    assert t[-1 - 256, 0] == pytest.approx(256.5 * row)
    t3 = frame_read_times("WFI03", (600, 256))  # column flip
    assert t3[0, -1] == 0.0 and t3[1, -1] == pytest.approx(row)
    full = frame_read_times(7, (4096, 256))
    expect_max = ((4095 + 0.5 * 15) * (CHANNEL_WIDTH + ROW_PAD_CLOCKS) + 127) * PIXEL_CLOCK
    assert full.max() == pytest.approx(expect_max) and full.max() < FT


@pytest.mark.parametrize("amp,tau", [(40.0, 2.0), (3.0, 0.4)])
def test_dark_decay_removes_known_signal(amp, tau):
    rng = np.random.default_rng(0)
    rp = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10]]
    shape = (64, 256)
    truth = (rng.uniform(0, 50, shape)[None] * np.arange(1, 6)[:, None, None]).astype(np.float64)
    decay = _direct_decay(shape, rp, amp, tau, "WFI05")
    data = (truth + decay).astype(np.float32)
    subtract_dark_decay(data, rp, FT, amp, tau, "WFI05")
    assert decay.max() > 20
    np.testing.assert_allclose(data, truth, atol=5e-4)


def test_dark_decay_orientation_matters():
    rp = [[1], [2]]
    shape = (16, 128)
    data = np.zeros((2,) + shape, np.float32)
    subtract_dark_decay(data, rp, FT, 10.0, 0.5, "WFI03")
    np.testing.assert_allclose(data, -_direct_decay(shape, rp, 10.0, 0.5, "WFI03"), rtol=1e-5)
    other = np.zeros_like(data)
    subtract_dark_decay(other, rp, FT, 10.0, 0.5, "WFI04")
    assert not np.allclose(other, data)


def test_dark_decay_zero_amplitude_is_identity_and_bad_inputs():
    data = np.ones((2, 8, 128), np.float32)
    subtract_dark_decay(data, [[1], [2]], FT, 0.0, 1.0, "WFI01")
    assert np.all(data == 1)
    with pytest.raises(ParameterError, match="time_constant must be finite and > 0"):
        subtract_dark_decay(data, [[1], [2]], FT, 1.0, 0.0, "WFI01")
    with pytest.raises(ParameterError, match="detector must be"):
        subtract_dark_decay(data, [[1], [2]], FT, 1.0, 1.0, "WFI19")
    with pytest.raises(ParameterError, match="shape must be"):
        frame_read_times("WFI01", (0, 128))
    small = frame_read_times("WFI01", (8, 64))  # subarrays: first columns of channel 0
    assert small[-1, 63] == pytest.approx(63 * PIXEL_CLOCK)
    assert detector_number("wfi09") == 9 and detector_number(18) == 18


def _wfi18_ramp(rng, rp, shape, a1=60.0, tau_a=0.05, b1=25.0, tau_b=0.25, noise=2.0):
    tpix = frame_read_times("WFI18", shape)
    t_first = (1 - 1.5) * FT
    tbar = np.array([np.mean(r) for r in rp]) * FT
    truth = rng.uniform(1, 5, shape)[None] * tbar[:, None, None] + 100.0
    trans = np.zeros((len(rp),) + shape)
    for i, reads in enumerate(rp):
        for r in reads:
            t = (r - 1.5) * FT + tpix - t_first
            trans[i] += a1 * np.exp(-t / tau_a) + b1 * np.exp(-t / tau_b)
        trans[i] /= len(reads)
    noisy = truth + rng.normal(0, noise, truth.shape)
    return (noisy + trans).astype(np.float32), noisy, trans


def test_wfi18_transient_fit_removes_signal():
    rng = np.random.default_rng(1)
    rp = [[1], [2], [3], [4], [5], [6, 7]]
    shape = (1200, 256)
    data, noisy, trans = _wfi18_ramp(rng, rp, shape)
    gdq = np.zeros(data.shape, np.uint8)
    before = np.abs((data[0] - noisy[0]).mean(axis=1)).max()
    assert correct_wfi18_transient(data, gdq, rp, FT, "WFI18") == "corrected"
    row_resid = (data[0] - noisy[0]).mean(axis=1)
    assert before > 80
    assert np.abs(row_resid).max() < 0.5
    np.testing.assert_array_equal(data[1:], (noisy + trans)[1:].astype(np.float32))
    assert not gdq.any()


def test_wfi18_transient_masks_short_ramps_and_failed_fits():
    rng = np.random.default_rng(2)
    rp = [[1], [2], [3], [4]]
    data, _, _ = _wfi18_ramp(rng, rp, (1100, 128))
    gdq = np.zeros(data.shape, np.uint8)
    assert correct_wfi18_transient(data, gdq, rp, FT, "WFI18") == "masked"
    flag = group.DO_NOT_USE | group.WFI18_TRANSIENT
    assert np.all(gdq[0, :1000] == flag) and not gdq[0, 1000:].any() and not gdq[1:].any()

    rp = [[1], [2], [3], [4], [5]]
    data = np.full((5, 1100, 128), np.nan, np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    assert correct_wfi18_transient(data, gdq, rp, FT, "WFI18") == "masked"
    assert np.all(gdq[0, :1000] == flag)


def test_wfi18_only():
    data = np.zeros((5, 16, 128), np.float32)
    with pytest.raises(ParameterError, match="WFI18 only"):
        correct_wfi18_transient(data, np.zeros(data.shape, np.uint8), [[1], [2], [3], [4], [5]], FT, "WFI01")
