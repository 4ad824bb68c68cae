"""Data-quality initialisation of a ramp (ALGORITHMS.md section 5.1).

Pieces the ``RampModel.from_raw`` / ``dq_init`` facades combine:

* :func:`raw_to_ramp_data` - L1 uint16 resultants (plus an optional reference
  read) to float32 DN with the data-encoding offset removed, and the matching
  amp33 array;
* :func:`groupdq_from_resultantdq` - the initial group DQ cube;
* :func:`flag_guide_window` - GW_AFFECTED_DATA / DO_NOT_USE flags of the guide window;
* :func:`apply_mask` - OR the MASK reference DQ into the pixel DQ;
* :func:`border_reference_pixels` - copies of the 4-pixel reference border and its DQ,
  taken before any correction.

The module also holds the shared input checks of the detector-level
algorithms (:func:`check_ramp`, :func:`check_read_pattern`).
"""

from __future__ import annotations

import logging

import numpy as np

from ..dq import pixel
from ..errors import ParameterError

log = logging.getLogger(__name__)

REF_BORDER = 4
"""Width in pixels of the reference-pixel border around the science area."""

AMP33_MAX = 65535


# ---------------------------------------------------------------------------------------
# shared checks
# ---------------------------------------------------------------------------------------

def check_array(name: str, arr, *, ndim: int, dtype=None, shape=None, contiguous: bool = False):
    """Validate an array argument and return it (as an ndarray).

    Raises ParameterError naming the argument, the value found and the rule.
    """
    if not isinstance(arr, np.ndarray):
        raise ParameterError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != ndim:
        raise ParameterError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise ParameterError(f"{name} must have dtype {np.dtype(dtype)}, got {arr.dtype}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ParameterError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if contiguous and not arr.flags.c_contiguous:
        raise ParameterError(f"{name} must be C-contiguous (it is modified in place)")
    if contiguous and not arr.flags.writeable:
        raise ParameterError(f"{name} must be writeable (it is modified in place)")
    return arr


def check_ramp(data, groupdq=None, pixeldq=None):
    """Check the ramp arrays: data float32 [nres, ny, nx], groupdq uint8 same shape,
    pixeldq uint32 [ny, nx]; all C-contiguous and writeable."""
    check_array("data", data, ndim=3, dtype=np.float32, contiguous=True)
    if data.shape[0] < 1:
        raise ParameterError(f"data must hold at least one resultant, got shape {data.shape}")
    if groupdq is not None:
        check_array("groupdq", groupdq, ndim=3, dtype=np.uint8, shape=data.shape, contiguous=True)
    if pixeldq is not None:
        check_array("pixeldq", pixeldq, ndim=2, dtype=np.uint32, shape=data.shape[1:], contiguous=True)


def check_read_pattern(read_pattern, nresultants: int | None = None) -> list[list[int]]:
    """Validate a read pattern (list of lists of 1-based, increasing read numbers).

    Returns it as a list of lists of int. ``nresultants``, when given, must equal
    its length.
    """
    try:
        rp = [[int(r) for r in res] for res in read_pattern]
    except (TypeError, ValueError):
        raise ParameterError(
            f"read_pattern must be a list of lists of read numbers, got {read_pattern!r}"
        ) from None
    if not rp:
        raise ParameterError("read_pattern must not be empty")
    previous = 0
    for i, res in enumerate(rp):
        if not res:
            raise ParameterError(f"read_pattern[{i}] is empty; every resultant needs >= 1 read")
        for r in res:
            if r <= previous:
                raise ParameterError(
                    f"read_pattern reads must be 1-based and strictly increasing; "
                    f"read {r} in resultant {i} follows {previous}"
                )
            previous = r
    if nresultants is not None and len(rp) != nresultants:
        raise ParameterError(
            f"read_pattern has {len(rp)} resultants but the data have {nresultants}"
        )
    return rp


# ---------------------------------------------------------------------------------------
# dq_init pieces
# ---------------------------------------------------------------------------------------

def raw_to_ramp_data(
    data,
    amp33,
    *,
    data_encoding_offset: float = 0.0,
    reference_read=None,
    reference_amp33=None,
):
    """Convert L1 resultants to ramp arrays.

    Parameters
    ----------
    data : ndarray, uint16 [nres, ny, nx]
        Raw resultants (DN), including the reference border.
    amp33 : ndarray, uint16 [nres, ny, 128]
        Raw amp33 reference columns.
    data_encoding_offset : float
        ``meta.instrument.data_encoding_offset`` (DN), subtracted from both.
    reference_read, reference_amp33 : ndarray uint16 2-D or None
        L1 reference read to add back first ([ny, nx] and [ny, 128]).

    Returns
    -------
    (data, amp33) : float32 [nres, ny, nx] (new array), uint16 [nres, ny, 128].
        amp33 is computed in int64 and clipped to 0..65535 so it cannot wrap.
    """
    check_array("data", data, ndim=3)
    if not np.issubdtype(data.dtype, np.integer) and data.dtype != np.float32:
        raise ParameterError(f"data must be uint16 (or float32) resultants, got {data.dtype}")
    check_array("amp33", amp33, ndim=3)
    if amp33.shape[:2] != data.shape[:2]:
        raise ParameterError(
            f"amp33 must have shape ({data.shape[0]}, {data.shape[1]}, ncols), got {amp33.shape}"
        )
    offset = float(data_encoding_offset)
    if not np.isfinite(offset):
        raise ParameterError(f"data_encoding_offset must be finite, got {data_encoding_offset!r}")
    if reference_read is None and reference_amp33 is not None:
        raise ParameterError("reference_amp33 given without reference_read")
    out = np.empty(data.shape, dtype=np.float32)
    a33 = np.asarray(amp33).astype(np.int64)
    if reference_read is not None:
        check_array("reference_read", reference_read, ndim=2, shape=data.shape[1:])
        ref = np.asarray(reference_read, dtype=np.float32)
        for i in range(data.shape[0]):
            np.add(data[i], ref, out=out[i], dtype=np.float32)
        if reference_amp33 is not None:
            check_array("reference_amp33", reference_amp33, ndim=2, shape=amp33.shape[1:])
            a33 += np.asarray(reference_amp33, dtype=np.int64)
    else:
        for i in range(data.shape[0]):
            out[i] = data[i]
    if offset != 0.0:
        out -= np.float32(offset)
        a33 -= int(round(offset))
    np.clip(a33, 0, AMP33_MAX, out=a33)
    return out, a33.astype(np.uint16)


def groupdq_from_resultantdq(shape, resultantdq=None):
    """Initial group DQ (uint8 [nres, ny, nx]): a copy of the L1 ``resultantdq`` if any, else zeros."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ParameterError(f"shape must be (nres, ny, nx), got {shape}")
    if resultantdq is None:
        return np.zeros(shape, dtype=np.uint8)
    check_array("resultantdq", resultantdq, ndim=3, shape=shape)
    if not np.issubdtype(resultantdq.dtype, np.integer):
        raise ParameterError(f"resultantdq must be an integer array, got {resultantdq.dtype}")
    return np.ascontiguousarray(resultantdq, dtype=np.uint8).copy()


def flag_guide_window(pixeldq, xstart, xstop, ystart, ystop, *, expand_gw_flagging: int = 0) -> bool:
    """Flag the guide window in ``pixeldq`` (uint32 [ny, nx], in place).

    If ``xstart`` and ``ystart`` lie in [0, nx) and [0, ny): the whole columns
    ``xstart:xstop`` get GW_AFFECTED_DATA (ORed in: the reference assigns it to
    a still-empty pixeldq, which is the same; OR keeps MASK flags whatever the
    call order), then the window
    ``[ystart:ystop, xstart:xstop]``, grown by ``expand_gw_flagging`` pixels on
    every side and clipped to the array, gets DO_NOT_USE|GW_AFFECTED_DATA ORed in.

    Returns True when the window was applied, False when it lies off the detector.
    """
    check_array("pixeldq", pixeldq, ndim=2, dtype=np.uint32)
    expand = int(expand_gw_flagging)
    if expand < 0:
        raise ParameterError(f"expand_gw_flagging must be >= 0, got {expand_gw_flagging!r}")
    try:
        x0, x1, y0, y1 = (int(v) for v in (xstart, xstop, ystart, ystop))
    except (TypeError, ValueError):
        raise ParameterError(
            f"guide window limits must be integers, got {(xstart, xstop, ystart, ystop)!r}"
        ) from None
    ny, nx = pixeldq.shape
    if not (0 <= x0 < nx and 0 <= y0 < ny):
        log.info("guide window start (%d, %d) is off the detector; no guide-window flags", x0, y0)
        return False
    x1c = max(min(x1, nx), 0)
    pixeldq[:, x0:x1c] |= np.uint32(pixel.GW_AFFECTED_DATA)
    ex0, ex1 = max(x0 - expand, 0), min(x1 + expand, nx)
    ey0, ey1 = max(y0 - expand, 0), min(y1 + expand, ny)
    pixeldq[ey0:ey1, ex0:ex1] |= np.uint32(pixel.DO_NOT_USE | pixel.GW_AFFECTED_DATA)
    return True


def apply_mask(pixeldq, mask_dq) -> bool:
    """OR the MASK reference ``dq`` into ``pixeldq`` (in place).

    Returns False (and changes nothing) when the shapes differ: the caller then
    marks the step SKIPPED.
    """
    check_array("pixeldq", pixeldq, ndim=2, dtype=np.uint32)
    check_array("mask_dq", mask_dq, ndim=2)
    if mask_dq.shape != pixeldq.shape:
        log.warning("MASK dq shape %s differs from pixeldq %s", mask_dq.shape, pixeldq.shape)
        return False
    pixeldq |= np.asarray(mask_dq).astype(np.uint32, copy=False)
    return True


def border_reference_pixels(data, pixeldq) -> dict:
    """Copies of the reference border of a ramp and of its pixel DQ.

    Parameters
    ----------
    data : float32 [nres, ny, nx]; pixeldq : uint32 [ny, nx].

    Returns
    -------
    dict with ``border_ref_pix_{left,right}`` float32 [nres, ny, 4],
    ``border_ref_pix_{top,bottom}`` float32 [nres, 4, nx] (top = first 4 rows),
    and ``dq_border_ref_pix_{left,right,top,bottom}`` uint32 with the same 2-D
    slices of pixeldq. All are new C-contiguous arrays.
    """
    check_array("data", data, ndim=3, dtype=np.float32)
    check_array("pixeldq", pixeldq, ndim=2, dtype=np.uint32, shape=data.shape[1:])
    b = REF_BORDER
    if min(data.shape[1:]) < 2 * b:
        raise ParameterError(f"data frames must be at least {2 * b} pixels on a side, got {data.shape}")
    out = {}
    slices = {
        "left": (np.s_[:, :, :b], np.s_[:, :b]),
        "right": (np.s_[:, :, -b:], np.s_[:, -b:]),
        "top": (np.s_[:, :b, :], np.s_[:b, :]),
        "bottom": (np.s_[:, -b:, :], np.s_[-b:, :]),
    }
    for side, (s3, s2) in slices.items():
        out[f"border_ref_pix_{side}"] = np.ascontiguousarray(data[s3])
        out[f"dq_border_ref_pix_{side}"] = np.ascontiguousarray(pixeldq[s2])
    return out


__all__ = [
    "REF_BORDER",
    "apply_mask",
    "border_reference_pixels",
    "check_ramp",
    "check_read_pattern",
    "flag_guide_window",
    "groupdq_from_resultantdq",
    "raw_to_ramp_data",
]
