"""Data-quality flags of Roman WFI products and the bit-specification interpreter.

Pixel flags are uint32 (``dq``, ``pixeldq``), group flags uint8 (``groupdq``).
Bit values are those of the Roman data products.

:func:`interpret_bit_flags` is the single place where user bit specifications
(``good_bits``, ``dqbits``, ...) are turned into integer masks, following the
"Parameter Specification" rules of the reference documentation:

* an integer, or a string of integers joined by ``+`` or ``,`` (summed);
* flag mnemonics instead of integers (``"JUMP_DET, DROPOUT"``);
* a leading ``~`` inverts the meaning: the listed bits are *bad*, all others good;
* ``None`` (or ``"~0"``) turns the use of DQ off.
"""

from __future__ import annotations

import re
from enum import IntFlag

import numpy as np


class pixel(IntFlag):  # noqa: N801 - lower-case like the reference namespace
    """Pixel (uint32) data-quality flags."""

    GOOD = 0
    DO_NOT_USE = 1 << 0
    SATURATED = 1 << 1
    JUMP_DET = 1 << 2
    DROPOUT = 1 << 3
    GW_AFFECTED_DATA = 1 << 4
    PERSISTENCE = 1 << 5
    AD_FLOOR = 1 << 6
    OUTLIER = 1 << 7
    UNRELIABLE_ERROR = 1 << 8
    NON_SCIENCE = 1 << 9
    DEAD = 1 << 10
    HOT = 1 << 11
    WARM = 1 << 12
    LOW_QE = 1 << 13
    TELEGRAPH = 1 << 15
    NONLINEAR = 1 << 16
    BAD_REF_PIXEL = 1 << 17
    NO_FLAT_FIELD = 1 << 18
    NO_GAIN_VALUE = 1 << 19
    NO_LIN_CORR = 1 << 20
    NO_SAT_CHECK = 1 << 21
    UNRELIABLE_BIAS = 1 << 22
    UNRELIABLE_DARK = 1 << 23
    UNRELIABLE_SLOPE = 1 << 24
    UNRELIABLE_FLAT = 1 << 25
    UNRELIABLE_RESET = 1 << 28
    OTHER_BAD_PIXEL = 1 << 30
    REFERENCE_PIXEL = 1 << 31


class group(IntFlag):  # noqa: N801
    """Group (uint8) data-quality flags, one per resultant."""

    GOOD = 0
    DO_NOT_USE = 1 << 0
    SATURATED = 1 << 1
    JUMP_DET = 1 << 2
    DROPOUT = 1 << 3
    AD_FLOOR = 1 << 6
    WFI18_TRANSIENT = 1 << 7


_ALL_PIXEL_BITS = 0xFFFFFFFF
_SPLIT = re.compile(r"[+,]")


def _one_term(term: str, flags: type[IntFlag]) -> int:
    term = term.strip()
    if not term:
        raise ValueError("empty term in bit specification")
    if re.fullmatch(r"\d+", term):
        return int(term)
    name = term.upper()
    try:
        return int(flags[name])
    except KeyError:
        known = ", ".join(f.name for f in flags if f.name != "GOOD")
        raise ValueError(f"unknown DQ flag name {term!r}; known names: {known}") from None


def interpret_bit_flags(spec, flags: type[IntFlag] = pixel) -> int | None:
    """Turn a bit specification into the integer of *good* bits.

    Parameters
    ----------
    spec : int, str, sequence of int/str, or None
        The specification (see the module docstring).
    flags : IntFlag class
        Where flag mnemonics are looked up (``pixel`` or ``group``).

    Returns
    -------
    int or None
        The sum of good bits, or ``None`` when DQ is not to be used.

    Examples
    --------
    >>> interpret_bit_flags("4+8") == interpret_bit_flags("JUMP_DET, DROPOUT") == 12
    True
    >>> interpret_bit_flags("~4,8") == 0xFFFFFFFF & ~12
    True
    >>> interpret_bit_flags("~0") is None
    True
    """
    if spec is None:
        return None
    if isinstance(spec, (bool, np.bool_)):
        raise ValueError(f"bit specification must be an integer, a string or None, not {spec!r}")
    if isinstance(spec, (int, np.integer)):
        if spec < 0:
            raise ValueError(f"bit specification must be non-negative, got {spec}")
        return int(spec)
    if isinstance(spec, (list, tuple)):
        total = 0
        for item in spec:
            value = interpret_bit_flags(item, flags)
            total |= 0 if value is None else value
        return total
    if not isinstance(spec, str):
        raise ValueError(f"bit specification must be an integer, a string or None, not {spec!r}")
    text = spec.strip()
    if text.upper() in ("", "NONE", "INDEF"):
        return None
    invert = text.startswith("~")
    if invert:
        text = text[1:].strip()
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
    total = 0
    for term in _SPLIT.split(text):
        total |= _one_term(term, flags)
    if invert:
        if total == 0:
            return None
        return _ALL_PIXEL_BITS & ~total
    return total


def good_mask(dq: np.ndarray, good_bits) -> np.ndarray:
    """Boolean mask, True where a pixel counts as good under ``good_bits``.

    A pixel is good when it has no bits set other than the good bits; with
    ``good_bits=None`` every pixel is good.
    """
    bits = interpret_bit_flags(good_bits)
    if bits is None:
        return np.ones(dq.shape, dtype=bool)
    return (dq & ~np.uint32(bits & _ALL_PIXEL_BITS)) == 0


def flag_names(value: int, flags: type[IntFlag] = pixel) -> list[str]:
    """Names of the flags set in ``value`` (for messages and ``info()``)."""
    return [f.name for f in flags if f.value and (int(value) & f.value)]
