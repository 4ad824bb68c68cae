# cython: language_level=3
"""Outlier-detection kernels: masked stack median, blot derivative, CR masks.

Arrays in, arrays out.  Every per-pixel loop runs without the GIL and in
parallel over rows; scratch space is allocated once per thread.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport fabs, isfinite, isnan, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

ctypedef cnp.uint8_t u8
ctypedef cnp.uint32_t u32
ctypedef cnp.int64_t i64

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


cdef inline void _cswap(float *v, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    # compare-exchange without branches (minss / maxss); values are never NaN here
    cdef float a = v[i], b = v[j]
    v[i] = b if b < a else a
    v[j] = a if b < a else b


cdef inline void _sort_upto4(float *v, Py_ssize_t n) noexcept nogil:
    # Sorting networks for the common short stacks (one value per exposure group):
    # the same order as the insertion sort, without its unpredictable branches.
    if n == 2:
        _cswap(v, 0, 1)
    elif n == 3:
        _cswap(v, 0, 1)
        _cswap(v, 1, 2)
        _cswap(v, 0, 1)
    elif n == 4:
        _cswap(v, 0, 1)
        _cswap(v, 2, 3)
        _cswap(v, 0, 2)
        _cswap(v, 1, 3)
        _cswap(v, 1, 2)


cdef void _median_row(const float[:, :, ::1] data, const float[:, :, ::1] weight,
                      const double[::1] thresholds, bint use_weight, int nlow, int nhigh,
                      Py_ssize_t y, float *buf, float[:, ::1] o) noexcept nogil:
    # Raw row pointers: stores through a memoryview would force the compiler to
    # reload the array descriptors after every store (-fno-strict-aliasing).
    cdef Py_ssize_t n = data.shape[0], ny = data.shape[1], nx = data.shape[2]
    cdef Py_ssize_t x, k, m, keep, lo, plane = ny * nx
    cdef const float *d = &data[0, y, 0]
    cdef const float *w = &weight[0, y, 0] if use_weight else NULL
    cdef const double *t = &thresholds[0] if use_weight else NULL
    cdef float *out = &o[y, 0]
    cdef float v
    for x in range(nx):
        m = 0
        for k in range(n):
            v = d[k * plane + x]
            if isnan(v):
                continue
            if use_weight and not (w[k * plane + x] >= t[k]):
                continue
            buf[m] = v
            m = m + 1
        keep = m - nlow - nhigh
        if keep <= 0:
            out[x] = NAN
            continue
        if m <= 4:
            _sort_upto4(buf, m)
        else:
            _insertion_sort(buf, m)
        lo = nlow + (keep - 1) / 2
        if keep % 2 == 1:
            out[x] = buf[lo]
        else:
            out[x] = 0.5 * (buf[lo] + buf[lo + 1])


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
    cdef const float *row = &img[y, 0]
    cdef const float *up = &img[y - 1, 0] if y > 0 else NULL
    cdef const float *down = &img[y + 1, 0] if y + 1 < ny else NULL
    cdef float *out = &o[y, 0]
    cdef float c, d, best
    for x in range(nx):
        c = row[x]
        if isnan(c):
            out[x] = NAN
            continue
        # NaN differences fail "d > best" and are skipped.
        best = 0.0
        if x > 0:
            d = fabs(c - row[x - 1])
            if d > best:
                best = d
        if x + 1 < nx:
            d = fabs(c - row[x + 1])
            if d > best:
                best = d
        if up != NULL:
            d = fabs(c - up[x])
            if d > best:
                best = d
        if down != NULL:
            d = fabs(c - down[x])
            if d > best:
                best = d
        out[x] = best


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
    cdef Py_ssize_t x, nx = sci.shape[1]
    cdef const float *s = &sci[y, 0]
    cdef const float *e = &err[y, 0]
    cdef const float *b = &blot[y, 0]
    cdef const float *d = &deriv[y, 0]
    cdef u8 *m = &m1[y, 0]
    for x in range(nx):
        m[x] = _exceeds(s[x], b[x], e[x], d[x], backg, snr, scale)


cdef void _grow_row(const u8[:, ::1] m1, int grow, Py_ssize_t y, u8[:, ::1] rows) noexcept nogil:
    # Dilation along a row; the column pass follows in _final_row.
    cdef Py_ssize_t nx = m1.shape[1], x, j, j0, j1
    cdef const u8 *m = &m1[y, 0]
    cdef u8 *r = &rows[y, 0]
    cdef u8 hit
    for x in range(nx):
        j0 = x - grow if x >= grow else 0
        j1 = x + grow if x + grow < nx else nx - 1
        hit = 0
        for j in range(j0, j1 + 1):
            hit = hit | m[j]
        r[x] = 1 if hit else 0


cdef void _final_row(const float[:, ::1] sci, const float[:, ::1] err,
                     const float[:, ::1] blot, const float[:, ::1] deriv, double backg,
                     double snr, double scale, int grow, const u8[:, ::1] rows,
                     Py_ssize_t y, u8[:, ::1] o) noexcept nogil:
    cdef Py_ssize_t ny = sci.shape[0], nx = sci.shape[1], x, j, j0, j1
    cdef const float *s = &sci[y, 0]
    cdef const float *e = &err[y, 0]
    cdef const float *b = &blot[y, 0]
    cdef const float *d = &deriv[y, 0]
    cdef const u8 *r
    cdef u8 *out = &o[y, 0]
    cdef u8 hit
    j0 = y - grow if y >= grow else 0
    j1 = y + grow if y + grow < ny else ny - 1
    r = &rows[j0, 0]
    for x in range(nx):
        hit = 0
        for j in range(j1 - j0 + 1):
            hit = hit | r[j * nx + x]
        if hit:
            out[x] = _exceeds(s[x], b[x], e[x], d[x], backg, snr, scale)
        else:
            out[x] = 0


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
    cdef Py_ssize_t x, nx = sci.shape[1]
    cdef const float *s = &sci[y, 0]
    cdef const float *e = &err[y, 0]
    cdef const float *m = &median[y, 0]
    cdef u8 *out = &o[y, 0]
    for x in range(nx):
        out[x] = _exceeds(s[x], m[x], e[x], 0.0, backg, snr, 0.0)


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


# --------------------------------------------------------------------------- key histograms
# Exact order statistics and moments of the finite float32 values of a 2-D array
# (optionally without zeros) inside any closed value window, from histograms of
# order-preserving 32-bit keys: one pass gives, per upper-16-bit key bin, the count
# and the integer sums of the lower 16 key bits and of their squares (inside one bin
# the value is linear in those bits: x = x0 + k * ulp); a light pass gives the full
# lower-16-bit histograms (exact value counts) of a few bins - those a window edge or
# a wanted rank falls in.  All sums are integers: the results are exact and do not
# depend on the number of threads.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int outlier_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int outlier_max_threads(void) { return 1; }
    #endif
    """
    int outlier_max_threads() nogil

cdef enum:
    _NBIN = 65536


cdef inline u32 _key(float x) noexcept nogil:
    # Order-preserving map of a (non-NaN) float32 to an unsigned integer; -0.0 and
    # +0.0 share the key of +0.0 (they compare equal).
    cdef u32 u
    memcpy(&u, &x, 4)
    if u == <u32> 0x80000000:
        u = 0
    if u >> 31:
        return ~u
    return u | <u32> 0x80000000


cdef inline bint _selected(float x, bint skip_zero) noexcept nogil:
    return isfinite(x) and not (skip_zero and x == 0.0)


cdef int _threads_for(Py_ssize_t work) noexcept nogil:
    return 1 if work < _SERIAL_WORK else outlier_max_threads()


def value_key(float x):
    """The order-preserving key of a float32 value (see :func:`key_histograms`)."""
    return int(_key(x))


def key_to_value(u32 key):
    """The float32 value (as a Python float) of an order-preserving key."""
    cdef u32 u = (key ^ <u32> 0x80000000) if (key >> 31) else ~key
    cdef float x
    memcpy(&x, &u, 4)
    return float(x)


cdef void _bin_row(const float *v, Py_ssize_t nx, bint skip_zero, i64 *h, i64 *s1,
                   i64 *s2) noexcept nogil:
    # Runs of one key (a constant weight map) are counted in registers and added
    # once: no chain of increments of one memory word.
    cdef Py_ssize_t x, run = 0
    cdef u32 k, prev = 0
    cdef i64 low
    for x in range(nx):
        if _selected(v[x], skip_zero):
            k = _key(v[x])
            if run and k == prev:
                run = run + 1
            else:
                if run:
                    low = prev & 0xFFFF
                    h[prev >> 16] += run
                    s1[prev >> 16] += run * low
                    s2[prev >> 16] += run * low * low
                prev = k
                run = 1
    if run:
        low = prev & 0xFFFF
        h[prev >> 16] += run
        s1[prev >> 16] += run * low
        s2[prev >> 16] += run * low * low


def key_histograms(const float[:, ::1] v, bint skip_zero):
    """Per upper-16-bit key bin: count, sum of the lower 16 bits, sum of their squares.

    Over the finite values of ``v`` (without zeros if ``skip_zero``).  Returns three
    int64 arrays of 65536 bins.  The key of a value is order-preserving
    (:func:`value_key`, :func:`key_to_value`); inside bin ``b`` the value of key
    ``b << 16 | k`` is ``x0 + k * ulp`` with ``x0``, ``ulp`` constant.
    """
    cdef Py_ssize_t ny = v.shape[0], nx = v.shape[1], y
    if ny * nx >= (<Py_ssize_t> 1) << 31:
        raise ValueError("too many values for the 64-bit sums")
    cdef int nth = _threads_for(ny * nx)
    parts = np.zeros((nth, 3, _NBIN), dtype=np.int64)
    cdef i64[:, :, ::1] h = parts
    cdef int tid
    for y in prange(ny, nogil=True, schedule="static", num_threads=nth):
        tid = threadid()
        _bin_row(&v[y, 0], nx, skip_zero, &h[tid, 0, 0], &h[tid, 1, 0], &h[tid, 2, 0])
    tot = parts.sum(axis=0)
    return tot[0], tot[1], tot[2]


cdef void _low_row(const float *v, Py_ssize_t nx, bint skip_zero, const int *slot,
                   i64 *h) noexcept nogil:
    cdef Py_ssize_t x, run = 0
    cdef u32 k, prev = 0
    cdef int sl
    for x in range(nx):
        if _selected(v[x], skip_zero):
            k = _key(v[x])
            sl = slot[k >> 16]
            if sl < 0:
                continue
            if run and k == prev:
                run = run + 1
            else:
                if run:
                    h[<Py_ssize_t> slot[prev >> 16] * _NBIN + (prev & 0xFFFF)] += run
                prev = k
                run = 1
    if run:
        h[<Py_ssize_t> slot[prev >> 16] * _NBIN + (prev & 0xFFFF)] += run


def low_histograms(const float[:, ::1] v, bint skip_zero, const int[::1] slot_of_bin):
    """Lower-16-bit key histograms (exact value counts) of selected upper bins.

    ``slot_of_bin`` (65536 int32) maps an upper bin to its row of the result, or -1.
    Over the values :func:`key_histograms` counts; returns int64
    ``(max(slot_of_bin) + 1, 65536)``.
    """
    if slot_of_bin.shape[0] != _NBIN:
        raise ValueError("slot_of_bin must have 65536 entries")
    cdef Py_ssize_t ny = v.shape[0], nx = v.shape[1], y, i
    cdef int nslot = 0
    for i in range(_NBIN):
        if slot_of_bin[i] >= nslot:
            nslot = slot_of_bin[i] + 1
    cdef int nth = _threads_for(ny * nx)
    parts = np.zeros((nth, max(nslot, 1), _NBIN), dtype=np.int64)
    cdef i64[:, :, ::1] h = parts
    cdef int tid
    if nslot > 0:
        for y in prange(ny, nogil=True, schedule="static", num_threads=nth):
            tid = threadid()
            _low_row(&v[y, 0], nx, skip_zero, &slot_of_bin[0], &h[tid, 0, 0])
    return parts.sum(axis=0)[:nslot]


cdef void _threshold_row(const float *d, const float *w, double threshold, float *o,
                         Py_ssize_t nx) noexcept nogil:
    cdef Py_ssize_t x
    for x in range(nx):
        o[x] = d[x] if <double> w[x] >= threshold else NAN


def threshold_copy(const float[:, ::1] data, const float[:, ::1] weight, double threshold,
                   float[:, ::1] out):
    """``out = data`` where ``weight >= threshold`` (compared in double), else NaN."""
    cdef Py_ssize_t ny = data.shape[0], nx = data.shape[1], y
    if weight.shape[0] != ny or weight.shape[1] != nx or out.shape[0] != ny \
            or out.shape[1] != nx:
        raise ValueError("data, weight and out must have the same shape")
    cdef int nth = _threads_for(ny * nx)
    for y in prange(ny, nogil=True, schedule="static", num_threads=nth):
        _threshold_row(&data[y, 0], &weight[y, 0], threshold, &out[y, 0], nx)
