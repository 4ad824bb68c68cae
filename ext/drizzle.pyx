# cython: language_level=3
"""Drizzle kernels: drop input pixels onto an output grid through a pixel map.

Conventions
-----------
* ``pixmap[j, i] = (X, Y)``: output pixel coordinates (0-based, pixel centres
  at integers) of the centre of input pixel ``(i, j)``.  NaN marks a pixel
  without a valid mapping.
* Output pixel ``(ii, jj)`` covers ``[ii - 1/2, ii + 1/2) x [jj - 1/2, jj + 1/2)``;
  a point is assigned to pixel ``floor(X + 1/2)``.
* Output update (weighted mean): with drop weight ``dow`` and accumulated
  weight ``W``, ``I <- d`` when ``W == 0`` else ``I <- (I W + d dow)/(W + dow)``,
  ``W <- W + dow``; the context bit of the input is set where ``dow > 0``.

Every input pixel whose footprint overlaps the output grid deposits the part
that lands on the grid; nothing is dropped because an input pixel straddles
an output edge.

Work is split into bands of output rows.  A first pass (:func:`band_table`)
records, for every input row and band, the input columns whose drop reaches
the band, so a band visits only the input pixels that land on it.  Each thread
owns one band at a time and visits those pixels in input order, writing only
inside its band; every output pixel therefore receives its updates in the
same order as in a serial run, and results do not depend on the number of
threads.  One visit of an input pixel computes its overlaps once and deposits
the data, the weights, the context bit, the per-input sums of every variance
plane and the exposure-time coverage; the per-input sums live in a small
per-thread band scratch that is folded into the variance and exposure-time
maps (ALGORITHMS.md §6.5) as soon as the band is done.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.math cimport floor, ceil, exp, fabs, isfinite, sqrtf, M_PI
from libc.stdlib cimport malloc, free

ctypedef cnp.uint32_t u32
ctypedef cnp.int64_t i64

cnp.import_array()

# kernel codes (mirrored in romancore.algorithms.drizzle.KERNELS)
cdef enum:
    K_SQUARE = 0
    K_POINT = 1
    K_TURBO = 2
    K_GAUSSIAN = 3
    K_LANCZOS2 = 4
    K_LANCZOS3 = 5

KERNEL_CODES = {"square": 0, "point": 1, "turbo": 2, "gaussian": 3, "lanczos2": 4, "lanczos3": 5}

# Lanczos look-up table step, in input pixels
cdef double LANCZOS_LUT_STEP = 0.003
LUT_STEP = LANCZOS_LUT_STEP


cdef inline Py_ssize_t _nearest(double v) noexcept nogil:
    """Index of the output pixel containing coordinate ``v`` (``floor(v + 1/2)``)."""
    cdef double t = v + 0.5
    cdef Py_ssize_t k
    if not (t > -1e15 and t < 1e15):
        return <Py_ssize_t>floor(t)
    k = <Py_ssize_t>t
    if k > t:
        k -= 1
    return k


cdef inline double _clip01(double v) noexcept nogil:
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


cdef inline double _sgarea(double x1, double y1, double x2, double y2) noexcept nogil:
    """Signed area between the segment (x1,y1)-(x2,y2) and y = 0, inside the unit square.

    The segment's function y(x) is clipped to [0, 1] and integrated over its
    x-range clipped to [0, 1]; the sign is that of x2 - x1.  The range is cut
    where y(x) crosses 0 and 1, so y is linear or constant on every piece and
    each piece contributes width * clip(y(midpoint)).
    """
    cdef double dx = x2 - x1, xlo, xhi, sgn, slope, ylo, yhi, t0, t1, tmp, xm, area, prev
    if dx == 0.0:
        return 0.0
    if dx > 0.0:
        xlo = x1
        xhi = x2
        sgn = 1.0
    else:
        xlo = x2
        xhi = x1
        sgn = -1.0
    if xlo < 0.0:
        xlo = 0.0
    if xhi > 1.0:
        xhi = 1.0
    if xlo >= xhi:
        return 0.0
    slope = (y2 - y1) / dx
    ylo = y1 + slope * (xlo - x1)
    yhi = y1 + slope * (xhi - x1)
    if ylo <= 0.0 and yhi <= 0.0:
        return 0.0
    if ylo >= 1.0 and yhi >= 1.0:
        return sgn * (xhi - xlo)
    if ylo >= 0.0 and ylo <= 1.0 and yhi >= 0.0 and yhi <= 1.0:
        return sgn * 0.5 * (xhi - xlo) * (ylo + yhi)
    # y crosses 0 and/or 1 inside (xlo, xhi): slope != 0 here
    t0 = x1 - y1 / slope
    t1 = x1 + (1.0 - y1) / slope
    if t1 < t0:
        tmp = t0
        t0 = t1
        t1 = tmp
    area = 0.0
    prev = xlo
    if t0 > xlo and t0 < xhi:
        xm = 0.5 * (prev + t0)
        area += (t0 - prev) * _clip01(y1 + slope * (xm - x1))
        prev = t0
    if t1 > xlo and t1 < xhi:
        xm = 0.5 * (prev + t1)
        area += (t1 - prev) * _clip01(y1 + slope * (xm - x1))
        prev = t1
    xm = 0.5 * (prev + xhi)
    area += (xhi - prev) * _clip01(y1 + slope * (xm - x1))
    return sgn * area


cdef inline double _boxer(double ii, double jj, double* qx, double* qy) noexcept nogil:
    """Signed area of the quadrilateral (qx, qy) inside output pixel (ii, jj)."""
    cdef double x0 = ii - 0.5, y0 = jj - 0.5, s = 0.0
    cdef int k, k2
    for k in range(4):
        k2 = (k + 1) & 3
        s = s + _sgarea(qx[k] - x0, qy[k] - y0, qx[k2] - x0, qy[k2] - y0)
    return s


cdef inline double _clip_integral(double width, double ha, double hb) noexcept nogil:
    """Integral over a piece of x-width ``width`` of clip(h, 0, 1), h linear from ha to hb.

    With q <= p the end values sorted, the integral is ``width`` times the mean
    of clip over [q, p], i.e. ``width * (C(p) - C(q)) / (p - q)`` with
    ``C(s) = integral_0^s clip(u, 0, 1) du``.  Each crossing case is written so
    that no difference of nearly equal numbers is formed: crossing 0 only,
    ``p**2 / 2``; crossing 1 only, ``(p - q) - (1 - q)**2 / 2``; both,
    ``p - 1/2``.  One division.
    """
    cdef double p, q
    if ha >= 0.0 and ha <= 1.0 and hb >= 0.0 and hb <= 1.0:
        return 0.5 * width * (ha + hb)
    if ha <= hb:
        q = ha
        p = hb
    else:
        q = hb
        p = ha
    if p <= 0.0:
        return 0.0
    if q >= 1.0:
        return width
    # here q < p, p > 0 and q < 1, and [q, p] is not inside [0, 1]
    if q < 0.0:
        if p <= 1.0:
            return width * (0.5 * p * p) / (p - q)
        return width * (p - 0.5) / (p - q)
    return width * (1.0 - (0.5 * (1.0 - q) * (1.0 - q)) / (p - q))


# largest output-pixel block of one square drop handled by the edge sweep
DEF MAXCELLS = 64
# most variance planes of one drizzle
DEF MAXAUX = 8
MAX_VARIANCE_PLANES = MAXAUX


cdef inline void _sweep_rows(double* A, Py_ssize_t ni, Py_ssize_t r, Py_ssize_t nj,
                             double width, double va, double vb, double sgn) noexcept nogil:
    """Add the signed area between one edge piece and each row's bottom to column r of A.

    Block-local coordinates: row m spans heights [m, m + 1].  The piece spans
    ``width`` in x with the edge going from height ``va`` to ``vb``.  Rows
    wholly below the piece get ``width``; the sweep stops at the first row
    wholly above it; rows it crosses get the integral of clip(v - m, 0, 1)
    (:func:`_clip_integral`), the crossing cases written with one shared
    division per piece, ``width / (vmax - vmin)``.
    """
    cdef double ymn, ymx, ha, hb, p, q, rw = -1.0, v
    cdef Py_ssize_t m
    if va < vb:
        ymn = va
        ymx = vb
    else:
        ymn = vb
        ymx = va
    for m in range(nj):
        if ymx <= m:
            break
        if ymn >= m + 1:
            A[m * ni + r] += sgn * width
            continue
        ha = va - m
        hb = vb - m
        if ha >= 0.0 and ha <= 1.0 and hb >= 0.0 and hb <= 1.0:
            A[m * ni + r] += sgn * (0.5 * width * (ha + hb))
            continue
        # the piece cuts v = m or v = m + 1 inside the row's x-range: ymx > ymn
        if rw < 0.0:
            rw = width / (ymx - ymn)
            if not (rw < 1e300):
                rw = -1.0
        if rw < 0.0:
            v = _clip_integral(width, ha, hb)
        else:
            p = ymx - m
            q = ymn - m
            if q < 0.0:
                if p <= 1.0:
                    v = (0.5 * p * p) * rw
                else:
                    v = (p - 0.5) * rw
            else:
                v = width - (0.5 * (1.0 - q) * (1.0 - q)) * rw
        A[m * ni + r] += sgn * v


cdef inline Py_ssize_t _cell(double u) noexcept nogil:
    """floor(u) for 0 <= u < 2**62 (block-local column index)."""
    return <Py_ssize_t>(u + 1.0) - 1


cdef inline bint _square_overlaps(double* qx, double* qy, Py_ssize_t i0, Py_ssize_t i1,
                                  Py_ssize_t j0, Py_ssize_t j1, double* A) noexcept nogil:
    """Signed overlap areas of the quadrilateral with output pixels i0..i1 x j0..j1.

    Same quantity as :func:`_boxer` for every pixel of the block (the sum over
    the edges of the signed area between the edge and the pixel's bottom,
    inside the pixel), but each edge is clipped once per output column it
    crosses and the rows are swept upwards from there (:func:`_sweep_rows`).
    Coordinates are taken relative to the block's lower-left corner, so the
    cell boundaries are small integers.  An edge that lies inside one column
    is a single piece whose end heights are its end points, so it needs no
    slope (the near-vertical sides of a near-unit drop); longer edges are cut
    at the column boundaries.  ``A`` is row-major [j1-j0+1, i1-i0+1].  Returns
    False when the block is larger than MAXCELLS (the caller then uses
    :func:`_boxer`).
    """
    cdef Py_ssize_t ni = i1 - i0 + 1, nj = j1 - j0 + 1, k, r, ca, cb
    cdef double u[4]
    cdef double v[4]
    cdef double sl[4]
    cdef double x1, y1, x2, y2, dx, xa, xb, ya_e, yb_e, sgn, slope, cx0, cx1
    cdef double ox = i0 - 0.5, oy = j0 - 0.5
    if ni * nj > MAXCELLS:
        return False
    if ni * nj <= 16:
        for k in range(16):     # fixed size: a few vector stores instead of a memset call
            A[k] = 0.0
    else:
        for k in range(ni * nj):
            A[k] = 0.0
    for k in range(4):
        u[k] = qx[k] - ox
        v[k] = qy[k] - oy
    # every slope up front: the divisions overlap each other and the branches
    # below instead of sitting on their path (unused ones may be inf or NaN)
    for k in range(4):
        sl[k] = (v[(k + 1) & 3] - v[k]) / (u[(k + 1) & 3] - u[k])
    for k in range(4):
        x1 = u[k]
        y1 = v[k]
        x2 = u[(k + 1) & 3]
        y2 = v[(k + 1) & 3]
        dx = x2 - x1
        if dx == 0.0:
            continue
        if dx > 0.0:
            xa = x1
            xb = x2
            ya_e = y1
            yb_e = y2
            sgn = 1.0
        else:
            xa = x2
            xb = x1
            ya_e = y2
            yb_e = y1
            sgn = -1.0
        if xb <= 0.0 or xa >= ni:
            continue
        # column indices in the block (-1 / ni: left of / right of it)
        ca = _cell(xa) if xa > 0.0 else -1
        cb = _cell(xb) if xb < ni else ni
        if ca == cb:
            # the whole edge lies in column ca (0 <= ca < ni here)
            _sweep_rows(A, ni, ca, nj, xb - xa, ya_e, yb_e, sgn)
            continue
        if ca < 0:
            ca = 0
        if cb > ni - 1:
            cb = ni - 1
        slope = sl[k]
        for r in range(ca, cb + 1):
            cx0 = xa if xa > r else <double>r
            cx1 = xb if xb < r + 1 else <double>(r + 1)
            if cx1 <= cx0:
                continue
            _sweep_rows(A, ni, r, nj, cx1 - cx0, y1 + slope * (cx0 - x1),
                        y1 + slope * (cx1 - x1), sgn)
    return True


cdef struct Job:
    # input
    const float* data
    const float* weight     # main drop weights (used when do_main)
    const float* cweight    # coverage weights (used when do_cov)
    const double* pm
    Py_ssize_t nx
    Py_ssize_t ny
    # main accumulators (full output)
    float* out
    float* wht
    Py_ssize_t onx
    Py_ssize_t ony
    u32* ctx            # start of the context plane of this input
    u32 ctx_bit
    # variance planes: per-input V in (their square roots are drizzled), combined sums out
    const float* aux[MAXAUX]
    Py_ssize_t naux
    float* var_sum
    float* var_wht
    int omega_mode      # OMEGA_* below
    Py_ssize_t rn_index
    # exposure-time map (full output)
    float* expmap
    double exptime
    # per-thread band scratch [band_h, onx, nscr]: per pixel wht, cov, sum_0 .. sum_{naux-1}
    float* scratch
    Py_ssize_t nscr
    Py_ssize_t band_h
    Py_ssize_t nbands
    # input column range of every (input row, band)
    const int* ilo
    const int* ihi
    # kernel
    const double* lut
    Py_ssize_t nlut
    int kernel
    double dh
    double pfo
    double pscale
    double iscale
    double efac
    double gnorm
    double turbo_norm
    bint do_main
    bint do_ctx
    bint do_aux
    bint do_cov


cdef enum:
    OMEGA_IVM = 0
    OMEGA_EXPTIME = 1
    OMEGA_ONE = 2

OMEGA_CODES = {"ivm": 0, "exptime": 1, None: 2}


cdef inline bint _valid(const double* pm, Py_ssize_t i, Py_ssize_t j,
                        Py_ssize_t nx, Py_ssize_t ny) noexcept nogil:
    cdef Py_ssize_t k
    if i < 0 or j < 0 or i >= nx or j >= ny:
        return False
    k = 2 * (j * nx + i)
    return isfinite(pm[k]) and isfinite(pm[k + 1])


cdef inline bint _quad(const double* pm, Py_ssize_t i, Py_ssize_t j,
                       Py_ssize_t nx, Py_ssize_t ny, double dh,
                       double* qx, double* qy) noexcept nogil:
    """Output coordinates of the corners of input pixel (i, j) shrunk to half-size dh.

    The pixmap is interpolated bilinearly on the 3x3 stencil around the pixel.
    Neighbours that are missing (outside the input or NaN) are extrapolated
    linearly from the opposite side, so edge pixels are treated like interior
    ones.  Corner order: (i-dh, j+dh), (i+dh, j+dh), (i+dh, j-dh), (i-dh, j-dh).
    Returns False when the pixel cannot be mapped.
    """
    cdef double sx[9]
    cdef double sy[9]
    cdef bint have[9]
    cdef int a, b, k, ax, ay, oa, ob
    cdef Py_ssize_t p
    cdef double cx, cy, w0, w1, w3, tx, ty
    cdef const double* r0
    cdef const double* r1
    cdef const double* r2
    if i >= 1 and j >= 1 and i < nx - 1 and j < ny - 1:
        # interior pixel: when all 9 neighbours are finite, interpolate directly
        r0 = pm + 2 * ((j - 1) * nx + i - 1)
        r1 = r0 + 2 * nx
        r2 = r1 + 2 * nx
        if isfinite(r0[0] + r0[1] + r0[2] + r0[3] + r0[4] + r0[5]
                    + r1[0] + r1[1] + r1[2] + r1[3] + r1[4] + r1[5]
                    + r2[0] + r2[1] + r2[2] + r2[3] + r2[4] + r2[5]):
            w0 = (1.0 - dh) * (1.0 - dh)
            w1 = dh * (1.0 - dh)
            w3 = dh * dh
            # corners (i-dh, j+dh), (i+dh, j+dh), (i+dh, j-dh), (i-dh, j-dh)
            qx[0] = w0 * r1[2] + w1 * r1[0] + w1 * r2[2] + w3 * r2[0]
            qy[0] = w0 * r1[3] + w1 * r1[1] + w1 * r2[3] + w3 * r2[1]
            qx[1] = w0 * r1[2] + w1 * r1[4] + w1 * r2[2] + w3 * r2[4]
            qy[1] = w0 * r1[3] + w1 * r1[5] + w1 * r2[3] + w3 * r2[5]
            qx[2] = w0 * r1[2] + w1 * r1[4] + w1 * r0[2] + w3 * r0[4]
            qy[2] = w0 * r1[3] + w1 * r1[5] + w1 * r0[3] + w3 * r0[5]
            qx[3] = w0 * r1[2] + w1 * r1[0] + w1 * r0[2] + w3 * r0[0]
            qy[3] = w0 * r1[3] + w1 * r1[1] + w1 * r0[3] + w3 * r0[1]
            return True
    if not _valid(pm, i, j, nx, ny):
        return False
    for b in range(3):
        for a in range(3):
            k = 3 * b + a
            have[k] = _valid(pm, i + a - 1, j + b - 1, nx, ny)
            if have[k]:
                p = 2 * ((j + b - 1) * nx + i + a - 1)
                sx[k] = pm[p]
                sy[k] = pm[p + 1]
    cx = sx[4]
    cy = sy[4]
    # edge neighbours along x (k = 3, 5) and y (k = 1, 7)
    if not have[3] and not have[5]:
        return False
    if not have[3]:
        sx[3] = 2.0 * cx - sx[5]
        sy[3] = 2.0 * cy - sy[5]
    elif not have[5]:
        sx[5] = 2.0 * cx - sx[3]
        sy[5] = 2.0 * cy - sy[3]
    if not have[1] and not have[7]:
        return False
    if not have[1]:
        sx[1] = 2.0 * cx - sx[7]
        sy[1] = 2.0 * cy - sy[7]
    elif not have[7]:
        sx[7] = 2.0 * cx - sx[1]
        sy[7] = 2.0 * cy - sy[1]
    # missing diagonal neighbours: extend the bilinear surface of an adjacent
    # complete cell, which is what clamping the 2x2 cell and extrapolating it
    # gives at edges and corners.  With g(u, v) = c + a u + b v + t u v, the
    # cell at signs (ex, ey) yields t*ex*ey and the missing value is
    # g(sx, sy) = E(sx) + E(sy) - c + t*sx*sy.
    for b in range(0, 3, 2):
        for a in range(0, 3, 2):
            k = 3 * b + a
            if have[k]:
                continue
            oa = 2 - a
            ob = 2 - b
            tx = 0.0
            ty = 0.0
            if have[3 * b + oa] and have[3 + oa] and have[3 * b + 1]:
                tx = -(sx[3 * b + oa] - sx[3 + oa] - sx[3 * b + 1] + cx)
                ty = -(sy[3 * b + oa] - sy[3 + oa] - sy[3 * b + 1] + cy)
            elif have[3 * ob + a] and have[3 * ob + 1] and have[3 + a]:
                tx = -(sx[3 * ob + a] - sx[3 * ob + 1] - sx[3 + a] + cx)
                ty = -(sy[3 * ob + a] - sy[3 * ob + 1] - sy[3 + a] + cy)
            elif have[3 * ob + oa] and have[3 + oa] and have[3 * ob + 1]:
                tx = sx[3 * ob + oa] - sx[3 + oa] - sx[3 * ob + 1] + cx
                ty = sy[3 * ob + oa] - sy[3 + oa] - sy[3 * ob + 1] + cy
            sx[k] = sx[3 * b + 1] + sx[3 + a] - cx + tx
            sy[k] = sy[3 * b + 1] + sy[3 + a] - cy + ty
    w0 = (1.0 - dh) * (1.0 - dh)
    w1 = dh * (1.0 - dh)
    w3 = dh * dh
    for k in range(4):
        if k == 0:
            ax = -1
            ay = 1
        elif k == 1:
            ax = 1
            ay = 1
        elif k == 2:
            ax = 1
            ay = -1
        else:
            ax = -1
            ay = -1
        qx[k] = (w0 * cx + w1 * sx[4 + ax] + w1 * sx[4 + 3 * ay]
                 + w3 * sx[4 + 3 * ay + ax])
        qy[k] = (w0 * cy + w1 * sy[4 + ax] + w1 * sy[4 + 3 * ay]
                 + w3 * sy[4 + 3 * ay + ax])
    return True


cdef inline bint _footprint(const Job* job, Py_ssize_t i, Py_ssize_t j,
                            double* qx, double* qy,
                            double* xmin, double* xmax, double* ymin, double* ymax) noexcept nogil:
    """Bounding box (output coordinates) of the drop of input pixel (i, j)."""
    cdef int k
    cdef double X, Y
    cdef Py_ssize_t p
    if job.kernel == K_SQUARE:
        if not _quad(job.pm, i, j, job.nx, job.ny, job.dh, qx, qy):
            return False
        xmin[0] = qx[0]
        xmax[0] = qx[0]
        ymin[0] = qy[0]
        ymax[0] = qy[0]
        for k in range(1, 4):
            if qx[k] < xmin[0]:
                xmin[0] = qx[k]
            if qx[k] > xmax[0]:
                xmax[0] = qx[k]
            if qy[k] < ymin[0]:
                ymin[0] = qy[k]
            if qy[k] > ymax[0]:
                ymax[0] = qy[k]
        return True
    if not _valid(job.pm, i, j, job.nx, job.ny):
        return False
    p = 2 * (j * job.nx + i)
    X = job.pm[p]
    Y = job.pm[p + 1]
    xmin[0] = X - job.pfo
    xmax[0] = X + job.pfo
    ymin[0] = Y - job.pfo
    ymax[0] = Y + job.pfo
    return True


cdef inline void _range(int kernel, double lo, double hi, Py_ssize_t n,
                        Py_ssize_t* first, Py_ssize_t* last) noexcept nogil:
    """Output pixel index range touched by a drop spanning [lo, hi], clipped to [0, n-1]."""
    if kernel == K_POINT:
        first[0] = _nearest(lo)
        last[0] = first[0]
    elif kernel == K_LANCZOS2 or kernel == K_LANCZOS3:
        first[0] = <Py_ssize_t>floor(lo) + 1
        last[0] = <Py_ssize_t>floor(hi)
    else:
        first[0] = _nearest(lo)
        last[0] = _nearest(hi)
    if first[0] < 0:
        first[0] = 0
    if last[0] > n - 1:
        last[0] = n - 1


cdef double _kernel_reach(int kernel, double pixfrac, double pscale) noexcept nogil:
    """Half-size (output pixels) of the drop of the centre-based kernels."""
    cdef double a, b
    if kernel == K_TURBO:
        return 0.5 * pixfrac / pscale
    if kernel == K_GAUSSIAN:
        a = 2.5 * pixfrac / 2.3548 / pscale
        b = 1.2 / pscale
        return a if a > b else b
    if kernel == K_LANCZOS2:
        return 2.0 / pscale
    if kernel == K_LANCZOS3:
        return 3.0 / pscale
    return 0.0




cdef inline bint _pixel_ranges(const Job* job, Py_ssize_t i, Py_ssize_t j, double* qx, double* qy,
                               double* xlo, double* xhi, double* ylo, double* yhi,
                               Py_ssize_t* i0, Py_ssize_t* i1,
                               Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    """Footprint and output pixel ranges of input pixel (i, j); False if it touches nothing."""
    if not _footprint(job, i, j, qx, qy, xlo, xhi, ylo, yhi):
        return False
    _range(job.kernel, xlo[0], xhi[0], job.onx, i0, i1)
    _range(job.kernel, ylo[0], yhi[0], job.ony, j0, j1)
    return i0[0] <= i1[0] and j0[0] <= j1[0]


cdef inline bint _wanted(const Job* job, Py_ssize_t p, double* w, double* cw) noexcept nogil:
    """Weights of input pixel p; False when it deposits nothing at all."""
    w[0] = job.weight[p] if job.do_main else 0.0
    cw[0] = job.cweight[p] if job.do_cov else 0.0
    if not (w[0] > 0.0) and not (cw[0] > 0.0):
        return False
    return isfinite(job.data[p])


cdef void _table_row(const Job* job, Py_ssize_t j, int* ilo, int* ihi, i64* count) noexcept nogil:
    """Band table of input row j: columns of the pixels that reach each band."""
    cdef Py_ssize_t i, p, i0, i1, j0, j1, b, b0, b1, k
    cdef double qx[4]
    cdef double qy[4]
    cdef double xlo, xhi, ylo, yhi, w, cw
    for i in range(job.nx):
        p = j * job.nx + i
        if not _wanted(job, p, &w, &cw):
            continue
        if not _pixel_ranges(job, i, j, qx, qy, &xlo, &xhi, &ylo, &yhi, &i0, &i1, &j0, &j1):
            continue
        if w > 0.0:
            count[j] += 1
        b0 = j0 // job.band_h
        b1 = j1 // job.band_h
        for b in range(b0, b1 + 1):
            k = j * job.nbands + b
            if ilo[k] > i:
                ilo[k] = <int>i
            ihi[k] = <int>i


cdef inline void _deposit(const Job* job, float* scr, Py_ssize_t by0, Py_ssize_t jj, Py_ssize_t ii,
                          double d, double dow, double cdow, bint mw, bint mc,
                          const double* sq) noexcept nogil:
    """Deposit value d with weight dow (and coverage weight cdow) on output pixel (ii, jj)."""
    cdef Py_ssize_t q, s, a
    cdef double w, wn
    s = ((jj - by0) * job.onx + ii) * job.nscr
    if mw and dow != 0.0:
        q = jj * job.onx + ii
        w = job.wht[q]
        wn = w + dow
        if w == 0.0:
            job.out[q] = <float>d
        elif wn != 0.0:
            job.out[q] = <float>((job.out[q] * w + d * dow) / wn)
        job.wht[q] = <float>wn
        if job.do_ctx and dow > 0.0:
            job.ctx[q] = job.ctx[q] | job.ctx_bit
        if job.do_aux:
            scr[s] += <float>dow
            for a in range(job.naux):
                scr[s + 2 + a] += <float>(dow * job.iscale * sq[a])
    if mc and cdow != 0.0:
        scr[s + 1] += <float>cdow


cdef void _combine_band(const Job* job, float* scr, Py_ssize_t by0, Py_ssize_t by1,
                        Py_ssize_t cx0, Py_ssize_t cx1) noexcept nogil:
    """Fold this input's band sums into the variance and exposure-time maps (§6.5), clear them."""
    cdef Py_ssize_t opix = job.onx * job.ony
    cdef Py_ssize_t jj, ii, s, q, a
    cdef double inv_w, v, vp, om
    cdef float aw
    for jj in range(by0, by1 + 1):
        for ii in range(cx0, cx1 + 1):
            s = ((jj - by0) * job.onx + ii) * job.nscr
            q = jj * job.onx + ii
            if job.do_cov:
                if scr[s + 1] != 0.0:
                    job.expmap[q] = job.expmap[q] + <float>job.exptime
                scr[s + 1] = 0.0
            if not job.do_aux:
                continue
            aw = scr[s]
            if aw == 0.0:
                for a in range(job.naux):
                    scr[s + 2 + a] = 0.0
                continue
            inv_w = 1.0 / <double>aw
            if job.omega_mode == OMEGA_IVM:
                v = scr[s + 2 + job.rn_index] * inv_w
                om = 1.0 / (v * v)
                if not (isfinite(om) and om > 0.0):
                    om = 0.0
            elif job.omega_mode == OMEGA_EXPTIME:
                om = job.exptime
            else:
                om = 1.0
            for a in range(job.naux):
                v = scr[s + 2 + a] * inv_w
                vp = v * v
                if isfinite(vp) and vp >= 0.0 and om > 0.0:
                    job.var_sum[a * opix + q] = job.var_sum[a * opix + q] + <float>(vp * om * om)
                    job.var_wht[a * opix + q] = job.var_wht[a * opix + q] + <float>om
                scr[s + 2 + a] = 0.0
            scr[s] = 0.0


cdef i64 _process_band(const Job* job, Py_ssize_t b, float* scr) noexcept nogil:
    """Drop every contributing input pixel onto the output rows of band b only.

    Input pixels are visited in input order, so every output pixel receives its
    updates in the same order whatever the number of threads.  Returns the
    number of input pixels with weight > 0 whose drop touches the output and
    whose first output row lies in this band.
    """
    cdef i64 nhit = 0
    cdef Py_ssize_t by0 = b * job.band_h
    cdef Py_ssize_t by1 = by0 + job.band_h - 1
    cdef Py_ssize_t i, j, p, ii, jj, i0, i1, j0, j1, li, lj, lo, hi
    cdef Py_ssize_t cx0 = job.onx, cx1 = -1
    cdef double qx[4]
    cdef double qy[4]
    cdef double A[MAXCELLS]
    cdef double sq[MAXAUX]
    cdef Py_ssize_t a
    cdef double xlo, xhi, ylo, yhi, X, Y, d, w, cw, jaco, dover, f, ox, oy, r2, fw, fc
    cdef double dow, wv, wn
    cdef Py_ssize_t k, q
    cdef bint mw, mc
    cdef int kernel = job.kernel
    if by1 > job.ony - 1:
        by1 = job.ony - 1
    for j in range(job.ny):
        lo = job.ilo[j * job.nbands + b]
        hi = job.ihi[j * job.nbands + b]
        for i in range(lo, hi + 1):
            p = j * job.nx + i
            if not _wanted(job, p, &w, &cw):
                continue
            if not _pixel_ranges(job, i, j, qx, qy, &xlo, &xhi, &ylo, &yhi, &i0, &i1, &j0, &j1):
                continue
            if j0 >= by0 and j0 <= by1 and w > 0.0:
                nhit += 1
            if j0 < by0:
                j0 = by0
            if j1 > by1:
                j1 = by1
            if j0 > j1:
                continue
            if i0 < cx0:
                cx0 = i0
            if i1 > cx1:
                cx1 = i1
            mw = w > 0.0
            mc = cw > 0.0
            d = job.data[p] * job.iscale
            if job.do_aux and mw:
                for a in range(job.naux):
                    sq[a] = sqrtf(job.aux[a][p])
            X = job.pm[2 * p]
            Y = job.pm[2 * p + 1]
            if kernel == K_POINT:
                _deposit(job, scr, by0, j0, i0, d, w, cw, mw, mc, sq)
            elif kernel == K_SQUARE:
                jaco = 0.5 * ((qx[1] - qx[3]) * (qy[0] - qy[2])
                              - (qx[0] - qx[2]) * (qy[1] - qy[3]))
                if jaco == 0.0:
                    continue
                if _square_overlaps(qx, qy, i0, i1, j0, j1, A):
                    fw = w / jaco if mw else 0.0
                    fc = cw / jaco if mc else 0.0
                    k = 0
                    if mw and not mc and not job.do_aux:
                        # image, weight and context only: _deposit without the scratch sums
                        for jj in range(j0, j1 + 1):
                            q = jj * job.onx + i0
                            for ii in range(i0, i1 + 1):
                                dover = A[k]
                                k = k + 1
                                if dover != 0.0:
                                    dow = dover * fw
                                    if dow != 0.0:
                                        wv = job.wht[q]
                                        wn = wv + dow
                                        if wv == 0.0:
                                            job.out[q] = <float>d
                                        elif wn != 0.0:
                                            job.out[q] = <float>((job.out[q] * wv + d * dow) / wn)
                                        job.wht[q] = <float>wn
                                        if job.do_ctx and dow > 0.0:
                                            job.ctx[q] = job.ctx[q] | job.ctx_bit
                                q = q + 1
                    else:
                        for jj in range(j0, j1 + 1):
                            for ii in range(i0, i1 + 1):
                                dover = A[k]
                                k = k + 1
                                if dover != 0.0:
                                    _deposit(job, scr, by0, jj, ii, d, dover * fw, dover * fc,
                                             mw, mc, sq)
                else:
                    for jj in range(j0, j1 + 1):
                        for ii in range(i0, i1 + 1):
                            dover = _boxer(<double>ii, <double>jj, qx, qy)
                            if dover != 0.0:
                                _deposit(job, scr, by0, jj, ii, d, dover * w / jaco,
                                         dover * cw / jaco, mw, mc, sq)
            elif kernel == K_TURBO:
                for jj in range(j0, j1 + 1):
                    oy = (yhi if yhi < jj + 0.5 else jj + 0.5) - (ylo if ylo > jj - 0.5 else jj - 0.5)
                    if oy <= 0.0:
                        continue
                    for ii in range(i0, i1 + 1):
                        ox = (xhi if xhi < ii + 0.5 else ii + 0.5) - (xlo if xlo > ii - 0.5 else ii - 0.5)
                        if ox <= 0.0:
                            continue
                        f = ox * oy * job.turbo_norm
                        _deposit(job, scr, by0, jj, ii, d, f * w, f * cw, mw, mc, sq)
            elif kernel == K_GAUSSIAN:
                for jj in range(j0, j1 + 1):
                    for ii in range(i0, i1 + 1):
                        r2 = (X - ii) * (X - ii) + (Y - jj) * (Y - jj)
                        f = job.gnorm * exp(-r2 * job.efac)
                        _deposit(job, scr, by0, jj, ii, d, f * w, f * cw, mw, mc, sq)
            else:
                for jj in range(j0, j1 + 1):
                    lj = <Py_ssize_t>floor(fabs(Y - jj) * job.pscale / LANCZOS_LUT_STEP + 0.5)
                    if lj >= job.nlut:
                        continue
                    for ii in range(i0, i1 + 1):
                        li = <Py_ssize_t>floor(fabs(X - ii) * job.pscale / LANCZOS_LUT_STEP + 0.5)
                        if li >= job.nlut:
                            continue
                        f = job.lut[li] * job.lut[lj]
                        _deposit(job, scr, by0, jj, ii, d, f * w, f * cw, mw, mc, sq)
    if (job.do_aux or job.do_cov) and cx1 >= cx0:
        _combine_band(job, scr, by0, by1, cx0, cx1)
    return nhit


cdef Job _make_job(const float[:, ::1] data, const float[:, ::1] weight,
                   const float[:, ::1] cweight, const double[:, :, ::1] pixmap,
                   bint do_main, bint do_cov, int kernel, double pixfrac,
                   double pscale, Py_ssize_t out_ny, Py_ssize_t out_nx, Py_ssize_t band_h):
    cdef Job job
    if data.shape[0] != pixmap.shape[0] or data.shape[1] != pixmap.shape[1] \
            or pixmap.shape[2] != 2:
        raise ValueError("data and pixmap shapes disagree")
    if do_main and (weight.shape[0] != data.shape[0] or weight.shape[1] != data.shape[1]):
        raise ValueError("data and weight shapes disagree")
    if do_cov and (cweight.shape[0] != data.shape[0] or cweight.shape[1] != data.shape[1]):
        raise ValueError("data and coverage weight shapes disagree")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError("empty input")
    if out_ny < 1 or out_nx < 1:
        raise ValueError("empty output")
    if band_h < 1:
        raise ValueError("band height must be >= 1")
    if kernel < K_SQUARE or kernel > K_LANCZOS3:
        raise ValueError(f"unknown kernel code {kernel}")
    if kernel != K_SQUARE and kernel != K_POINT and not (pscale > 0.0):
        raise ValueError("pscale must be > 0 for this kernel")
    if (kernel == K_SQUARE or kernel == K_TURBO or kernel == K_GAUSSIAN) and not (pixfrac > 0.0):
        raise ValueError("pixfrac must be > 0 for this kernel")
    job.data = &data[0, 0]
    job.weight = &weight[0, 0] if do_main else NULL
    job.cweight = &cweight[0, 0] if do_cov else NULL
    job.pm = &pixmap[0, 0, 0]
    job.ny = data.shape[0]
    job.nx = data.shape[1]
    job.ony = out_ny
    job.onx = out_nx
    job.kernel = kernel
    job.dh = 0.5 * pixfrac
    job.pscale = pscale
    job.pfo = _kernel_reach(kernel, pixfrac, pscale)
    job.iscale = 1.0
    job.efac = 0.0
    job.gnorm = 0.0
    job.turbo_norm = 0.0
    if kernel == K_GAUSSIAN:
        job.efac = 2.3548 * 2.3548 * pscale * pscale / (2.0 * pixfrac * pixfrac)
        job.gnorm = job.efac / M_PI
    if kernel == K_TURBO:
        job.turbo_norm = pscale * pscale / (pixfrac * pixfrac)
    job.out = NULL
    job.wht = NULL
    job.ctx = NULL
    job.ctx_bit = 0
    job.naux = 0
    job.var_sum = NULL
    job.var_wht = NULL
    job.omega_mode = OMEGA_ONE
    job.rn_index = 0
    job.expmap = NULL
    job.exptime = 0.0
    job.scratch = NULL
    job.nscr = 0
    job.band_h = band_h
    job.nbands = (out_ny + band_h - 1) // band_h
    job.ilo = NULL
    job.ihi = NULL
    job.lut = NULL
    job.nlut = 0
    job.do_main = do_main
    job.do_ctx = False
    job.do_aux = False
    job.do_cov = do_cov
    return job


def band_table(const float[:, ::1] data, const float[:, ::1] weight, const float[:, ::1] cweight,
               const double[:, :, ::1] pixmap, bint do_main, bint do_cov,
               int kernel, double pixfrac, double pscale,
               Py_ssize_t out_ny, Py_ssize_t out_nx, Py_ssize_t band_h, int nthreads=1):
    """Which input pixels reach which output band.

    The output rows are cut into bands of ``band_h`` rows.  An input pixel
    counts when its data are finite and its weight (``do_main``) or coverage
    weight (``do_cov``) is > 0.  Returns int32 arrays ``(ilo, ihi)`` of shape
    ``[ny, nbands]``: the first and last input column of row ``j`` whose drop
    touches band ``b`` (``ilo > ihi`` when none does), and the int64 number of
    input pixels with weight > 0 whose drop touches the output.
    """
    cdef Job job = _make_job(data, weight, cweight, pixmap, do_main, do_cov, kernel, pixfrac,
                             pscale, out_ny, out_nx, band_h)
    cdef Py_ssize_t ny = job.ny, nb = job.nbands, j
    ilo_a = np.full((ny, nb), np.iinfo(np.int32).max, dtype=np.int32)
    ihi_a = np.full((ny, nb), -1, dtype=np.int32)
    count_a = np.zeros(ny, dtype=np.int64)
    cdef int[:, ::1] ilo = ilo_a
    cdef int[:, ::1] ihi = ihi_a
    cdef i64[::1] count = count_a
    for j in prange(ny, nogil=True, schedule="dynamic", chunksize=16, num_threads=nthreads):
        _table_row(&job, j, &ilo[0, 0], &ihi[0, 0], &count[0])
    return ilo_a, ihi_a, int(count_a.sum())


def drizzle_add(const float[:, ::1] data, const float[:, ::1] weight, const float[:, ::1] cweight,
                const double[:, :, ::1] pixmap,
                float[:, ::1] out, float[:, ::1] wht, u32[:, :, ::1] ctx,
                list aux_in, float[:, :, ::1] var_sum, float[:, :, ::1] var_wht,
                float[:, ::1] expmap, float[:, :, :, ::1] scratch,
                const int[:, ::1] ilo, const int[:, ::1] ihi,
                const double[::1] lut,
                int kernel, double pixfrac, double pscale, double iscale,
                int ctx_plane, u32 ctx_bit, bint do_main, bint do_ctx, bint do_aux, bint do_cov,
                int omega_mode, Py_ssize_t rn_index, double exptime,
                Py_ssize_t band_h, int nthreads):
    """Drizzle one input image in a single pass over its geometry.

    Parameters
    ----------
    data : float32 [ny, nx]
        Input values; pixels with non-finite data are skipped.
    weight, cweight : float32 [ny, nx]
        Drop weights of the main image (``do_main``) and of the exposure-time
        coverage (``do_cov``); pixels with a weight <= 0 (or NaN) deposit
        nothing of that kind.
    pixmap : float64 [ny, nx, 2]
        Output (X, Y) of every input pixel centre.
    out, wht : float32 [Ny, Nx]
        Weighted-mean image and weight accumulators, updated when ``do_main``.
    ctx : uint32 [nplanes, Ny, Nx]
        ``ctx_bit`` is OR-ed into plane ``ctx_plane`` where the input adds
        positive weight (``do_ctx``).
    aux_in : list of float32 [ny, nx] C-contiguous arrays (at most ``MAX_VARIANCE_PLANES``)
        Variance planes V (``do_aux``, which needs ``do_main``); sqrt(V) is
        drizzled (NaN where V < 0).  Per output pixel the input's ``V' = (sum(dow aux iscale) / sum(dow))**2``
        is formed and combined as ``var_sum += V' Omega**2``,
        ``var_wht += Omega`` where ``V'`` is finite and >= 0 and ``Omega > 0``;
        ``Omega`` is ``1/V'[rn_index]`` (``omega_mode`` 0, 0 unless finite and
        > 0), ``exptime`` (1) or 1 (2).
    var_sum, var_wht : float32 [naux, Ny, Nx]
    expmap : float32 [Ny, Nx]
        ``exptime`` is added where the coverage sum is non-zero (``do_cov``).
    scratch : float32 [nthreads, band_h, Nx, >= naux + 2], zero on entry and on exit.
    ilo, ihi : output of :func:`band_table` for the same inputs and settings.
    lut : float64
        Lanczos look-up table (step ``LANCZOS_LUT_STEP``); unused otherwise.
    kernel, pixfrac, pscale, iscale
        Kernel code, drop-size fraction, output/input pixel-scale ratio and
        data scale factor.

    ``ilo``/``ihi`` may list more input columns than reach a band (pixels whose
    drop misses the band are skipped); with ``band_h`` equal to the output
    height and every column listed, one band visits every input pixel once and
    no band table is needed.

    Returns
    -------
    int
        Number of input pixels with weight > 0 (``do_main``) whose drop touches
        the output (the count of :func:`band_table`).
    """
    cdef Job job = _make_job(data, weight, cweight, pixmap, do_main, do_cov, kernel, pixfrac,
                             pscale, wht.shape[0], wht.shape[1], band_h)
    cdef Py_ssize_t b, stride, nb = job.nbands
    cdef int t, a
    cdef const float[:, ::1] mv
    if ilo.shape[0] != job.ny or ilo.shape[1] != nb or ihi.shape[0] != job.ny or ihi.shape[1] != nb:
        raise ValueError("band table does not match the input and output")
    if out.shape[0] != wht.shape[0] or out.shape[1] != wht.shape[1]:
        raise ValueError("out and wht shapes disagree")
    if do_aux and not do_main:
        raise ValueError("variance planes need the main drop")
    if do_ctx:
        if ctx.shape[1] != wht.shape[0] or ctx.shape[2] != wht.shape[1]:
            raise ValueError("context shape disagrees with the output")
        if ctx_plane < 0 or ctx_plane >= ctx.shape[0]:
            raise ValueError("context plane out of range")
        job.ctx = &ctx[ctx_plane, 0, 0]
    if do_aux or do_cov:
        if scratch.shape[0] < nthreads or scratch.shape[1] != band_h or scratch.shape[2] != job.onx:
            raise ValueError("scratch shape disagrees with the threads, band height or output")
        job.scratch = &scratch[0, 0, 0, 0]
        job.nscr = scratch.shape[3]
    if do_aux:
        job.naux = len(aux_in)
        if job.naux < 1 or job.naux > MAXAUX:
            raise ValueError(f"between 1 and {MAXAUX} variance planes, got {job.naux}")
        for a in range(job.naux):
            mv = aux_in[a]   # the list keeps every array alive during the call
            if mv.shape[0] != job.ny or mv.shape[1] != job.nx:
                raise ValueError("a variance plane's shape disagrees with the input")
            job.aux[a] = &mv[0, 0]
        if scratch.shape[3] < job.naux + 2:
            raise ValueError("scratch has too few planes")
        if var_sum.shape[0] != job.naux or var_wht.shape[0] != job.naux \
                or var_sum.shape[1] != job.ony or var_sum.shape[2] != job.onx \
                or var_wht.shape[1] != job.ony or var_wht.shape[2] != job.onx:
            raise ValueError("variance accumulators disagree with the output")
        if omega_mode < OMEGA_IVM or omega_mode > OMEGA_ONE:
            raise ValueError(f"unknown omega mode {omega_mode}")
        if omega_mode == OMEGA_IVM and (rn_index < 0 or rn_index >= job.naux):
            raise ValueError("rn_index out of range")
        job.var_sum = &var_sum[0, 0, 0]
        job.var_wht = &var_wht[0, 0, 0]
        job.omega_mode = omega_mode
        job.rn_index = rn_index
    if do_cov:
        if scratch.shape[3] < 2:
            raise ValueError("scratch has too few planes")
        if expmap.shape[0] != job.ony or expmap.shape[1] != job.onx:
            raise ValueError("exposure-time map disagrees with the output")
        job.expmap = &expmap[0, 0]
    if kernel == K_LANCZOS2 or kernel == K_LANCZOS3:
        if lut.shape[0] < 1:
            raise ValueError("lanczos kernels need a look-up table")
        job.lut = &lut[0]
        job.nlut = lut.shape[0]
    job.out = &out[0, 0]
    job.wht = &wht[0, 0]
    job.ctx_bit = ctx_bit
    job.iscale = iscale
    job.exptime = exptime
    job.do_ctx = do_ctx
    job.do_aux = do_aux
    job.ilo = &ilo[0, 0]
    job.ihi = &ihi[0, 0]
    stride = scratch.shape[1] * scratch.shape[2] * scratch.shape[3]
    count_a = np.zeros(nb, dtype=np.int64)
    cdef i64[::1] count = count_a
    for b in prange(nb, nogil=True, schedule="dynamic", num_threads=nthreads):
        t = threadid()
        count[b] = _process_band(&job, b, job.scratch + t * stride if job.scratch != NULL else NULL)
    return int(count_a.sum())


def square_overlaps(const double[::1] qx, const double[::1] qy, Py_ssize_t i0, Py_ssize_t i1,
                    Py_ssize_t j0, Py_ssize_t j1):
    """Signed overlap areas of a quadrilateral with output pixels i0..i1 x j0..j1 (test hook).

    ``qx``, ``qy``: float64 corner coordinates (4 each, output pixel units, in
    the square kernel's corner order).  Returns float64 [j1-j0+1, i1-i0+1]:
    the area of the quadrilateral inside each pixel as the square kernel
    computes it, positive for clockwise corners (x right, y up; the kernel's
    order for a map that keeps orientation), i.e. minus the shoelace area.
    Raises ValueError for more than 64 pixels.
    """
    cdef double A[MAXCELLS]
    cdef double cx[4]
    cdef double cy[4]
    cdef Py_ssize_t k, ni = i1 - i0 + 1, nj = j1 - j0 + 1
    if qx.shape[0] != 4 or qy.shape[0] != 4:
        raise ValueError("qx and qy must hold 4 corners each")
    if ni < 1 or nj < 1 or ni * nj > MAXCELLS:
        raise ValueError(f"the block must have between 1 and {MAXCELLS} pixels, got {nj} x {ni}")
    for k in range(4):
        cx[k] = qx[k]
        cy[k] = qy[k]
    _square_overlaps(cx, cy, i0, i1, j0, j1, A)
    out = np.empty((nj, ni), dtype=np.float64)
    cdef double[:, ::1] o = out
    for k in range(ni * nj):
        o[k // ni, k % ni] = A[k]
    return out


cdef float _select(float* v, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """k-th smallest (0-based) of v[0:n] (v is reordered): quickselect, median-of-3 pivot."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, mid
    cdef float pivot, t
    while hi > lo:
        mid = lo + (hi - lo) // 2
        # order v[lo], v[mid], v[hi]; the middle one is the pivot
        if v[mid] < v[lo]:
            t = v[mid]; v[mid] = v[lo]; v[lo] = t
        if v[hi] < v[lo]:
            t = v[hi]; v[hi] = v[lo]; v[lo] = t
        if v[hi] < v[mid]:
            t = v[hi]; v[hi] = v[mid]; v[mid] = t
        pivot = v[mid]
        i = lo
        j = hi
        while i <= j:
            while v[i] < pivot:
                i += 1
            while v[j] > pivot:
                j -= 1
            if i <= j:
                t = v[i]; v[i] = v[j]; v[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return v[k]
    return v[k]


def tile_medians(const float[:, ::1] var, const cnp.uint8_t[:, ::1] good, Py_ssize_t block,
                 int nthreads=1):
    """Median of the usable values of every ``block`` x ``block`` tile.

    A value is usable where ``good`` is non-zero and it is finite and > 0.
    Tiles start at (0, 0); the last ones are cut by the image edges.  Returns
    float32 [ceil(ny/block), ceil(nx/block)], NaN for tiles without usable
    values; an even count gives the float32 mean of the two middle values
    (as ``numpy.nanmedian`` of float32 data).
    """
    cdef Py_ssize_t ny = var.shape[0], nx = var.shape[1]
    if good.shape[0] != ny or good.shape[1] != nx:
        raise ValueError("var and good shapes disagree")
    if block < 1:
        raise ValueError("block must be >= 1")
    cdef Py_ssize_t by = (ny + block - 1) // block, bx = (nx + block - 1) // block
    out_a = np.empty((by, bx), dtype=np.float32)
    cdef float[:, ::1] out = out_a
    cdef Py_ssize_t tb, tx, y, x, n, y1, x1
    cdef float* buf
    cdef float a, b, fnan = np.nan
    with nogil:
        for tb in prange(by, schedule="dynamic", num_threads=nthreads):
            buf = <float*>malloc(block * block * sizeof(float))
            if buf == NULL:
                for tx in range(bx):
                    out[tb, tx] = fnan
                continue
            for tx in range(bx):
                n = 0
                y1 = min(ny, (tb + 1) * block)
                x1 = min(nx, (tx + 1) * block)
                for y in range(tb * block, y1):
                    for x in range(tx * block, x1):
                        a = var[y, x]
                        if good[y, x] != 0 and isfinite(a) and a > 0:
                            buf[n] = a
                            n = n + 1
                if n == 0:
                    out[tb, tx] = fnan
                    continue
                a = _select(buf, n, (n - 1) // 2)
                if n % 2 == 1:
                    out[tb, tx] = a
                else:
                    # the next order statistic: the least value above position (n-1)//2
                    b = buf[n // 2]
                    for x in range(n // 2 + 1, n):
                        if buf[x] < b:
                            b = buf[x]
                    out[tb, tx] = (a + b) / <float>2.0
            free(buf)
    return out_a


def finalize_variance(const float[:, ::1] vsum, const float[:, ::1] vwht, double psr,
                      int nthreads=1):
    """Combined variance ``vsum / psr**2 / vwht**2`` (float64 arithmetic) where ``vwht > 0``, else NaN.

    Returns a new float32 array of the shape of ``vsum``.
    """
    cdef Py_ssize_t ny = vsum.shape[0], nx = vsum.shape[1], y, x
    cdef double s, w, p2 = psr * psr
    cdef float fnan = np.nan
    if vwht.shape[0] != ny or vwht.shape[1] != nx:
        raise ValueError("vsum and vwht shapes disagree")
    out_a = np.empty((ny, nx), dtype=np.float32)
    cdef float[:, ::1] out = out_a
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        for x in range(nx):
            w = vwht[y, x]
            if w > 0.0:
                s = vsum[y, x]
                out[y, x] = <float>(s / p2 / w / w)
            else:
                out[y, x] = fnan
    return out_a


def fill_empty(float[:, ::1] out, const float[:, ::1] wht, float fillval, int nthreads=1):
    """Set ``out`` to ``fillval`` wherever ``wht == 0``."""
    cdef Py_ssize_t ny = out.shape[0], nx = out.shape[1], y, x
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        for x in range(nx):
            if wht[y, x] == 0.0:
                out[y, x] = fillval


def blot(const float[:, ::1] image, const double[:, :, ::1] pixmap, double iscale,
         float fillval, int nthreads=1):
    """Bilinear interpolation of ``image`` at the output positions in ``pixmap``.

    ``out[j, i] = iscale * image(X, Y)`` with ``(X, Y) = pixmap[j, i]``.  A
    position is valid when ``0 <= X < Nx`` and ``0 <= Y < Ny``; on the last
    column (row) only the neighbour along the other axis is used.  Invalid or
    NaN positions get ``fillval``.  NaN image values propagate.
    """
    cdef Py_ssize_t ny = pixmap.shape[0], nx = pixmap.shape[1]
    cdef Py_ssize_t iny = image.shape[0], inx = image.shape[1]
    out_a = np.empty((ny, nx), dtype=np.float32)
    cdef float[:, ::1] out = out_a
    cdef Py_ssize_t i, j, x0, y0, x1, y1
    cdef double X, Y, fx, fy, v
    for j in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        for i in range(nx):
            X = pixmap[j, i, 0]
            Y = pixmap[j, i, 1]
            if not (X >= 0.0 and X < inx and Y >= 0.0 and Y < iny):
                out[j, i] = fillval
                continue
            x0 = <Py_ssize_t>X
            y0 = <Py_ssize_t>Y
            fx = X - x0
            fy = Y - y0
            x1 = x0 + 1
            y1 = y0 + 1
            if x1 >= inx:
                x1 = x0
                fx = 0.0
            if y1 >= iny:
                y1 = y0
                fy = 0.0
            # terms with zero weight are left out so that a NaN neighbour
            # does not spoil a position that falls exactly on a pixel
            v = (1.0 - fx) * (1.0 - fy) * image[y0, x0]
            if fx > 0.0:
                v = v + fx * (1.0 - fy) * image[y0, x1]
            if fy > 0.0:
                v = v + (1.0 - fx) * fy * image[y1, x0]
                if fx > 0.0:
                    v = v + fx * fy * image[y1, x1]
            out[j, i] = <float>(v * iscale)
    return out_a
