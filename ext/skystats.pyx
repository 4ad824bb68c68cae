# cython: language_level=3
"""Sky-statistic kernels over flat float32 pixel sets.

Every kernel takes the pixel values as a 1-D float32 array, an optional
uint8 mask of the same length (an empty array means "no mask"; a pixel is
used where the mask is non-zero) and a closed value window ``[lo, hi]``.
A pixel is *selected* when it is unmasked and ``lo <= x <= hi``; with
finite ``lo`` and ``hi`` this also drops NaN and ±inf.

* :func:`clip_moments` - count, shifted sum and sum of squares, min and
  max of the selected values in one pass;
* :func:`histogram` - counts of ``floor((x - vmin) / dz)`` over the
  selected values;
* :func:`select` - the selected values, in input order.

Sums are accumulated per fixed-size chunk (eight interleaved lanes, each
summed in input order) and the chunk results are combined in chunk order
with compensated (Neumaier) summation, so results do not depend on the
number of threads.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.float cimport DBL_EPSILON
from libc.math cimport fabs, floor, isnan

ctypedef cnp.uint8_t u8
ctypedef cnp.int64_t i64

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int skystats_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int skystats_max_threads(void) { return 1; }
    #endif
    """
    int skystats_max_threads() nogil

# Chunk length (a multiple of the lane count) and the size below which a
# kernel stays on one thread.
cdef enum:
    _CHUNK = 2048
    _LANES = 8
    _HCOPIES = 4
cdef Py_ssize_t _SERIAL_WORK = 1 << 17
# Largest per-thread histogram copy (bins x threads) worth allocating.
cdef Py_ssize_t _MAX_HIST_COPY = 1 << 22


cdef inline bint _sel(float x, const u8 *m, Py_ssize_t i, bint use_mask,
                      double lo, double hi) noexcept nogil:
    return x >= lo and x <= hi and (not use_mask or m[i] != 0)


cdef extern from *:
    """
    /* Moments of the selected values of v[0:n) (see clip_moments):
       out = {count, sum(x - shift), sum((x - shift)^2), min, max}.
       Eight lanes, each summed in input order; the selection is applied with
       conditional moves so that the compiler vectorises the lanes. */
    #define SKYSTATS_LANES 8
    #define SKYSTATS_BODY(SELM, MINMAX)                                     \
        for (; b + SKYSTATS_LANES <= n; b += SKYSTATS_LANES) {              \
            for (int l = 0; l < SKYSTATS_LANES; l++) {                      \
                double x = (double)v[b + l];                                \
                int w = (x >= lo) & (x <= hi) SELM;                         \
                double d = (w ? x : shift) - shift;                         \
                s1[l] += d;                                                 \
                s2[l] += d * d;                                             \
                c[l] += w ? 1.0 : 0.0;                                      \
                if (MINMAX) {                                               \
                    double xl = w ? x : hi, xh = w ? x : lo;                \
                    mn[l] = xl < mn[l] ? xl : mn[l];                        \
                    mx[l] = xh > mx[l] ? xh : mx[l];                        \
                }                                                           \
            }                                                               \
        }
    static void skystats_chunk_moments(const float *v, const unsigned char *m,
                                       Py_ssize_t n, double lo, double hi,
                                       double shift, int minmax, double *out)
    {
        double s1[SKYSTATS_LANES], s2[SKYSTATS_LANES], c[SKYSTATS_LANES];
        double mn[SKYSTATS_LANES], mx[SKYSTATS_LANES];
        Py_ssize_t b = 0;
        for (int l = 0; l < SKYSTATS_LANES; l++) {
            s1[l] = s2[l] = c[l] = 0.0;
            mn[l] = hi;
            mx[l] = lo;
        }
        if (m && minmax)  { SKYSTATS_BODY(& (m[b + l] != 0), 1) }
        else if (m)       { SKYSTATS_BODY(& (m[b + l] != 0), 0) }
        else if (minmax)  { SKYSTATS_BODY(, 1) }
        else              { SKYSTATS_BODY(, 0) }
        for (; b < n; b++) {  /* tail, lane 0 */
            double x = (double)v[b];
            if (x >= lo && x <= hi && (!m || m[b])) {
                double d = x - shift;
                s1[0] += d;
                s2[0] += d * d;
                c[0] += 1.0;
                if (x < mn[0]) mn[0] = x;
                if (x > mx[0]) mx[0] = x;
            }
        }
        out[0] = out[1] = out[2] = 0.0;
        out[3] = hi;
        out[4] = lo;
        for (int l = 0; l < SKYSTATS_LANES; l++) {
            out[0] += c[l];
            out[1] += s1[l];
            out[2] += s2[l];
            if (mn[l] < out[3]) out[3] = mn[l];
            if (mx[l] > out[4]) out[4] = mx[l];
        }
    }
    """
    void skystats_chunk_moments(const float *v, const u8 *m, Py_ssize_t n, double lo,
                                double hi, double shift, int minmax, double *out) noexcept nogil


cdef inline void _neumaier(double *acc, double *comp, double x) noexcept nogil:
    cdef double t = acc[0] + x
    if fabs(acc[0]) >= fabs(x):
        comp[0] += (acc[0] - t) + x
    else:
        comp[0] += (x - t) + acc[0]
    acc[0] = t


cdef int _nthreads(Py_ssize_t n) noexcept nogil:
    return 1 if n < _SERIAL_WORK else skystats_max_threads()


def _check(const float[::1] values, const u8[::1] mask):
    if mask.shape[0] != 0 and mask.shape[0] != values.shape[0]:
        raise ValueError(f"mask has {mask.shape[0]} elements, values {values.shape[0]}")
    return mask.shape[0] != 0


def clip_moments(const float[::1] values, const u8[::1] mask, double lo, double hi,
                 double shift, bint minmax=True):
    """Moments of the selected values in one pass.

    ``shift`` is subtracted from every value before summing (choose a value
    near the mean to keep the sum of squares well conditioned); NaN means
    "the first selected value".

    Returns ``(n, s1, s2, vmin, vmax, shift)``: the number of selected values,
    ``sum(x - shift)``, ``sum((x - shift)**2)``, their min and max (NaN when
    n == 0 or when ``minmax`` is False, which saves some work) and the shift
    used.
    """
    cdef bint use_mask = _check(values, mask)
    cdef Py_ssize_t n = values.shape[0], nchunk = (n + _CHUNK - 1) // _CHUNK, c, i
    cdef const float *v = &values[0] if n > 0 else NULL
    cdef const u8 *m = &mask[0] if use_mask else NULL
    cdef double a1 = 0.0, c1 = 0.0, a2 = 0.0, c2 = 0.0
    cdef double vmin = float("nan"), vmax = float("nan")
    cdef Py_ssize_t total = 0
    cdef int nth = _nthreads(n)
    if isnan(shift):
        shift = 0.0
        for i in range(n):
            if _sel(v[i], m, i, use_mask, lo, hi):
                shift = v[i]
                break
    part = np.empty((max(nchunk, 1), 5), dtype=np.float64)
    cdef double[:, ::1] p = part
    for c in prange(nchunk, nogil=True, schedule="static", num_threads=nth):
        skystats_chunk_moments(v + c * _CHUNK, m + c * _CHUNK if use_mask else NULL,
                               min(n, (c + 1) * _CHUNK) - c * _CHUNK, lo, hi, shift, minmax,
                               &p[c, 0])
    for c in range(nchunk):
        if p[c, 0] == 0:
            continue
        if not minmax:
            pass
        elif total == 0:
            vmin = p[c, 3]
            vmax = p[c, 4]
        else:
            vmin = min(vmin, p[c, 3])
            vmax = max(vmax, p[c, 4])
        total += <Py_ssize_t>p[c, 0]
        _neumaier(&a1, &c1, p[c, 1])
        _neumaier(&a2, &c2, p[c, 2])
    return total, a1 + c1, a2 + c2, vmin, vmax, shift


def histogram(const float[::1] values, const u8[::1] mask, double lo, double hi,
              double vmin, double dz, Py_ssize_t nbins):
    """int64 counts of bin ``floor((x - vmin) / dz)`` over the selected values.

    Values whose bin falls outside ``[0, nbins)`` are not counted.  The bin is
    the one of the IEEE double division (a product with ``1 / dz`` is used
    and the division redone only next to a bin edge).
    """
    if nbins < 1:
        raise ValueError(f"nbins={nbins}: must be >= 1")
    if not dz > 0:
        raise ValueError(f"dz={dz}: must be > 0")
    cdef bint use_mask = _check(values, mask)
    cdef Py_ssize_t n = values.shape[0], s, i, k, start, stop, row
    cdef const float *v = &values[0] if n > 0 else NULL
    cdef const u8 *m = &mask[0] if use_mask else NULL
    cdef int nslab = _nthreads(n)
    if nbins * nslab * _HCOPIES > _MAX_HIST_COPY:
        nslab = 1
    # _HCOPIES interleaved copies per slab: consecutive pixels of a smooth
    # sky fall in the same bin, and separate counters avoid a serial chain
    # of increments of one memory word.
    hist2 = np.zeros((nslab * _HCOPIES, nbins), dtype=np.int64)
    cdef i64[:, ::1] h = hist2
    cdef double inv = 1.0 / dz, y, t, f, tol
    for s in prange(nslab, nogil=True, schedule="static", num_threads=nslab):
        start = n * s // nslab
        stop = n * (s + 1) // nslab
        for i in range(start, stop):
            if _sel(v[i], m, i, use_mask, lo, hi):
                y = v[i] - vmin
                t = y * inv
                if y >= 0.0 and t < nbins + 1.0:
                    # truncation is floor here (y >= 0, so t >= 0); libm floor
                    # is a call on baseline x86-64, a cast is not
                    k = <Py_ssize_t>t
                    f = t - k
                    tol = 4.0 * DBL_EPSILON * (t + 1.0)
                    if f < tol or 1.0 - f < tol:
                        k = <Py_ssize_t>(y / dz)
                else:
                    t = floor(y / dz)
                    k = <Py_ssize_t>t if (t >= 0 and t < nbins) else -1
                if k >= 0 and k < nbins:
                    row = s * _HCOPIES + (i & (_HCOPIES - 1))
                    h[row, k] += 1
    return hist2.sum(axis=0)


def select(const float[::1] values, const u8[::1] mask, double lo, double hi,
           Py_ssize_t count):
    """float32 array of the selected values in input order.

    ``count`` is their number (from :func:`clip_moments`); a mismatch raises
    ValueError.
    """
    cdef bint use_mask = _check(values, mask)
    cdef Py_ssize_t n = values.shape[0], i, j = 0
    cdef const float *v = &values[0] if n > 0 else NULL
    cdef const u8 *m = &mask[0] if use_mask else NULL
    out = np.empty(count, dtype=np.float32)
    cdef float[::1] o = out
    with nogil:
        for i in range(n):
            if _sel(v[i], m, i, use_mask, lo, hi):
                if j == count:
                    j = j + 1
                    break
                o[j] = v[i]
                j = j + 1
    if j != count:
        raise ValueError(f"count={count} does not match the number of selected values")
    return out
