"""Flat-field correction of a rate image (ALGORITHMS.md §5.5).

``data /= f``, ``err /= f``, ``dumo /= f``; ``var_poisson`` and ``var_rnoise`` are divided
by ``f²``; NaN or zero flat pixels get NO_FLAT_FIELD and are treated as ``f = 1``.
With ``include_var_flat`` the flat uncertainty adds ``var_flat = S² σ_f² / f²`` (S the
flat-fielded signal) to ``err``; ``var_flat`` is always returned so products carry it.
"""

from __future__ import annotations

import numpy as np

from ..dq import pixel
from .dq_init import check_array

__all__ = ["apply_flat"]


def apply_flat(data, dq, err, var_poisson, var_rnoise=None, dumo=None, *, flat, flat_dq=None,
               flat_err=None, include_var_flat: bool = False) -> np.ndarray:
    """Divide a rate image by a flat in place and return ``var_flat`` (float32).

    Parameters
    ----------
    data, err, var_poisson, var_rnoise, dumo : float32 [ny, nx]
        Image arrays, modified in place (``var_rnoise``/``dumo`` may be None).
    dq : uint32 [ny, nx]
        Image DQ, ORed in place with ``flat_dq`` and NO_FLAT_FIELD.
    flat, flat_dq, flat_err : [ny, nx]
        FLAT reference ``data``, ``dq`` and ``err`` (science area).
    include_var_flat : bool
        Add ``var_flat`` to ``err`` (the variance is returned either way).
    """
    check_array("data", data, ndim=2, dtype=np.float32)
    shape = data.shape
    check_array("dq", dq, ndim=2, dtype=np.uint32, shape=shape)
    check_array("flat", flat, ndim=2, shape=shape)
    f = np.array(flat, dtype=np.float32)
    bad = ~np.isfinite(f) | (f == 0)
    f[bad] = 1.0
    dq[bad] |= np.uint32(pixel.NO_FLAT_FIELD)
    if flat_dq is not None:
        check_array("flat_dq", flat_dq, ndim=2, shape=shape)
        dq |= np.asarray(flat_dq, dtype=np.uint32)
    data /= f
    err /= f
    if dumo is not None:
        dumo /= f
    f2 = f * f
    var_poisson /= f2
    if var_rnoise is not None:
        var_rnoise /= f2
    if flat_err is None:
        var_flat = np.zeros(shape, dtype=np.float32)
    else:
        check_array("flat_err", flat_err, ndim=2, shape=shape)
        sigma = np.nan_to_num(np.asarray(flat_err, dtype=np.float32), nan=0.0)
        sigma[bad] = 0.0
        var_flat = (data * data) * (sigma * sigma) / f2
        var_flat = var_flat.astype(np.float32, copy=False)
    if include_var_flat:
        np.sqrt(err * err + var_flat, out=err)
    return var_flat
