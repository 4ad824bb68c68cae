# cython: language_level=3
"""Masked, normalised convolution with a separable kernel (source-catalog detection image).

Arrays in, arrays out; no Python objects in the inner loops.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdlib cimport calloc, free
from libc.math cimport isfinite

ctypedef cnp.uint8_t u8

cnp.import_array()


def masked_separable_correlate(const float[:, ::1] data, const u8[:, ::1] mask,
                               const double[::1] ky, const double[::1] kx,
                               Py_ssize_t block=64, int num_threads=1):
    """``corr(data·w, K) / corr(w, K)`` with ``K = outer(ky, kx)``, as float32.

    ``w`` is 1 on pixels where ``mask == 0`` and 0 on masked pixels and outside the
    image; ``ky``/``kx`` have odd lengths and are applied as correlation weights
    (``out[y, x] = sum_pq ky[p] kx[q] in[y + p - hy, x + q - hx]``).  Sums are in float64:
    a pass along x into a per-block buffer of ``block + 2 hy`` rows, then a pass along y.
    The result is 0 at masked pixels and where the ratio is not finite (no good pixel
    under the kernel, or non-finite data nearby).  Blocks of rows run on ``num_threads``
    threads; the result does not depend on ``block`` or ``num_threads``.
    """
    cdef Py_ssize_t ny = data.shape[0], nx = data.shape[1]
    cdef Py_ssize_t ly = ky.shape[0], lx = kx.shape[0]
    if mask.shape[0] != ny or mask.shape[1] != nx:
        raise ValueError(f"mask shape {(mask.shape[0], mask.shape[1])} != data shape {(ny, nx)}")
    if ly % 2 != 1 or lx % 2 != 1:
        raise ValueError(f"kernel lengths must be odd, got ky {ly} and kx {lx}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    cdef Py_ssize_t hy = ly // 2, hx = lx // 2
    cdef Py_ssize_t nblocks = (ny + block - 1) // block
    cdef Py_ssize_t nrow = block + 2 * hy, npad = nx + 2 * hx
    out = np.empty((ny, nx), dtype=np.float32)
    cdef float[:, ::1] o = out
    cdef Py_ssize_t b, r0, r1, i, y, x, j, p, q
    cdef double *numx
    cdef double *denx
    cdef double *rowv
    cdef double *rowg
    cdef double s, sd, v
    cdef int failed = 0
    for b in prange(nblocks, nogil=True, schedule="dynamic", num_threads=num_threads):
        r0 = b * block
        r1 = r0 + block
        if r1 > ny:
            r1 = ny
        # x-pass of rows r0 - hy .. r1 + hy - 1 (zero rows outside the image)
        numx = <double *> calloc(nrow * nx, sizeof(double))
        denx = <double *> calloc(nrow * nx, sizeof(double))
        rowv = <double *> calloc(npad, sizeof(double))
        rowg = <double *> calloc(npad, sizeof(double))
        if numx == NULL or denx == NULL or rowv == NULL or rowg == NULL:
            failed = 1
        else:
            for i in range(r1 - r0 + 2 * hy):
                y = r0 - hy + i
                if y < 0 or y >= ny:
                    continue
                for x in range(nx):
                    if mask[y, x]:
                        rowv[hx + x] = 0.0
                        rowg[hx + x] = 0.0
                    else:
                        rowv[hx + x] = data[y, x]
                        rowg[hx + x] = 1.0
                for x in range(nx):
                    s = 0.0
                    sd = 0.0
                    for q in range(lx):
                        s = s + kx[q] * rowv[x + q]
                        sd = sd + kx[q] * rowg[x + q]
                    numx[i * nx + x] = s
                    denx[i * nx + x] = sd
            # y-pass and normalisation
            for j in range(r1 - r0):
                y = r0 + j
                for x in range(nx):
                    s = 0.0
                    sd = 0.0
                    for p in range(ly):
                        s = s + ky[p] * numx[(j + p) * nx + x]
                        sd = sd + ky[p] * denx[(j + p) * nx + x]
                    v = 0.0
                    if not mask[y, x] and sd != 0.0:
                        v = s / sd
                        if not isfinite(v):
                            v = 0.0
                    o[y, x] = <float> v
        free(numx)
        free(denx)
        free(rowv)
        free(rowg)
    if failed:
        raise MemoryError("masked_separable_correlate: cannot allocate the row buffers")
    return out
