# cython: language_level=3
"""Blot kernels: the median image sampled at input-pixel positions.

* :func:`sharpen_fill` - the median with non-finite values replaced by a fill
  value and sharpened by ``c - h * laplacian(c)`` (5-point Laplacian, edges
  replicated), as float64: the input of the cubic B-spline prefilter;
* :func:`spline_prefilter` - the cubic B-spline interpolation coefficients
  of an image (mirror boundary), in place;
* :func:`near_nonfinite` - where a non-finite median value lies within a
  (2g+1)^2 box;
* :func:`spline_blot` - per input pixel, the cubic B-spline interpolation of
  prefiltered coefficients (mirror extension at the edges) at its pixel-map
  position, falling back to the bilinear blot near non-finite values of the
  median and on the median's last row / column.

Arrays in, arrays out; every per-pixel loop runs without the GIL, in parallel
over rows.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport fabs, isfinite, sqrt, NAN

ctypedef cnp.uint8_t u8

cnp.import_array()


cdef inline double _filled(const float *row, Py_ssize_t x, double fill) noexcept nogil:
    cdef double v = row[x]
    return v if isfinite(v) else fill


cdef void _sharpen_row(const float *up, const float *mid, const float *down, double *o,
                       Py_ssize_t nx, double fill, double half_variance) noexcept nogil:
    cdef Py_ssize_t x, xl, xr
    cdef double c, lap
    for x in range(nx):
        c = _filled(mid, x, fill)
        if half_variance == 0.0:
            o[x] = c
            continue
        xl = x - 1 if x > 0 else 0
        xr = x + 1 if x + 1 < nx else nx - 1
        lap = (((_filled(mid, xl, fill) + _filled(mid, xr, fill))
                + _filled(up, x, fill)) + _filled(down, x, fill)) - 4.0 * c
        o[x] = c - half_variance * lap


def sharpen_fill(const float[:, ::1] med, double fill, double half_variance, int nthreads=1):
    """float64 ``c - half_variance * lap(c)``, ``c`` = ``med`` with non-finite -> ``fill``.

    ``lap(c) = ((c[y, x-1] + c[y, x+1]) + c[y-1, x]) + c[y+1, x] - 4 c[y, x]``
    with the edge values repeated outside the image.  ``half_variance == 0``
    returns ``c`` itself.
    """
    cdef Py_ssize_t ny = med.shape[0], nx = med.shape[1], y, yu, yd
    out_a = np.empty((ny, nx), dtype=np.float64)
    cdef double[:, ::1] out = out_a
    if nthreads < 1:
        nthreads = 1
    if ny == 0 or nx == 0:
        return out_a
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        yu = y - 1 if y > 0 else 0
        yd = y + 1 if y + 1 < ny else ny - 1
        _sharpen_row(&med[yu, 0], &med[y, 0], &med[yd, 0], &out[y, 0], nx, fill,
                     half_variance)
    return out_a


# --------------------------------------------------------------------------- prefilter
# Cubic B-spline interpolation coefficients (Unser's recursive filter): one pole
# z = sqrt(3) - 2, gain (1 - z)(1 - 1/z) = 6; mirror-symmetric extension of each
# line (period 2n - 2).  The causal initial value is the sum over the mirrored
# line, truncated after _HORIZON terms for long lines (|z|**60 < 1e-34).
cdef enum:
    _HORIZON = 60


cdef void _filter_line(double *c, Py_ssize_t n, Py_ssize_t stride, double z) noexcept nogil:
    cdef Py_ssize_t i
    cdef double zi, zn1, acc
    if n < 2:
        return
    for i in range(n):
        c[i * stride] = 6.0 * c[i * stride]
    if n <= _HORIZON:
        # exact: sum_k z^k c~[k] over one period of the mirrored line
        zn1 = 1.0
        for i in range(n - 1):
            zn1 = zn1 * z
        acc = c[0] + zn1 * c[(n - 1) * stride]
        zi = z
        for i in range(1, n - 1):
            acc = acc + zi * (c[i * stride] + zn1 * c[(n - 1 - i) * stride])
            zi = zi * z
        c[0] = acc / (1.0 - zn1 * zn1)
    else:
        acc = c[0]
        zi = z
        for i in range(1, _HORIZON):
            acc = acc + zi * c[i * stride]
            zi = zi * z
        c[0] = acc
    for i in range(1, n):
        c[i * stride] = c[i * stride] + z * c[(i - 1) * stride]
    c[(n - 1) * stride] = (z / (z * z - 1.0)) * (c[(n - 1) * stride] + z * c[(n - 2) * stride])
    for i in range(n - 2, -1, -1):
        c[i * stride] = z * (c[(i + 1) * stride] - c[i * stride])


cdef void _filter_columns(double *c, Py_ssize_t ny, Py_ssize_t nx, Py_ssize_t x0,
                          Py_ssize_t x1, double z, double *acc) noexcept nogil:
    # The same recursion along axis 0 for columns x0:x1, one row of the band at a time
    # (contiguous inner loops).  ``acc`` holds x1 - x0 doubles.
    cdef Py_ssize_t y, x, w = x1 - x0, k
    cdef double zi, zn1, g = z / (z * z - 1.0)
    cdef double *r
    cdef double *q
    if ny < 2:
        return
    for y in range(ny):
        r = c + y * nx + x0
        for x in range(w):
            r[x] = 6.0 * r[x]
    if ny <= _HORIZON:
        zn1 = 1.0
        for k in range(ny - 1):
            zn1 = zn1 * z
        r = c + x0
        q = c + (ny - 1) * nx + x0
        for x in range(w):
            acc[x] = r[x] + zn1 * q[x]
        zi = z
        for k in range(1, ny - 1):
            r = c + k * nx + x0
            q = c + (ny - 1 - k) * nx + x0
            for x in range(w):
                acc[x] = acc[x] + zi * (r[x] + zn1 * q[x])
            zi = zi * z
        r = c + x0
        for x in range(w):
            r[x] = acc[x] / (1.0 - zn1 * zn1)
    else:
        r = c + x0
        for x in range(w):
            acc[x] = r[x]
        zi = z
        for k in range(1, _HORIZON):
            r = c + k * nx + x0
            for x in range(w):
                acc[x] = acc[x] + zi * r[x]
            zi = zi * z
        r = c + x0
        for x in range(w):
            r[x] = acc[x]
    for y in range(1, ny):
        r = c + y * nx + x0
        q = r - nx
        for x in range(w):
            r[x] = r[x] + z * q[x]
    r = c + (ny - 1) * nx + x0
    q = r - nx
    for x in range(w):
        r[x] = g * (r[x] + z * q[x])
    for y in range(ny - 2, -1, -1):
        r = c + y * nx + x0
        q = r + nx
        for x in range(w):
            r[x] = z * (q[x] - r[x])


def spline_prefilter(double[:, ::1] coef, int nthreads=1):
    """Replace ``coef`` (in place) by its cubic B-spline coefficients, mirror boundary.

    Axis 0 first, then axis 1, as ``scipy.ndimage.spline_filter(order=3,
    mode="mirror")``; agrees with it to rounding (the causal initial sums of
    lines longer than 60 pixels are truncated where ``|z|**k < 1e-34``).
    """
    cdef Py_ssize_t ny = coef.shape[0], nx = coef.shape[1], y, b, nb, x0, x1
    cdef double z = sqrt(3.0) - 2.0
    cdef double *base
    cdef double *acc
    if ny == 0 or nx == 0:
        return
    if nthreads < 1:
        nthreads = 1
    base = &coef[0, 0]
    # column bands of 256 (2 kB of accumulators per band)
    nb = (nx + 255) // 256
    acc_arr = np.empty((nb, 256), dtype=np.float64)
    cdef double[:, ::1] accs = acc_arr
    acc = &accs[0, 0]
    for b in prange(nb, nogil=True, schedule="dynamic", num_threads=nthreads):
        x0 = b * 256
        x1 = x0 + 256 if x0 + 256 < nx else nx
        _filter_columns(base, ny, nx, x0, x1, z, acc + b * 256)
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        _filter_line(base + y * nx, nx, 1, z)


def near_nonfinite(const float[:, ::1] med, int guard, int nthreads=1):
    """uint8: 1 where a non-finite value of ``med`` lies within ``guard`` pixels.

    The neighbourhood is the (2*guard+1)^2 box (Chebyshev distance <= guard)
    clipped at the image edges.
    """
    if guard < 0:
        raise ValueError(f"guard={guard}: must be >= 0")
    cdef Py_ssize_t ny = med.shape[0], nx = med.shape[1], y, j, j0, j1
    bad_a = np.empty((ny, nx), dtype=np.uint8)
    rows_a = np.empty((ny, nx), dtype=np.uint8)
    out_a = np.empty((ny, nx), dtype=np.uint8)
    cdef u8[:, ::1] bad = bad_a
    cdef u8[:, ::1] rows = rows_a
    cdef u8[:, ::1] out = out_a
    if nthreads < 1:
        nthreads = 1
    if ny == 0 or nx == 0:
        return out_a
    # flags, then OR of shifted copies along rows and along columns (separable box);
    # row pointers keep the byte stores from aliasing the array descriptors
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        _near_row(&med[y, 0], &bad[y, 0], &rows[y, 0], nx, guard)
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        j0 = y - guard if y >= guard else 0
        j1 = y + guard if y + guard < ny else ny - 1
        _or_rows(&rows[j0, 0], j1 - j0 + 1, nx, &out[y, 0])
    return out_a


cdef void _near_row(const float *m, u8 *b, u8 *r, Py_ssize_t nx, int guard) noexcept nogil:
    cdef Py_ssize_t x, d
    for x in range(nx):
        b[x] = 0 if isfinite(m[x]) else 1
    for x in range(nx):
        r[x] = b[x]
    for d in range(1, guard + 1):
        for x in range(d, nx):
            r[x] = r[x] | b[x - d]
        for x in range(nx - d):
            r[x] = r[x] | b[x + d]


cdef void _or_rows(const u8 *first, Py_ssize_t nrows, Py_ssize_t nx, u8 *o) noexcept nogil:
    # o = OR of nrows consecutive rows (stride nx) starting at first
    cdef Py_ssize_t j, x
    cdef const u8 *r
    for x in range(nx):
        o[x] = first[x]
    for j in range(1, nrows):
        r = first + j * nx
        for x in range(nx):
            o[x] = o[x] | r[x]


cdef inline Py_ssize_t _mirror(Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    # Reflection about the edge pixel centres: ... c b | a b c ... x y | x w ...
    cdef Py_ssize_t period
    if n == 1:
        return 0
    period = 2 * (n - 1)
    if i < 0:
        i = -i
    if i >= period:
        i = i % period
    if i > n - 1:
        i = period - i
    return i


cdef inline void _weights(double t, double *w) noexcept nogil:
    # Cubic B-spline weights of the taps at floor(p) - 1 ... floor(p) + 2, t = p - floor(p).
    cdef double s = 1.0 - t, t2 = t * t, t3 = t2 * t
    w[0] = s * s * s / 6.0
    w[1] = (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0
    w[2] = (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0
    w[3] = t3 / 6.0


cdef inline float _bilinear(const float *med, Py_ssize_t gy, Py_ssize_t gx,
                            double X, double Y) noexcept nogil:
    # The bilinear blot of a valid position (0 <= X < gx, 0 <= Y < gy): on the
    # last column (row) only the other axis is interpolated; terms of zero
    # weight are left out, so a NaN neighbour does not spoil an exact position.
    cdef Py_ssize_t x0 = <Py_ssize_t> X, y0 = <Py_ssize_t> Y, x1, y1
    cdef double fx = X - x0, fy = Y - y0, v
    x1 = x0 + 1
    y1 = y0 + 1
    if x1 >= gx:
        x1 = x0
        fx = 0.0
    if y1 >= gy:
        y1 = y0
        fy = 0.0
    v = (1.0 - fx) * (1.0 - fy) * med[y0 * gx + x0]
    if fx > 0.0:
        v = v + fx * (1.0 - fy) * med[y0 * gx + x1]
    if fy > 0.0:
        v = v + (1.0 - fx) * fy * med[y1 * gx + x0]
        if fx > 0.0:
            v = v + fx * fy * med[y1 * gx + x1]
    return <float> v


cdef inline double _spline(const double *coef, Py_ssize_t gy, Py_ssize_t gx,
                           double X, double Y) noexcept nogil:
    # X, Y >= 0 here, so truncation is floor (libm floor is a call on baseline x86-64).
    cdef Py_ssize_t i, j
    cdef Py_ssize_t fx0 = <Py_ssize_t> X, fy0 = <Py_ssize_t> Y
    cdef double wx[4]
    cdef double wy[4]
    cdef Py_ssize_t ix[4]
    cdef Py_ssize_t iy[4]
    cdef double total = 0.0
    cdef const double *r
    _weights(X - fx0, wx)
    _weights(Y - fy0, wy)
    if fx0 >= 1 and fx0 + 2 < gx:
        for i in range(4):
            ix[i] = fx0 - 1 + i
    else:
        for i in range(4):
            ix[i] = _mirror(fx0 - 1 + i, gx)
    if fy0 >= 1 and fy0 + 2 < gy:
        for i in range(4):
            iy[i] = fy0 - 1 + i
    else:
        for i in range(4):
            iy[i] = _mirror(fy0 - 1 + i, gy)
    for j in range(4):
        r = coef + iy[j] * gx
        total = total + wy[j] * (wx[0] * r[ix[0]] + wx[1] * r[ix[1]]
                                 + wx[2] * r[ix[2]] + wx[3] * r[ix[3]])
    return total


cdef inline Py_ssize_t _round_half_even(double v) noexcept nogil:
    # rint() of a non-negative value in the default rounding mode, without a libm call.
    cdef Py_ssize_t f = <Py_ssize_t> v
    cdef double frac = v - f
    if frac > 0.5 or (frac == 0.5 and (f & 1)):
        return f + 1
    return f


cdef void _blot_row(const float *med, const double *coef, const u8 *near, Py_ssize_t gy,
                    Py_ssize_t gx, const double *pm, Py_ssize_t nx, float *o) noexcept nogil:
    cdef Py_ssize_t i, rx, ry
    cdef double X, Y
    for i in range(nx):
        X = pm[2 * i]
        Y = pm[2 * i + 1]
        if not (X >= 0.0 and X < gx and Y >= 0.0 and Y < gy):
            o[i] = NAN
            continue
        if X <= gx - 1 and Y <= gy - 1:
            rx = _round_half_even(X)
            ry = _round_half_even(Y)
            if not near[ry * gx + rx]:
                # no non-finite value within 3 pixels: the bilinear blot would be
                # finite, the spline is used
                o[i] = <float> _spline(coef, gy, gx, X, Y)
                continue
        o[i] = _bilinear(med, gy, gx, X, Y)


def spline_blot(const float[:, ::1] med, const double[:, ::1] coef, const u8[:, ::1] near,
                const double[:, :, ::1] pixmap, int nthreads=1):
    """float32 blot of ``med`` at the positions ``(X, Y) = pixmap[j, i]``.

    * NaN where the position is NaN or outside ``0 <= X < nx``, ``0 <= Y < ny``;
    * the cubic B-spline of the coefficients ``coef`` (the prefiltered image,
      same shape as ``med``; mirror extension at the edges) where
      ``X <= nx - 1``, ``Y <= ny - 1`` and ``near[rint(Y), rint(X)]`` is 0;
    * elsewhere the bilinear interpolation of ``med`` (NaN if a NaN value takes
      part).

    ``near`` must flag every pixel within at least 1 pixel of a non-finite value
    of ``med`` (:func:`near_nonfinite` with ``guard >= 1``): where it is 0 the
    bilinear interpolation is finite.
    """
    cdef Py_ssize_t gy = med.shape[0], gx = med.shape[1]
    cdef Py_ssize_t ny = pixmap.shape[0], nx = pixmap.shape[1], j
    if coef.shape[0] != gy or coef.shape[1] != gx or near.shape[0] != gy \
            or near.shape[1] != gx:
        raise ValueError("med, coef and near must have the same shape")
    if pixmap.shape[2] != 2:
        raise ValueError("pixmap must have shape (ny, nx, 2)")
    out_a = np.empty((ny, nx), dtype=np.float32)
    cdef float[:, ::1] out = out_a
    if nthreads < 1:
        nthreads = 1
    if ny == 0 or nx == 0:
        return out_a
    if gy == 0 or gx == 0:
        out_a.fill(np.nan)
        return out_a
    for j in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        _blot_row(&med[0, 0], &coef[0, 0], &near[0, 0], gy, gx, &pixmap[j, 0, 0], nx,
                  &out[j, 0])
    return out_a
