# cython: language_level=3
"""Linearity correction kernels for Roman ramps (ALGORITHMS.md section 5.3).

``classic``: every non-saturated resultant R becomes L(R) = sum_k c_k R^k.
``read_level``: the ramp is rebuilt read by read from a straight line in
linearised counts, mapped back to raw counts with the inverse polynomial,
shifted so each resultant keeps its observed mean, optionally corrected for
integral non-linearity, linearised read by read and averaged again.

Both kernels apply the coefficient hygiene (benign coefficients where the
reference flags NO_LIN_CORR, a coefficient is NaN or the linear term is 0),
OR the reference DQ into ``pixeldq`` and clip |R| > ``clip`` with DO_NOT_USE.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport isnan
from libc.stdlib cimport malloc, free

ctypedef cnp.uint8_t u8
ctypedef cnp.uint32_t u32

cnp.import_array()

cdef enum:
    G_DNU = 1
    G_SAT = 2
    _TILE = 256  # pixels per work tile of the read-level kernel (buffers stay in cache)


cdef inline double _horner(const double *c, Py_ssize_t n, double v) noexcept nogil:
    """sum_k c[k] v^k (n coefficients); n == 0 means benign (identity)."""
    cdef Py_ssize_t k
    cdef double acc
    if n == 0:
        return v
    acc = c[n - 1]
    for k in range(n - 2, -1, -1):
        acc = acc * v + c[k]
    return acc


cdef inline int _load(const float[:, :, ::1] c, Py_ssize_t y, Py_ssize_t x,
                      u32 refdq, u32 nolin_bit, double *buf) noexcept nogil:
    """Copy the pixel's coefficients to ``buf`` and classify them.

    0: use them; 1: benign (flagged NO_LIN_CORR in the reference);
    2: benign and flag NO_LIN_CORR (NaN coefficient or zero linear term).
    """
    cdef Py_ssize_t k, n = c.shape[0]
    cdef int bad = 0
    for k in range(n):
        buf[k] = c[k, y, x]
        if isnan(buf[k]):
            bad = 1
    if bad or n < 2 or buf[1] == 0:
        return 2
    if (refdq & nolin_bit) != 0:
        return 1
    return 0


cdef inline double _interp(double v, const double[::1] xp, const double[:, ::1] fp,
                           Py_ssize_t ch) noexcept nogil:
    """np.interp(v, xp, fp[ch]) with the end values held constant."""
    cdef Py_ssize_t n = xp.shape[0], lo = 0, hi = n - 1, mid
    if v <= xp[0]:
        return fp[ch, 0]
    if v >= xp[n - 1]:
        return fp[ch, n - 1]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= v:
            lo = mid
        else:
            hi = mid
    return fp[ch, lo] + (fp[ch, hi] - fp[ch, lo]) * (v - xp[lo]) / (xp[hi] - xp[lo])


cdef inline void _clip(float[:, :, ::1] data, u8[:, :, ::1] groupdq, Py_ssize_t g,
                       Py_ssize_t y, Py_ssize_t x, double clip) noexcept nogil:
    if data[g, y, x] > clip:
        data[g, y, x] = <float>clip
        groupdq[g, y, x] = groupdq[g, y, x] | G_DNU
    elif data[g, y, x] < -clip:
        data[g, y, x] = <float>(-clip)
        groupdq[g, y, x] = groupdq[g, y, x] | G_DNU


cdef inline double _horner_row(const double *c, Py_ssize_t n, Py_ssize_t nx, Py_ssize_t x,
                               double v, int st) noexcept nogil:
    """Polynomial of pixel x from row buffers ``c[j*nx + x]``."""
    cdef Py_ssize_t j
    cdef double acc = c[(n - 1) * nx + x]
    for j in range(n - 2, -1, -1):
        acc = acc * v + c[j * nx + x]
    return acc


cdef inline void _poly_rows(const double *c, Py_ssize_t n, Py_ssize_t stride, Py_ssize_t nt,
                            const double *v, double *out) noexcept nogil:
    """out[i] = sum_j c[j*stride + i] v[i]^j for i < nt (pixel loop innermost)."""
    cdef Py_ssize_t j, i
    for i in range(nt):
        out[i] = c[(n - 1) * stride + i]
    for j in range(n - 2, -1, -1):
        for i in range(nt):
            out[i] = out[i] * v[i] + c[j * stride + i]


def classic(
    float[:, :, ::1] data,
    u8[:, :, ::1] groupdq,
    u32[:, ::1] pixeldq,
    const float[:, :, ::1] coeffs,
    const u32[:, ::1] lin_dq,
    u32 nolin_bit,
    double clip,
):
    """R <- L(R) for every non-SATURATED resultant, in place."""
    cdef Py_ssize_t nres = data.shape[0], ny = data.shape[1], nx = data.shape[2]
    cdef Py_ssize_t ncoef = coeffs.shape[0]
    cdef Py_ssize_t y, x, g
    cdef int st
    cdef double *cb
    with nogil:
        for y in prange(ny, schedule="static"):
            cb = <double *>malloc(ncoef * sizeof(double))
            for x in range(nx):
                st = _load(coeffs, y, x, lin_dq[y, x], nolin_bit, cb)
                pixeldq[y, x] = pixeldq[y, x] | lin_dq[y, x]
                if st == 2:
                    pixeldq[y, x] = pixeldq[y, x] | nolin_bit
                for g in range(nres):
                    if st == 0 and (groupdq[g, y, x] & G_SAT) == 0:
                        data[g, y, x] = <float>_horner(cb, ncoef, data[g, y, x])
                    _clip(data, groupdq, g, y, x, clip)
            free(cb)


def read_level(
    float[:, :, ::1] data,
    u8[:, :, ::1] groupdq,
    u32[:, ::1] pixeldq,
    const float[:, :, ::1] coeffs,
    const u32[:, ::1] lin_dq,
    const float[:, :, ::1] icoeffs,
    const u32[:, ::1] ilin_dq,
    const double[::1] reads,
    const Py_ssize_t[::1] starts,
    const double[::1] inl_value,
    const double[:, ::1] inl_correction,
    Py_ssize_t channel_width,
    u32 nolin_bit,
    double clip,
):
    """Read-level correction with the inverse polynomial, in place.

    ``reads[starts[i]:starts[i+1]]`` are the read numbers of resultant i.
    ``inl_value`` (length 0 = no INL) is the INL lookup grid and
    ``inl_correction[ch]`` the correction of channel ``ch = x // channel_width``.

    Needs at least 2 coefficient planes in both sets. Works in tiles of a row
    with the pixel loop innermost (so the polynomial
    evaluations vectorise); benign coefficients are substituted in row buffers.
    """
    cdef Py_ssize_t nres = data.shape[0], ny = data.shape[1], nx = data.shape[2]
    cdef Py_ssize_t ncoef = coeffs.shape[0], nicoef = icoeffs.shape[0]
    cdef Py_ssize_t y, x, g, k, j, last, nunsat, kmax = 0, nk, x0, nt, i, tix
    cdef int st, ist
    cdef double m0, rk, acc
    cdef int use_inl = inl_value.shape[0] > 0
    cdef double *buf
    cdef double *cb
    cdef double *icb
    cdef double *fb
    cdef double *sb
    cdef double *vb
    cdef double *ab
    cdef double *ob
    cdef double *rawb
    cdef double *means = <double *>malloc(nres * sizeof(double))
    if means == NULL:
        raise MemoryError()
    for g in range(nres):
        acc = 0
        for k in range(starts[g], starts[g + 1]):
            acc = acc + reads[k]
        means[g] = acc / (starts[g + 1] - starts[g])
        if starts[g + 1] - starts[g] > kmax:
            kmax = starts[g + 1] - starts[g]
    m0 = means[0]
    try:
        with nogil:
            for y in prange(ny, schedule="static"):
                buf = <double *>malloc((ncoef + nicoef + 5 + kmax) * _TILE * sizeof(double))
                cb = buf
                icb = cb + ncoef * _TILE
                fb = icb + nicoef * _TILE
                sb = fb + _TILE
                vb = sb + _TILE
                ab = vb + _TILE
                ob = ab + _TILE
                rawb = ob + _TILE
                for tix in range((nx + _TILE - 1) // _TILE):
                    x0 = tix * _TILE
                    nt = nx - x0
                    if nt > _TILE:
                        nt = _TILE
                    # coefficients (benign where unusable), DQ, F and the read slope
                    for i in range(nt):
                        x = x0 + i
                        st = _load(coeffs, y, x, lin_dq[y, x], nolin_bit, vb)
                        for j in range(ncoef):
                            cb[j * _TILE + i] = vb[j] if st == 0 else (1.0 if j == 1 else 0.0)
                        ist = _load(icoeffs, y, x, ilin_dq[y, x], nolin_bit, vb)
                        for j in range(nicoef):
                            icb[j * _TILE + i] = vb[j] if ist == 0 else (1.0 if j == 1 else 0.0)
                        pixeldq[y, x] = pixeldq[y, x] | lin_dq[y, x] | ilin_dq[y, x]
                        if st == 2 or ist == 2:
                            pixeldq[y, x] = pixeldq[y, x] | nolin_bit
                        nunsat = 0
                        for g in range(nres):
                            if (groupdq[g, y, x] & G_SAT) == 0:
                                nunsat = nunsat + 1
                        nunsat = nunsat - 1
                        if nunsat < 2:
                            nunsat = 2
                        last = nunsat - 1
                        fb[i] = data[0, y, x]
                        if (groupdq[0, y, x] & G_SAT) == 0:
                            fb[i] = _horner_row(cb, ncoef, _TILE, i, fb[i], st)
                        acc = data[last, y, x]
                        if (groupdq[last, y, x] & G_SAT) == 0:
                            acc = _horner_row(cb, ncoef, _TILE, i, acc, st)
                        sb[i] = (acc - fb[i]) / (means[last] - m0)
                    for g in range(nres):
                        nk = starts[g + 1] - starts[g]
                        for i in range(nt):
                            ab[i] = 0
                            ob[i] = 0
                        # raw reads from the straight line through the inverse polynomial
                        for k in range(nk):
                            rk = reads[starts[g] + k] - m0
                            for i in range(nt):
                                vb[i] = fb[i] + sb[i] * rk
                            _poly_rows(icb, nicoef, _TILE, nt, vb, rawb + k * _TILE)
                            for i in range(nt):
                                ab[i] = ab[i] + rawb[k * _TILE + i]
                        for i in range(nt):
                            ab[i] = data[g, y, x0 + i] - ab[i] / nk
                        # shifted reads, INL, linearised and averaged
                        for k in range(nk):
                            for i in range(nt):
                                vb[i] = rawb[k * _TILE + i] + ab[i]
                            if use_inl:
                                for i in range(nt):
                                    vb[i] = vb[i] + _interp(vb[i], inl_value, inl_correction,
                                                            (x0 + i) // channel_width)
                            _poly_rows(cb, ncoef, _TILE, nt, vb, rawb + k * _TILE)
                            for i in range(nt):
                                ob[i] = ob[i] + rawb[k * _TILE + i]
                        for i in range(nt):
                            x = x0 + i
                            if (groupdq[g, y, x] & G_SAT) == 0:
                                data[g, y, x] = <float>(ob[i] / nk)
                            _clip(data, groupdq, g, y, x, clip)
                free(buf)
    finally:
        free(means)
