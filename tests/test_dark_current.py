import numpy as np
import pytest

from romancore.algorithms.dark_current import subtract_dark_slope
from romancore.dq import pixel
from romancore.errors import ParameterError


def test_subtracts_trimmed_dark_and_ors_dq():
    data = np.full((4, 5), 10.0, np.float32)
    dq = np.zeros((4, 5), np.uint32)
    dq[0, 0] = pixel.JUMP_DET
    slope = np.arange(12 * 13, dtype=np.float32).reshape(12, 13) / 100
    slope[4 + 1, 4 + 2] = np.nan
    ddq = np.zeros((12, 13), np.uint32)
    ddq[4, 4] = pixel.HOT
    ddq[0, 0] = pixel.DEAD  # border: not used
    used = subtract_dark_slope(data, dq, slope, ddq, dark_slope_error=slope * 0 + 0.5)
    expect = 10.0 - np.nan_to_num(slope[4:-4, 4:-4])
    np.testing.assert_allclose(data, expect, rtol=1e-6)
    assert data[1, 2] == 10.0
    assert dq[0, 0] == pixel.JUMP_DET | pixel.HOT and dq[1:].max() == 0
    np.testing.assert_array_equal(used.dark_slope, np.nan_to_num(slope[4:-4, 4:-4]))
    assert used.dark_slope_error.shape == (4, 5)


def test_same_shape_dark_and_rate_recovered():
    rng = np.random.default_rng(0)
    true_rate = rng.uniform(0, 5, (30, 30)).astype(np.float32)
    dark = rng.uniform(0, 0.1, (30, 30)).astype(np.float32)
    data = true_rate + dark
    dq = np.zeros((30, 30), np.uint32)
    subtract_dark_slope(data, dq, dark)
    np.testing.assert_allclose(data, true_rate, atol=1e-6)


def test_bad_inputs():
    data = np.zeros((4, 4), np.float32)
    dq = np.zeros((4, 4), np.uint32)
    with pytest.raises(ParameterError, match="dark_slope must have the image shape"):
        subtract_dark_slope(data, dq, np.zeros((5, 5), np.float32))
    with pytest.raises(ParameterError, match="data must have dtype float32"):
        subtract_dark_slope(data.astype(float), dq, np.zeros((4, 4)))
    with pytest.raises(ParameterError, match="dark_dq must have shape"):
        subtract_dark_slope(data, dq, np.zeros((4, 4)), np.zeros((3, 3), np.uint32))
