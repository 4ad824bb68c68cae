# cython: language_level=3
"""Data-quality kernels: reductions and masks over DQ arrays.

Arrays in, arrays out; no Python objects in the inner loops.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange

ctypedef cnp.uint8_t u8
ctypedef cnp.uint32_t u32

cnp.import_array()


def or_over_resultants(const u8[:, :, ::1] groupdq):
    """Bitwise OR of a group-DQ cube over its first axis -> uint32 image."""
    cdef Py_ssize_t nres = groupdq.shape[0], ny = groupdq.shape[1], nx = groupdq.shape[2]
    out = np.zeros((ny, nx), dtype=np.uint32)
    cdef u32[:, ::1] o = out
    cdef Py_ssize_t r, y, x
    for y in prange(ny, nogil=True, schedule="static"):
        for r in range(nres):
            for x in range(nx):
                o[y, x] = o[y, x] | groupdq[r, y, x]
    return out


def good_pixel_mask(const u32[:, ::1] dq, u32 bad_bits):
    """uint8 mask: 1 where ``dq & bad_bits == 0`` (a good pixel), else 0."""
    cdef Py_ssize_t ny = dq.shape[0], nx = dq.shape[1], y, x
    out = np.empty((ny, nx), dtype=np.uint8)
    cdef u8[:, ::1] o = out
    for y in prange(ny, nogil=True, schedule="static"):
        for x in range(nx):
            o[y, x] = 1 if (dq[y, x] & bad_bits) == 0 else 0
    return out
