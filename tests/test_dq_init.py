import numpy as np
import pytest

from romancore.algorithms.dq_init import (
    apply_mask,
    border_reference_pixels,
    check_read_pattern,
    flag_guide_window,
    groupdq_from_resultantdq,
    raw_to_ramp_data,
)
from romancore.dq import pixel
from romancore.errors import ParameterError

GW = int(pixel.GW_AFFECTED_DATA)
DNU = int(pixel.DO_NOT_USE)


def test_raw_to_ramp_data_offset_and_reference_read():
    raw = np.array([[[100, 200], [300, 400]], [[110, 210], [310, 410]]], np.uint16)
    amp = np.array([[[5], [6]], [[7], [8]]], np.uint16)
    data, a33 = raw_to_ramp_data(raw, amp, data_encoding_offset=100)
    assert data.dtype == np.float32 and a33.dtype == np.uint16
    np.testing.assert_array_equal(data, raw.astype(np.float32) - 100)
    assert a33.max() == 0  # 5..8 - 100 clipped at 0 rather than wrapping
    ref = np.array([[1000, 2000], [3000, 65535]], np.uint16)
    data, a33 = raw_to_ramp_data(raw, amp, reference_read=ref, reference_amp33=np.array([[65535], [1]], np.uint16))
    np.testing.assert_array_equal(data[1], raw[1].astype(np.float32) + ref)
    assert data[0, 1, 1] == 400 + 65535  # no uint16 overflow
    assert a33[:, 0, 0].tolist() == [65535, 65535] and a33[:, 1, 0].tolist() == [7, 9]


def test_groupdq_from_resultantdq():
    g = groupdq_from_resultantdq((2, 3, 4))
    assert g.dtype == np.uint8 and g.shape == (2, 3, 4) and not g.any()
    rdq = np.ones((2, 3, 4), np.uint8)
    g = groupdq_from_resultantdq((2, 3, 4), rdq)
    assert g.sum() == 24 and g is not rdq
    with pytest.raises(ParameterError, match="resultantdq must have shape"):
        groupdq_from_resultantdq((2, 3, 5), rdq)


def test_guide_window_flags():
    pdq = np.zeros((10, 12), np.uint32)
    pdq[0, 3] = pixel.HOT
    assert flag_guide_window(pdq, 3, 5, 4, 6, expand_gw_flagging=1)
    expect = np.zeros((10, 12), np.uint32)
    expect[0, 3] = pixel.HOT  # existing flags are kept
    expect[:, 3:5] |= GW
    expect[3:7, 2:6] |= GW | DNU
    np.testing.assert_array_equal(pdq, expect)
    # clipped at the array edge
    pdq = np.zeros((10, 12), np.uint32)
    flag_guide_window(pdq, 10, 14, 8, 12, expand_gw_flagging=0)
    assert (pdq[:, 10:] & GW).all() and (pdq[8:, 10:] & DNU).all() and not (pdq[:8] & DNU).any()
    # off the detector: nothing
    pdq = np.zeros((10, 12), np.uint32)
    assert not flag_guide_window(pdq, -1, 3, 2, 4)
    assert not pdq.any()
    with pytest.raises(ParameterError, match="expand_gw_flagging must be >= 0"):
        flag_guide_window(pdq, 1, 3, 2, 4, expand_gw_flagging=-2)


def test_apply_mask():
    pdq = np.full((3, 3), GW, np.uint32)
    mask = np.zeros((3, 3), np.uint32)
    mask[1, 1] = pixel.DEAD | DNU
    assert apply_mask(pdq, mask)
    assert pdq[1, 1] == GW | pixel.DEAD | DNU and pdq[0, 0] == GW
    assert not apply_mask(pdq, np.zeros((4, 4), np.uint32))


def test_border_reference_pixels():
    data = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    pdq = np.arange(120, dtype=np.uint32).reshape(10, 12)
    b = border_reference_pixels(data, pdq)
    np.testing.assert_array_equal(b["border_ref_pix_left"], data[:, :, :4])
    np.testing.assert_array_equal(b["border_ref_pix_right"], data[:, :, -4:])
    np.testing.assert_array_equal(b["border_ref_pix_top"], data[:, :4, :])
    np.testing.assert_array_equal(b["border_ref_pix_bottom"], data[:, -4:, :])
    np.testing.assert_array_equal(b["dq_border_ref_pix_right"], pdq[:, -4:])
    np.testing.assert_array_equal(b["dq_border_ref_pix_bottom"], pdq[-4:, :])
    assert b["border_ref_pix_left"].flags.c_contiguous
    data[:] = 0  # copies, not views
    assert b["border_ref_pix_top"].max() > 0


def test_read_pattern_checks():
    assert check_read_pattern([[1], [2, 3]], 2) == [[1], [2, 3]]
    with pytest.raises(ParameterError, match="read_pattern has 2 resultants but the data have 3"):
        check_read_pattern([[1], [2]], 3)
    with pytest.raises(ParameterError, match="read_pattern\\[1\\] is empty"):
        check_read_pattern([[1], []])
    with pytest.raises(ParameterError, match="list of lists"):
        check_read_pattern([1, 2])


def test_bad_inputs():
    with pytest.raises(ParameterError, match="amp33 must have shape"):
        raw_to_ramp_data(np.zeros((2, 4, 4), np.uint16), np.zeros((1, 4, 2), np.uint16))
    with pytest.raises(ParameterError, match="data must be 3-D"):
        raw_to_ramp_data(np.zeros((4, 4), np.uint16), np.zeros((1, 4, 2), np.uint16))
    with pytest.raises(ParameterError, match="reference_read must have shape"):
        raw_to_ramp_data(np.zeros((2, 4, 4), np.uint16), np.zeros((2, 4, 2), np.uint16),
                         reference_read=np.zeros((3, 3), np.uint16))
