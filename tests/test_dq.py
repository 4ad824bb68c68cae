"""DQ flag values and the bit-specification rules of the reference documentation."""

import numpy as np
import pytest

from romancore import dq
from romancore._ext import dq_ops


def test_flag_values_match_roman_products():
    assert dq.pixel.DO_NOT_USE == 1
    assert dq.pixel.SATURATED == 2
    assert dq.pixel.JUMP_DET == 4
    assert dq.pixel.OUTLIER == 128
    assert dq.pixel.NO_FLAT_FIELD == 2**18
    assert dq.pixel.NO_SAT_CHECK == 2**21
    assert dq.pixel.REFERENCE_PIXEL == 2**31
    assert dq.group.WFI18_TRANSIENT == 128
    assert dq.group.AD_FLOOR == 64


@pytest.mark.parametrize("spec", [12, "12", "4+8", "4,8", "4, 8", "JUMP_DET, DROPOUT", "jump_det+dropout", [4, "DROPOUT"]])
def test_equivalent_specifications(spec):
    assert dq.interpret_bit_flags(spec) == 12


def test_inversion_and_none():
    assert dq.interpret_bit_flags(None) is None
    assert dq.interpret_bit_flags("~0") is None
    assert dq.interpret_bit_flags("None") is None
    inv = dq.interpret_bit_flags("~4+8")
    assert inv == dq.interpret_bit_flags("~4,8") == 0xFFFFFFFF & ~12
    assert dq.interpret_bit_flags("~DO_NOT_USE+NON_SCIENCE") == 0xFFFFFFFF & ~(1 | 512)


@pytest.mark.parametrize("bad", ["FOO", "4+", -1, 1.5, True])
def test_bad_specifications_raise(bad):
    with pytest.raises(ValueError):
        dq.interpret_bit_flags(bad)


def test_good_mask_follows_the_seed_example():
    # good bits 2 and 4 (value 6): values 2, 4 and 6 are good; 3 and 12 are bad
    values = np.array([0, 2, 4, 6, 3, 12], dtype=np.uint32)
    assert dq.good_mask(values, 6).tolist() == [True, True, True, True, False, False]
    assert dq.good_mask(values, None).all()
    assert dq.good_mask(values, 0).tolist() == [True, False, False, False, False, False]


def test_kernels_match_numpy():
    rng = np.random.default_rng(3)
    gdq = rng.integers(0, 256, size=(5, 17, 23), dtype=np.uint8)
    expected = np.bitwise_or.reduce(gdq, axis=0).astype(np.uint32)
    np.testing.assert_array_equal(dq_ops.or_over_resultants(gdq), expected)
    pdq = rng.integers(0, 2**32, size=(17, 23), dtype=np.uint32)
    bad = np.uint32(1 | 4 | 2**31)
    np.testing.assert_array_equal(dq_ops.good_pixel_mask(pdq, bad), ((pdq & bad) == 0).astype(np.uint8))


def test_flag_names():
    assert dq.flag_names(1 | 4) == ["DO_NOT_USE", "JUMP_DET"]
