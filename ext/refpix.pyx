# cython: language_level=3
"""Reference-pixel correction kernel: one in-place pass over a frame.

For every pixel of the 32 read-out channels (odd channels read right to left,
rows of ``row_len`` clocks) it removes, in float32 like the reference
algorithm: the per-pixel offset, the channel's straight-line trend in read-out
time (non-zero values only) and the FFT-based correction; then restores the offset.
"""
cimport numpy as cnp
from cython.parallel cimport prange

cnp.import_array()


def correct_frame(
    float[:, ::1] frame,
    const float[:, ::1] offset,
    const double[::1] slope,
    const double[::1] intercept,
    const float[:, ::1] corr,
    Py_ssize_t width,
    Py_ssize_t row_len,
    double t_center,
    bint use_offset,
    bint use_trend,
    bint use_corr,
):
    """Correct ``frame`` [ny, 32*width] in place.

    ``offset`` [ny, nx] (used if ``use_offset``); ``slope``/``intercept`` [32]
    per channel, time index ``t = y*row_len + k - t_center`` with k the
    read-out column; ``corr`` [32, ny*row_len] in read-out order (used if ``use_corr``).
    """
    cdef Py_ssize_t ny = frame.shape[0], nchan = slope.shape[0]
    cdef Py_ssize_t y, c, k, x
    cdef float v, off
    cdef double t
    for y in prange(ny, nogil=True, schedule="static"):
        for c in range(nchan):
            for k in range(width):
                if c % 2 == 1:
                    x = c * width + width - 1 - k
                else:
                    x = c * width + k
                off = 0
                if use_offset:
                    off = offset[y, x]
                v = frame[y, x] - off
                if use_trend and v != 0:
                    t = y * row_len + k - t_center
                    v = <float>(v - (slope[c] * t + intercept[c]))
                if use_corr:
                    v = v - corr[c, y * row_len + k]
                frame[y, x] = v + off
