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

Parallelism: the output rows touched by an input are split into bands; each
thread owns one band at a time, scans the input rows that reach its band in
input order and writes only inside its band.  Every output pixel therefore
receives its updates in the same order as in a serial run, so results do not
depend on the number of threads.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport floor, ceil, exp, fabs, isfinite, M_PI

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
    """Index of the output pixel containing coordinate ``v``."""
    return <Py_ssize_t>floor(v + 0.5)


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


cdef struct Job:
    # input
    const float* data
    const float* weight
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
    # per-input window accumulators
    const float* aux_in
    float* aux_sum
    float* aux_wht
    Py_ssize_t naux
    Py_ssize_t wx0
    Py_ssize_t wy0
    Py_ssize_t wnx
    Py_ssize_t wny
    # row footprints
    const i64* row_jmin
    const i64* row_jmax
    const double* reach
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


cdef void _row_footprint(const Job* job, Py_ssize_t j, i64* jmin, i64* jmax,
                         i64* imin, i64* imax, double* reach) noexcept nogil:
    cdef Py_ssize_t i, i0, i1, j0, j1, p
    cdef double qx[4]
    cdef double qy[4]
    cdef double xlo, xhi, ylo, yhi, r, Y
    for i in range(job.nx):
        p = j * job.nx + i
        if not (job.weight[p] > 0.0) or not isfinite(job.data[p]):
            continue
        if not _footprint(job, i, j, qx, qy, &xlo, &xhi, &ylo, &yhi):
            continue
        _range(job.kernel, xlo, xhi, job.onx, &i0, &i1)
        _range(job.kernel, ylo, yhi, job.ony, &j0, &j1)
        if i0 > i1 or j0 > j1:
            continue
        if j0 < jmin[j]:
            jmin[j] = j0
        if j1 > jmax[j]:
            jmax[j] = j1
        if i0 < imin[j]:
            imin[j] = i0
        if i1 > imax[j]:
            imax[j] = i1
        Y = job.pm[2 * p + 1]
        r = Y - ylo
        if yhi - Y > r:
            r = yhi - Y
        if r > reach[j]:
            reach[j] = r


cdef inline void _drop(const Job* job, Py_ssize_t jj, Py_ssize_t ii, double d, double dow,
                       Py_ssize_t p) noexcept nogil:
    """Deposit value d with weight dow on output pixel (ii, jj) from input pixel p."""
    cdef Py_ssize_t q, a, npix
    cdef double w, wn
    if dow == 0.0:
        return
    if job.do_main:
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
        q = (jj - job.wy0) * job.wnx + (ii - job.wx0)
        job.aux_wht[q] += <float>dow
        npix = job.nx * job.ny
        for a in range(job.naux):
            job.aux_sum[a * job.wnx * job.wny + q] += <float>(dow * job.iscale * job.aux_in[a * npix + p])


cdef i64 _process_band(const Job* job, Py_ssize_t by0, Py_ssize_t by1) noexcept nogil:
    """Drop every contributing input pixel onto output rows by0..by1 only."""
    cdef Py_ssize_t i, j, p, ii, jj, i0, i1, j0, j1, li, lj
    cdef double qx[4]
    cdef double qy[4]
    cdef double xlo, xhi, ylo, yhi, X, Y, d, w, jaco, dover, dow, ox, oy, r2
    cdef bint first_band
    cdef i64 count = 0
    cdef int kernel = job.kernel
    for j in range(job.ny):
        if job.row_jmax[j] < by0 or job.row_jmin[j] > by1:
            continue
        for i in range(job.nx):
            p = j * job.nx + i
            w = job.weight[p]
            if not (w > 0.0):
                continue
            d = job.data[p]
            if not isfinite(d):
                continue
            Y = job.pm[2 * p + 1]
            if not (Y + job.reach[j] >= by0 - 0.5) or not (Y - job.reach[j] < by1 + 0.5):
                continue
            if not _footprint(job, i, j, qx, qy, &xlo, &xhi, &ylo, &yhi):
                continue
            d = d * job.iscale
            X = job.pm[2 * p]
            _range(kernel, xlo, xhi, job.onx, &i0, &i1)
            _range(kernel, ylo, yhi, job.ony, &j0, &j1)
            if i0 > i1 or j0 > j1:
                continue
            # a pixel spanning several bands is counted by the band of its first row
            first_band = j0 >= by0 and j0 <= by1
            if j0 < by0:
                j0 = by0
            if j1 > by1:
                j1 = by1
            if first_band:
                count += 1
            if j0 > j1:
                continue
            if kernel == K_POINT:
                _drop(job, j0, i0, d, w, p)
            elif kernel == K_SQUARE:
                jaco = 0.5 * ((qx[1] - qx[3]) * (qy[0] - qy[2])
                              - (qx[0] - qx[2]) * (qy[1] - qy[3]))
                if jaco == 0.0:
                    continue
                for jj in range(j0, j1 + 1):
                    for ii in range(i0, i1 + 1):
                        dover = _boxer(<double>ii, <double>jj, qx, qy)
                        if dover != 0.0:
                            dow = dover * w / jaco
                            _drop(job, jj, ii, d, dow, p)
            elif kernel == K_TURBO:
                for jj in range(j0, j1 + 1):
                    oy = (yhi if yhi < jj + 0.5 else jj + 0.5) - (ylo if ylo > jj - 0.5 else jj - 0.5)
                    if oy <= 0.0:
                        continue
                    for ii in range(i0, i1 + 1):
                        ox = (xhi if xhi < ii + 0.5 else ii + 0.5) - (xlo if xlo > ii - 0.5 else ii - 0.5)
                        if ox <= 0.0:
                            continue
                        _drop(job, jj, ii, d, ox * oy * job.turbo_norm * w, p)
            elif kernel == K_GAUSSIAN:
                for jj in range(j0, j1 + 1):
                    for ii in range(i0, i1 + 1):
                        r2 = (X - ii) * (X - ii) + (Y - jj) * (Y - jj)
                        _drop(job, jj, ii, d, job.gnorm * exp(-r2 * job.efac) * w, p)
            else:
                for jj in range(j0, j1 + 1):
                    lj = <Py_ssize_t>floor(fabs(Y - jj) * job.pscale / LANCZOS_LUT_STEP + 0.5)
                    if lj >= job.nlut:
                        continue
                    for ii in range(i0, i1 + 1):
                        li = <Py_ssize_t>floor(fabs(X - ii) * job.pscale / LANCZOS_LUT_STEP + 0.5)
                        if li >= job.nlut:
                            continue
                        _drop(job, jj, ii, d, job.lut[li] * job.lut[lj] * w, p)
    return count


cdef Job _make_job(const float[:, ::1] data, const float[:, ::1] weight,
                   const double[:, :, ::1] pixmap, int kernel, double pixfrac,
                   double pscale, Py_ssize_t out_ny, Py_ssize_t out_nx):
    cdef Job job
    if data.shape[0] != pixmap.shape[0] or data.shape[1] != pixmap.shape[1] \
            or weight.shape[0] != data.shape[0] or weight.shape[1] != data.shape[1] \
            or pixmap.shape[2] != 2:
        raise ValueError("data, weight and pixmap shapes disagree")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError("empty input")
    if kernel < K_SQUARE or kernel > K_LANCZOS3:
        raise ValueError(f"unknown kernel code {kernel}")
    if kernel != K_SQUARE and kernel != K_POINT and not (pscale > 0.0):
        raise ValueError("pscale must be > 0 for this kernel")
    if (kernel == K_SQUARE or kernel == K_TURBO or kernel == K_GAUSSIAN) and not (pixfrac > 0.0):
        raise ValueError("pixfrac must be > 0 for this kernel")
    job.data = &data[0, 0]
    job.weight = &weight[0, 0]
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
    job.aux_in = NULL
    job.aux_sum = NULL
    job.aux_wht = NULL
    job.naux = 0
    job.wx0 = 0
    job.wy0 = 0
    job.wnx = 0
    job.wny = 0
    job.row_jmin = NULL
    job.row_jmax = NULL
    job.reach = NULL
    job.lut = NULL
    job.nlut = 0
    job.do_main = False
    job.do_ctx = False
    job.do_aux = False
    return job


def footprint_rows(const float[:, ::1] data, const float[:, ::1] weight,
                   const double[:, :, ::1] pixmap, int kernel, double pixfrac,
                   double pscale, Py_ssize_t out_ny, Py_ssize_t out_nx, int nthreads=1):
    """Per input row: the output rows and columns its contributing pixels touch.

    Only pixels with weight > 0 and finite data count.  Returns int64 arrays
    ``(jmin, jmax, imin, imax)`` clipped to the output (``jmin > jmax`` for a
    row that touches nothing) and float64 ``reach``: the largest distance in Y
    between a pixel's centre and the edge of its drop.
    """
    cdef Job job = _make_job(data, weight, pixmap, kernel, pixfrac, pscale, out_ny, out_nx)
    cdef Py_ssize_t ny = job.ny, j
    jmin_a = np.full(ny, out_ny, dtype=np.int64)
    jmax_a = np.full(ny, -1, dtype=np.int64)
    imin_a = np.full(ny, out_nx, dtype=np.int64)
    imax_a = np.full(ny, -1, dtype=np.int64)
    reach_a = np.zeros(ny, dtype=np.float64)
    cdef i64[::1] jmin = jmin_a, jmax = jmax_a, imin = imin_a, imax = imax_a
    cdef double[::1] reach = reach_a
    for j in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        _row_footprint(&job, j, &jmin[0], &jmax[0], &imin[0], &imax[0], &reach[0])
    return jmin_a, jmax_a, imin_a, imax_a, reach_a


def drizzle_add(const float[:, ::1] data, const float[:, ::1] weight,
                const double[:, :, ::1] pixmap,
                float[:, ::1] out, float[:, ::1] wht, u32[:, :, ::1] ctx,
                const float[:, :, ::1] aux_in, float[:, :, ::1] aux_sum, float[:, ::1] aux_wht,
                const i64[::1] row_jmin, const i64[::1] row_jmax, const double[::1] row_reach,
                const double[::1] lut,
                int kernel, double pixfrac, double pscale, double iscale,
                int ctx_plane, u32 ctx_bit, bint do_main, bint do_ctx, bint do_aux,
                Py_ssize_t wx0, Py_ssize_t wy0, Py_ssize_t band_y0, Py_ssize_t band_y1,
                int nbands, int nthreads):
    """Drizzle one input image.

    Parameters
    ----------
    data, weight : float32 [ny, nx]
        Input values and per-pixel weights.  Pixels with ``weight <= 0`` (or
        NaN) or non-finite data are skipped.
    pixmap : float64 [ny, nx, 2]
        Output (X, Y) of every input pixel centre.
    out, wht : float32 [Ny, Nx]
        Weighted-mean image and weight accumulators, updated in place when
        ``do_main``.
    ctx : uint32 [nplanes, Ny, Nx]
        Context planes; ``ctx_bit`` is OR-ed into plane ``ctx_plane`` where an
        input pixel adds positive weight (when ``do_ctx``).
    aux_in : float32 [naux, ny, nx]; aux_sum : float32 [naux, wy, wx]; aux_wht : float32 [wy, wx]
        When ``do_aux``: per-input sums ``sum(dow * aux_in * iscale)`` and
        ``sum(dow)`` on a window whose pixel (0, 0) is output pixel (wx0, wy0).
        The window must contain every output pixel this input touches.
    row_jmin, row_jmax, row_reach
        Output of :func:`footprint_rows` for this input (same kernel/pixfrac).
    lut : float64
        Lanczos look-up table (step ``LANCZOS_LUT_STEP``); unused otherwise.
    kernel, pixfrac, pscale, iscale
        Kernel code, drop-size fraction, output/input pixel-scale ratio and
        data scale factor.
    band_y0, band_y1 : output row range (inclusive) that is split into ``nbands``.

    Returns
    -------
    int
        The number of input pixels whose drop's pixel range (bounding box
        rounded to output pixels) overlaps the output rows ``band_y0..band_y1``.
    """
    cdef Job job = _make_job(data, weight, pixmap, kernel, pixfrac, pscale,
                             wht.shape[0], wht.shape[1])
    cdef Py_ssize_t span = band_y1 - band_y0 + 1
    cdef Py_ssize_t by0, by1
    cdef int b
    if row_jmin.shape[0] != job.ny or row_jmax.shape[0] != job.ny or row_reach.shape[0] != job.ny:
        raise ValueError("row footprints do not match the input")
    if out.shape[0] != wht.shape[0] or out.shape[1] != wht.shape[1]:
        raise ValueError("out and wht shapes disagree")
    if do_ctx:
        if ctx.shape[1] != wht.shape[0] or ctx.shape[2] != wht.shape[1]:
            raise ValueError("context shape disagrees with the output")
        if ctx_plane < 0 or ctx_plane >= ctx.shape[0]:
            raise ValueError("context plane out of range")
        job.ctx = &ctx[ctx_plane, 0, 0]
    if do_aux:
        if aux_in.shape[0] != aux_sum.shape[0] or aux_sum.shape[1] != aux_wht.shape[0] \
                or aux_sum.shape[2] != aux_wht.shape[1]:
            raise ValueError("aux arrays disagree")
        if aux_in.shape[0] > 0 and (aux_in.shape[1] != job.ny or aux_in.shape[2] != job.nx):
            raise ValueError("aux_in shape disagrees with the input")
        if wx0 < 0 or wy0 < 0 or wx0 + aux_wht.shape[1] > job.onx or wy0 + aux_wht.shape[0] > job.ony:
            raise ValueError("aux window outside the output")
        if band_y0 < wy0 or band_y1 >= wy0 + aux_wht.shape[0]:
            raise ValueError("band rows outside the aux window")
        job.naux = aux_in.shape[0]
        if job.naux > 0:
            job.aux_in = &aux_in[0, 0, 0]
            job.aux_sum = &aux_sum[0, 0, 0]
        job.aux_wht = &aux_wht[0, 0]
        job.wx0 = wx0
        job.wy0 = wy0
        job.wny = aux_wht.shape[0]
        job.wnx = aux_wht.shape[1]
    if kernel == K_LANCZOS2 or kernel == K_LANCZOS3:
        if lut.shape[0] < 1:
            raise ValueError("lanczos kernels need a look-up table")
        job.lut = &lut[0]
        job.nlut = lut.shape[0]
    job.out = &out[0, 0]
    job.wht = &wht[0, 0]
    job.ctx_bit = ctx_bit
    job.iscale = iscale
    job.do_main = do_main
    job.do_ctx = do_ctx
    job.do_aux = do_aux
    job.row_jmin = &row_jmin[0]
    job.row_jmax = &row_jmax[0]
    job.reach = &row_reach[0]
    if band_y0 < 0 or band_y1 >= job.ony:
        raise ValueError("band rows outside the output")
    if span <= 0 or nbands < 1:
        return 0
    counts_a = np.zeros(nbands, dtype=np.int64)
    cdef i64[::1] counts = counts_a
    for b in prange(nbands, nogil=True, schedule="dynamic", num_threads=nthreads):
        by0 = band_y0 + (span * b) // nbands
        by1 = band_y0 + (span * (b + 1)) // nbands - 1
        if by1 >= by0:
            counts[b] = _process_band(&job, by0, by1)
    return int(counts_a.sum())


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
