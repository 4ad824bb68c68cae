import numpy as np
import pytest

from romancore.algorithms.saturation import (
    NO_SAT_CHECK_THRESHOLD,
    dilution_factors,
    flag_saturation,
)
from romancore.dq import group, pixel
from romancore.errors import ParameterError
from tests.oracles import detector as oracle

DNU, SAT, ADF = int(group.DO_NOT_USE), int(group.SATURATED), int(group.AD_FLOOR)


def _ramp(values, ny=1, nx=1):
    data = np.asarray(values, dtype=np.float32).reshape(-1, ny, nx).copy()
    return data, np.zeros(data.shape, np.uint8), np.zeros(data.shape[1:], np.uint32)


def test_dilution_factor_examples():
    rp = [[1], [2, 3], [4, 5, 6, 7], [8]]
    np.testing.assert_allclose(dilution_factors(rp), [1.0, 2.5 / 3, 5.5 / 7, 1.0], rtol=0, atol=0)


def test_propagation_and_ad_floor():
    rp = [[1], [2], [3], [4], [5]]
    data, gdq, pdq = _ramp([-3, 50, 120, 90, 130])
    thr = np.full((1, 1), 100.0, np.float32)
    assert not flag_saturation(data, gdq, pdq, thr, np.zeros((1, 1), np.uint32), rp)
    assert gdq[:, 0, 0].tolist() == [ADF | DNU, 0, SAT, SAT, SAT]


def test_dilution_marks_resultant_before_saturation():
    # resultant 1 averages reads 2..5; thr*D = 100*3.5/5 = 70
    rp = [[1], [2, 3, 4, 5], [6]]
    thr = np.full((1, 3), 100.0, np.float32)
    # R0 = 30 predicts 30*6 = 180 >= thr, so the second-resultant check stays quiet
    data = np.array([[[30, 30, 30]], [[75, 69, 75]], [[120, 120, 90]]], np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((1, 3), np.uint32)
    flag_saturation(data, gdq, pdq, thr, np.zeros((1, 3), np.uint32), rp)
    # pixel 0: 75 >= 70 and next saturated -> DNU; pixel 1: 69 < 70; pixel 2: next not saturated
    assert gdq[1, 0].tolist() == [DNU, 0, 0]
    assert gdq[2, 0].tolist() == [SAT, SAT, 0]


def test_no_sat_check_and_nan_threshold():
    rp = [[1], [2], [3]]
    data = np.array([[[10, 10, 10]], [[60000, 60000, 60000]], [[65535, 65535, 65535]]], np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((1, 3), np.uint32)
    thr = np.array([[100.0, np.nan, 100.0]], np.float32)
    tdq = np.array([[pixel.NO_SAT_CHECK, 0, 0]], np.uint32)
    flag_saturation(data, gdq, pdq, thr, tdq, rp)
    assert gdq[:, 0, 0].tolist() == [0, 0, 0]
    assert gdq[:, 0, 1].tolist() == [0, 0, 0]
    assert gdq[:, 0, 2].tolist() == [0, SAT, SAT]
    assert pdq[0].tolist() == [pixel.NO_SAT_CHECK, pixel.NO_SAT_CHECK, 0]
    assert NO_SAT_CHECK_THRESHOLD > 65535


def test_second_resultant_check():
    # thr 1000; rp[0]=[1], rp[1]=[2,3], rp[2]=[4,5]
    rp = [[1], [2, 3], [4, 5], [6]]
    thr = np.full((1, 2), 1000.0, np.float32)
    # pixel 0: R0=100 predicts 100/1*5=500 < 1000; R1-R0 = 600 > (1000-100)/2 = 450; R2 saturated
    # pixel 1: same but R1-R0 = 400 < 450 -> not flagged by this check (dilution 2.5/3*1000=833 > 500)
    data = np.array([[[100, 100]], [[700, 500]], [[1100, 1100]], [[1200, 1200]]], np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((1, 2), np.uint32)
    flag_saturation(data, gdq, pdq, thr, np.zeros((1, 2), np.uint32), rp)
    assert gdq[1, 0].tolist() == [DNU, 0]
    assert gdq[:, 0, 1].tolist() == [0, 0, SAT, SAT]
    assert gdq[:, 0, 0].tolist() == [0, DNU, SAT, SAT]


def test_growth_flags_neighbours_from_same_resultant():
    rp = [[1], [2], [3]]
    data = np.full((3, 5, 5), 10.0, np.float32)
    data[1:, 2, 2] = 500.0
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((5, 5), np.uint32)
    thr = np.full((5, 5), 100.0, np.float32)
    flag_saturation(data, gdq, pdq, thr, np.zeros((5, 5), np.uint32), rp, n_pix_grow_sat=1)
    assert not gdq[0].any()
    for g in (1, 2):
        expect = np.zeros((5, 5), np.uint8)
        expect[1:4, 1:4] = SAT
        np.testing.assert_array_equal(gdq[g], expect)


def test_all_saturated_reported():
    rp = [[1], [2]]
    data = np.full((2, 3, 3), 70000.0, np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((3, 3), np.uint32)
    thr = np.full((3, 3), 100.0, np.float32)
    assert flag_saturation(data, gdq, pdq, thr, np.zeros((3, 3), np.uint32), rp)


@pytest.mark.parametrize("grow,backup", [(0, 0), (1, 0), (2, 1), (0, 2)])
def test_matches_oracle_on_random_ramps(grow, backup):
    rng = np.random.default_rng(11 + grow + 10 * backup)
    rp = [[1], [2, 3], [4, 5, 6], [7], [8, 9, 10, 11], [12, 13], [14]]
    n, ny, nx = len(rp), 40, 37
    rate = rng.uniform(-2, 30, (ny, nx))
    tbar = np.array([np.mean(r) for r in rp])
    data = (rate[None] * tbar[:, None, None] + rng.normal(0, 5, (n, ny, nx))).astype(np.float32)
    thr = rng.uniform(50, 300, (ny, nx)).astype(np.float32)
    thr[rng.random((ny, nx)) < 0.03] = np.nan
    tdq = np.where(rng.random((ny, nx)) < 0.03, pixel.NO_SAT_CHECK | pixel.DEAD, 0).astype(np.uint32)
    gdq0 = np.where(rng.random(data.shape) < 0.02, SAT, 0).astype(np.uint8)
    pdq0 = np.where(rng.random((ny, nx)) < 0.1, pixel.HOT, 0).astype(np.uint32)
    exp_g, exp_p = oracle.saturation(data, gdq0, pdq0, thr, tdq, rp, grow, backup)
    gdq, pdq = gdq0.copy(), pdq0.copy()
    flag_saturation(data, gdq, pdq, thr, tdq, rp, n_pix_grow_sat=grow, backup=backup)
    np.testing.assert_array_equal(gdq, exp_g)
    np.testing.assert_array_equal(pdq, exp_p)
    assert (gdq & SAT).any() and (gdq & DNU).any()


def test_bad_inputs():
    rp = [[1], [2]]
    data, gdq, pdq = _ramp([1, 2])
    thr = np.ones((1, 1), np.float32)
    tdq = np.zeros((1, 1), np.uint32)
    with pytest.raises(ParameterError, match="data must have dtype float32"):
        flag_saturation(data.astype(np.float64), gdq, pdq, thr, tdq, rp)
    with pytest.raises(ParameterError, match="groupdq must have shape"):
        flag_saturation(data, gdq[:1], pdq, thr, tdq, rp)
    with pytest.raises(ParameterError, match="threshold must have shape"):
        flag_saturation(data, gdq, pdq, np.ones((2, 2), np.float32), tdq, rp)
    with pytest.raises(ParameterError, match="read_pattern has 3 resultants"):
        flag_saturation(data, gdq, pdq, thr, tdq, [[1], [2], [3]])
    with pytest.raises(ParameterError, match="strictly increasing"):
        flag_saturation(data, gdq, pdq, thr, tdq, [[2], [1]])
    with pytest.raises(ParameterError, match="n_pix_grow_sat must be an integer >= 0"):
        flag_saturation(data, gdq, pdq, thr, tdq, rp, n_pix_grow_sat=-1)
