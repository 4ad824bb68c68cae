# cython: language_level=3
"""Outlier-detection kernels: masked stack median, blot derivative, CR masks.

Arrays in, arrays out.  Every per-pixel loop runs without the GIL and in
parallel over rows; scratch space is allocated once per thread.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange
from libc.math cimport fabs, isnan, NAN
from libc.stdlib cimport malloc, free

ctypedef cnp.uint8_t u8

cnp.import_array()

# Below this many array elements a kernel runs on one thread: starting
# an OpenMP team costs more than the work.
cdef Py_ssize_t _SERIAL_WORK = 1 << 16


cdef inline void _insertion_sort(float *v, Py_ssize_t n) noexcept nogil:
    # Stacks are short (one plane per exposure group), so insertion sort is
    # the fastest choice and needs no extra memory.
    cdef Py_ssize_t i, j
    cdef float key
    for i in range(1, n):
        key = v[i]
        j = i - 1
        while j >= 0 and v[j] > key:
            v[j + 1] = v[j]
            j = j - 1
        v[j + 1] = key


cdef void _median_row(const float[:, :, ::1] data, const float[:, :, ::1] weight,
                      const double[::1] thresholds, bint use_weight, int nlow, int nhigh,
                      Py_ssize_t y, float *buf, float[:, ::1] o) noexcept nogil:
    cdef Py_ssize_t n = data.shape[0], nx = data.shape[2], x, k, m, keep, lo
    cdef float v
    for x in range(nx):
        m = 0
        for k in range(n):
            v = data[k, y, x]
            if isnan(v):
                continue
            if use_weight and not (weight[k, y, x] >= thresholds[k]):
                continue
            buf[m] = v
            m = m + 1
        keep = m - nlow - nhigh
        if keep <= 0:
            o[y, x] = NAN
            continue
        _insertion_sort(buf, m)
        lo = nlow + (keep - 1) / 2
        if keep % 2 == 1:
            o[y, x] = buf[lo]
        else:
            o[y, x] = 0.5 * (buf[lo] + buf[lo + 1])


def median_stack(const float[:, :, ::1] data, const float[:, :, ::1] weight,
                 const double[::1] thresholds, int nlow=0, int nhigh=0):
    """Per-pixel median over the first axis of ``data`` -> float32 (ny, nx).

    A value takes part when it is not NaN and, if ``weight`` is given, when
    ``weight[k, y, x] >= thresholds[k]``.  Of the ``m`` valid values of a pixel
    the ``nlow`` lowest and ``nhigh`` highest are dropped; the median of the
    rest (mean of the two middle values for an even count) is returned, or
    NaN when nothing is left.  ``weight`` may be None (then ``thresholds`` is
    ignored and may be None).
    """
    cdef Py_ssize_t n = data.shape[0], ny = data.shape[1], nx = data.shape[2]
    cdef bint use_weight = weight is not None
    if use_weight:
        if weight.shape[0] != n or weight.shape[1] != ny or weight.shape[2] != nx:
            raise ValueError("weight must have the shape of data")
        if thresholds is None or thresholds.shape[0] != n:
            raise ValueError("thresholds must have one value per plane")
    if nlow < 0 or nhigh < 0:
        raise ValueError("nlow and nhigh must be >= 0")
    out = np.empty((ny, nx), dtype=np.float32)
    cdef float[:, ::1] o = out
    cdef Py_ssize_t y
    cdef float *buf = NULL
    if n * ny * nx < _SERIAL_WORK:
        buf = <float *> malloc((n + 1) * sizeof(float))
        if buf == NULL:
            raise MemoryError()
        with nogil:
            for y in range(ny):
                _median_row(data, weight, thresholds, use_weight, nlow, nhigh, y, buf, o)
        free(buf)
        return out
    # One scratch buffer per thread; a failed allocation is reported through
    # a shared flag (a plain variable would be thread-private here).
    failed_arr = np.zeros(1, dtype=np.uint8)
    cdef u8[::1] failed = failed_arr
    with nogil, parallel():
        buf = <float *> malloc((n + 1) * sizeof(float))
        # Every thread must reach the worksharing loop, even without a buffer.
        for y in prange(ny, schedule="static"):
            if buf != NULL:
                _median_row(data, weight, thresholds, use_weight, nlow, nhigh, y, buf, o)
            else:
                failed[0] = 1
        free(buf)
    if failed[0]:
        raise MemoryError("cannot allocate the median scratch buffer")
    return out


cdef void _deriv_row(const float[:, ::1] img, Py_ssize_t y, float[:, ::1] o) noexcept nogil:
    cdef Py_ssize_t ny = img.shape[0], nx = img.shape[1], x
    cdef float c, d, best
    for x in range(nx):
        c = img[y, x]
        if isnan(c):
            o[y, x] = NAN
            continue
        # NaN differences fail "d > best" and are skipped.
        best = 0.0
        if x > 0:
            d = fabs(c - img[y, x - 1])
            if d > best:
                best = d
        if x + 1 < nx:
            d = fabs(c - img[y, x + 1])
            if d > best:
                best = d
        if y > 0:
            d = fabs(c - img[y - 1, x])
            if d > best:
                best = d
        if y + 1 < ny:
            d = fabs(c - img[y + 1, x])
            if d > best:
                best = d
        o[y, x] = best


def abs_derivative(const float[:, ::1] img):
    """Largest |img(p) - img(q)| over the 4-neighbours q of each pixel p.

    Neighbours outside the image or giving a NaN difference are skipped; a
    pixel with no usable neighbour gets 0, a NaN pixel gets NaN.  float32.
    """
    cdef Py_ssize_t ny = img.shape[0], nx = img.shape[1], y
    out = np.empty((ny, nx), dtype=np.float32)
    cdef float[:, ::1] o = out
    if ny * nx < _SERIAL_WORK:
        with nogil:
            for y in range(ny):
                _deriv_row(img, y, o)
    else:
        for y in prange(ny, nogil=True, schedule="static"):
            _deriv_row(img, y, o)
    return out


cdef inline u8 _exceeds(float s, float b, float e, float dv, double backg,
                        double snr, double scale) noexcept nogil:
    # NaN anywhere (sci, blot or derivative) makes the comparison false.
    cdef double delta = fabs(<double> s - <double> b - backg)
    cdef double ev = 0.0 if isnan(e) else <double> e
    return 1 if delta > scale * <double> dv + snr * ev else 0


cdef void _m1_row(const float[:, ::1] sci, const float[:, ::1] err,
                  const float[:, ::1] blot, const float[:, ::1] deriv, double backg,
                  double snr, double scale, Py_ssize_t y, u8[:, ::1] m1) noexcept nogil:
    cdef Py_ssize_t x
    for x in range(sci.shape[1]):
        m1[y, x] = _exceeds(sci[y, x], blot[y, x], err[y, x], deriv[y, x], backg, snr, scale)


cdef void _grow_row(const u8[:, ::1] m1, int grow, Py_ssize_t y, u8[:, ::1] rows) noexcept nogil:
    # Dilation along a row; the column pass follows in _final_row.
    cdef Py_ssize_t nx = m1.shape[1], x, j, j0, j1
    cdef u8 hit
    for x in range(nx):
        j0 = x - grow if x >= grow else 0
        j1 = x + grow if x + grow < nx else nx - 1
        hit = 0
        for j in range(j0, j1 + 1):
            if m1[y, j]:
                hit = 1
                break
        rows[y, x] = hit


cdef void _final_row(const float[:, ::1] sci, const float[:, ::1] err,
                     const float[:, ::1] blot, const float[:, ::1] deriv, double backg,
                     double snr, double scale, int grow, const u8[:, ::1] rows,
                     Py_ssize_t y, u8[:, ::1] o) noexcept nogil:
    cdef Py_ssize_t ny = sci.shape[0], nx = sci.shape[1], x, j, j0, j1
    cdef u8 hit
    j0 = y - grow if y >= grow else 0
    j1 = y + grow if y + grow < ny else ny - 1
    for x in range(nx):
        hit = 0
        for j in range(j0, j1 + 1):
            if rows[j, x]:
                hit = 1
                break
        if hit:
            o[y, x] = _exceeds(sci[y, x], blot[y, x], err[y, x], deriv[y, x],
                               backg, snr, scale)
        else:
            o[y, x] = 0


def cr_mask(const float[:, ::1] sci, const float[:, ::1] err,
            const float[:, ::1] blot, const float[:, ::1] deriv,
            double backg, double snr1, double snr2, double scale1,
            double scale2, int grow):
    """uint8 outlier mask (1 = outlier) of one image against its blotted median.

    ``m1 = |sci - blot - backg| > scale1*deriv + snr1*err`` is dilated by a
    (2*grow+1)^2 box (clipped at the image edges), then AND'ed with
    ``m2 = |sci - blot - backg| > scale2*deriv + snr2*err``.  A NaN ``err``
    counts as 0; NaN in ``sci``, ``blot`` or ``deriv`` never flags.
    """
    cdef Py_ssize_t ny = sci.shape[0], nx = sci.shape[1], y
    if err.shape[0] != ny or err.shape[1] != nx or blot.shape[0] != ny \
            or blot.shape[1] != nx or deriv.shape[0] != ny or deriv.shape[1] != nx:
        raise ValueError("sci, err, blot and deriv must have the same shape")
    if grow < 0:
        raise ValueError("grow must be >= 0")
    m1_arr = np.empty((ny, nx), dtype=np.uint8)
    rows_arr = np.empty((ny, nx), dtype=np.uint8)
    out = np.empty((ny, nx), dtype=np.uint8)
    cdef u8[:, ::1] m1 = m1_arr
    cdef u8[:, ::1] rows = rows_arr
    cdef u8[:, ::1] o = out
    if ny * nx < _SERIAL_WORK:
        with nogil:
            for y in range(ny):
                _m1_row(sci, err, blot, deriv, backg, snr1, scale1, y, m1)
            for y in range(ny):
                _grow_row(m1, grow, y, rows)
            for y in range(ny):
                _final_row(sci, err, blot, deriv, backg, snr2, scale2, grow, rows, y, o)
    else:
        for y in prange(ny, nogil=True, schedule="static"):
            _m1_row(sci, err, blot, deriv, backg, snr1, scale1, y, m1)
        for y in prange(ny, nogil=True, schedule="static"):
            _grow_row(m1, grow, y, rows)
        for y in prange(ny, nogil=True, schedule="static"):
            _final_row(sci, err, blot, deriv, backg, snr2, scale2, grow, rows, y, o)
    return out


cdef void _diff_row(const float[:, ::1] sci, const float[:, ::1] err,
                    const float[:, ::1] median, double backg, double snr,
                    Py_ssize_t y, u8[:, ::1] o) noexcept nogil:
    cdef Py_ssize_t x
    for x in range(sci.shape[1]):
        o[y, x] = _exceeds(sci[y, x], median[y, x], err[y, x], 0.0, backg, snr, 0.0)


def abs_diff_mask(const float[:, ::1] sci, const float[:, ::1] err,
                  const float[:, ::1] median, double backg, double snr):
    """uint8 mask of ``|sci - median - backg| > snr * err`` (NaN err -> 0)."""
    cdef Py_ssize_t ny = sci.shape[0], nx = sci.shape[1], y
    if err.shape[0] != ny or err.shape[1] != nx or median.shape[0] != ny \
            or median.shape[1] != nx:
        raise ValueError("sci, err and median must have the same shape")
    out = np.empty((ny, nx), dtype=np.uint8)
    cdef u8[:, ::1] o = out
    if ny * nx < _SERIAL_WORK:
        with nogil:
            for y in range(ny):
                _diff_row(sci, err, median, backg, snr, y, o)
    else:
        for y in prange(ny, nogil=True, schedule="static"):
            _diff_row(sci, err, median, backg, snr, y, o)
    return out
