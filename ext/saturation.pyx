# cython: language_level=3
"""Saturation flagging kernel for Roman ramps (ALGORITHMS.md section 3).

One call flags a whole ramp in place: per-pixel thresholds (NO_SAT_CHECK and
NaN thresholds replaced by a value above the A/D range), propagation of
saturation to later resultants, the A/D floor, optional growth of saturated
regions, the read-pattern dilution check on the resultant before saturation,
the second-resultant check and the optional ``backup`` passes.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange

ctypedef cnp.uint8_t u8
ctypedef cnp.uint32_t u32
ctypedef cnp.int16_t i16

cnp.import_array()

cdef enum:
    G_DNU = 1
    G_SAT = 2
    G_ADF = 64


cdef inline double _threshold(float thr, u32 refdq, u32 no_sat_bit, double no_sat_value) noexcept nogil:
    if (refdq & no_sat_bit) != 0 or thr != thr:
        return no_sat_value
    return thr


def flag_saturation(
    const float[:, :, ::1] data,
    u8[:, :, ::1] groupdq,
    u32[:, ::1] pixeldq,
    const float[:, ::1] threshold,
    const u32[:, ::1] threshold_dq,
    u32 no_sat_bit,
    double no_sat_value,
    const double[::1] dilution,
    const u8[::1] multi_read,
    double mean_read0,
    double last_read2,
    double nreads1,
    int n_pix_grow_sat,
    int backup,
):
    """Flag saturation in ``groupdq`` and OR the reference DQ into ``pixeldq`` (in place).

    ``dilution[g]`` is mean(read_pattern[g]) / last(read_pattern[g]);
    ``multi_read[g]`` is 1 where resultant g averages more than one read.
    ``mean_read0``, ``last_read2`` and ``nreads1`` feed the second-resultant
    check (ignored when there are fewer than 3 resultants).

    Returns the number of pixels whose every resultant is SATURATED.
    """
    cdef Py_ssize_t nres = data.shape[0], ny = data.shape[1], nx = data.shape[2]
    cdef Py_ssize_t y, x, g, yy, xx, y0, y1, x0, x1
    cdef int npass, grow = n_pix_grow_sat
    cdef double thr, d, r0, r1
    cdef i16 f, m
    cdef u8 allsat
    cdef Py_ssize_t nall = 0

    first = np.empty((ny, nx), dtype=np.int16)
    cdef i16[:, ::1] fs = first
    cdef i16[:, ::1] fg
    cdef i16[:, ::1] tmp
    cdef i16[:, ::1] dnu_idx

    # pass 1: own first saturated resultant, A/D floor, reference DQ
    for y in prange(ny, nogil=True, schedule="static"):
        for x in range(nx):
            fs[y, x] = <i16>nres
        for g in range(nres):
            for x in range(nx):
                thr = _threshold(threshold[y, x], threshold_dq[y, x], no_sat_bit, no_sat_value)
                if fs[y, x] == nres and (data[g, y, x] >= thr or (groupdq[g, y, x] & G_SAT) != 0):
                    fs[y, x] = <i16>g
                if data[g, y, x] <= 0:
                    groupdq[g, y, x] = groupdq[g, y, x] | (G_ADF | G_DNU)
        for x in range(nx):
            pixeldq[y, x] = pixeldq[y, x] | threshold_dq[y, x]
            if threshold[y, x] != threshold[y, x]:
                pixeldq[y, x] = pixeldq[y, x] | no_sat_bit

    # pass 2: growth = box minimum of the first saturated resultant
    if grow > 0:
        tmp_arr = np.empty((ny, nx), dtype=np.int16)
        grown = np.empty((ny, nx), dtype=np.int16)
        tmp = tmp_arr
        fg = grown
        for y in prange(ny, nogil=True, schedule="static"):
            for x in range(nx):
                x0 = x - grow
                if x0 < 0:
                    x0 = 0
                x1 = x + grow + 1
                if x1 > nx:
                    x1 = nx
                m = fs[y, x0]
                for xx in range(x0 + 1, x1):
                    if fs[y, xx] < m:
                        m = fs[y, xx]
                tmp[y, x] = m
        for y in prange(ny, nogil=True, schedule="static"):
            y0 = y - grow
            if y0 < 0:
                y0 = 0
            y1 = y + grow + 1
            if y1 > ny:
                y1 = ny
            for x in range(nx):
                m = tmp[y0, x]
                for yy in range(y0 + 1, y1):
                    if tmp[yy, x] < m:
                        m = tmp[yy, x]
                fg[y, x] = m
        dnu_arr = np.full((ny, nx), -1, dtype=np.int16)
        dnu_idx = dnu_arr
    else:
        fg = fs
        dnu_idx = fs  # unused

    # pass 3: propagate SATURATED, dilution check, second-resultant check, backup
    for y in prange(ny, nogil=True, schedule="static"):
        for x in range(nx):
            f = fg[y, x]
            for g in range(f, nres):
                groupdq[g, y, x] = groupdq[g, y, x] | G_SAT
            thr = _threshold(threshold[y, x], threshold_dq[y, x], no_sat_bit, no_sat_value)
            if f >= 1 and f < nres:
                g = f - 1
                d = dilution[g]
                if thr == no_sat_value:
                    d = 1.0
                if d != 1.0 and data[g, y, x] >= thr * d and (groupdq[g, y, x] & (G_SAT | G_DNU)) == 0:
                    if grow > 0:
                        dnu_idx[y, x] = <i16>g
                    else:
                        groupdq[g, y, x] = groupdq[g, y, x] | G_DNU
            if nres > 2 and f == 2:
                r0 = data[0, y, x]
                r1 = data[1, y, x]
                if r0 / mean_read0 * last_read2 < thr and r1 - r0 > (thr - r0) / nreads1:
                    groupdq[1, y, x] = groupdq[1, y, x] | G_DNU
            for npass in range(backup):
                for g in range(nres - 1):
                    if multi_read[g]:
                        groupdq[g, y, x] = groupdq[g, y, x] | (groupdq[g + 1, y, x] & G_SAT)

    # pass 4: grow the dilution DO_NOT_USE flags with the same box
    if grow > 0:
        for y in prange(ny, nogil=True, schedule="static"):
            y0 = y - grow
            if y0 < 0:
                y0 = 0
            y1 = y + grow + 1
            if y1 > ny:
                y1 = ny
            for x in range(nx):
                x0 = x - grow
                if x0 < 0:
                    x0 = 0
                x1 = x + grow + 1
                if x1 > nx:
                    x1 = nx
                for yy in range(y0, y1):
                    for xx in range(x0, x1):
                        if dnu_idx[yy, xx] >= 0:
                            groupdq[dnu_idx[yy, xx], y, x] = groupdq[dnu_idx[yy, xx], y, x] | G_DNU

    for y in prange(ny, nogil=True, schedule="static"):
        for x in range(nx):
            allsat = 1
            for g in range(nres):
                if (groupdq[g, y, x] & G_SAT) == 0:
                    allsat = 0
                    break
            nall += allsat
    return nall
