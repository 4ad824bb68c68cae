"""Slow reference implementations of the drizzle kernels, for tests only.

Written straight from ALGORITHMS.md §6.3-6.4 with plain Python loops:
* square: corners of the shrunken pixel from a bilinear interpolation of the
  pixmap on the nearest 2x2 cell (clamped at edges and extrapolated), then the
  exact area of the quadrilateral inside each output pixel by
  Sutherland-Hodgman clipping and the shoelace formula;
* point / turbo / gaussian / lanczos: the formulas of §6.3;
* the weighted-mean update of §6.4;
* bilinear blot.
"""

import math

import numpy as np


# ------------------------------------------------------------------ geometry
def shoelace(poly):
    """Signed area of a polygon given as a list of (x, y)."""
    n = len(poly)
    if n < 3:
        return 0.0
    s = 0.0
    for k in range(n):
        x1, y1 = poly[k]
        x2, y2 = poly[(k + 1) % n]
        s += x1 * y2 - x2 * y1
    return 0.5 * s


def clip_polygon(poly, xmin, xmax, ymin, ymax):
    """Sutherland-Hodgman clip of ``poly`` against an axis-aligned rectangle."""

    def clip(points, inside, intersect):
        out = []
        n = len(points)
        for k in range(n):
            cur = points[k]
            prev = points[k - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(intersect(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(intersect(prev, cur))
        return out

    def at_x(x0):
        def f(p, q):
            t = (x0 - p[0]) / (q[0] - p[0])
            return (x0, p[1] + t * (q[1] - p[1]))
        return f

    def at_y(y0):
        def f(p, q):
            t = (y0 - p[1]) / (q[1] - p[1])
            return (p[0] + t * (q[0] - p[0]), y0)
        return f

    pts = list(poly)
    for inside, inter in (
        (lambda p: p[0] >= xmin, at_x(xmin)),
        (lambda p: p[0] <= xmax, at_x(xmax)),
        (lambda p: p[1] >= ymin, at_y(ymin)),
        (lambda p: p[1] <= ymax, at_y(ymax)),
    ):
        if not pts:
            break
        pts = clip(pts, inside, inter)
    return pts


def interp_pixmap(pixmap, x, y):
    """Bilinear interpolation of the pixmap at input position (x, y).

    The 2x2 cell containing (x, y) is clamped to the array and extrapolated.
    """
    ny, nx = pixmap.shape[:2]
    x0 = min(max(int(math.floor(x)), 0), nx - 2)
    y0 = min(max(int(math.floor(y)), 0), ny - 2)
    fx = x - x0
    fy = y - y0
    p00 = pixmap[y0, x0]
    p10 = pixmap[y0, x0 + 1]
    p01 = pixmap[y0 + 1, x0]
    p11 = pixmap[y0 + 1, x0 + 1]
    v = (1 - fx) * (1 - fy) * p00 + fx * (1 - fy) * p10 + (1 - fx) * fy * p01 + fx * fy * p11
    return float(v[0]), float(v[1])


def pixel_quad(pixmap, i, j, pixfrac):
    """Output-frame corners of input pixel (i, j) shrunk by pixfrac (None if unmapped)."""
    dh = 0.5 * pixfrac
    corners = [(i - dh, j + dh), (i + dh, j + dh), (i + dh, j - dh), (i - dh, j - dh)]
    quad = [interp_pixmap(pixmap, x, y) for x, y in corners]
    if not np.all(np.isfinite(quad)):
        return None
    return quad


def fraction_inside(quad, out_shape):
    """Fraction of the quadrilateral's area inside the output image."""
    ny, nx = out_shape
    a = shoelace(quad)
    clipped = clip_polygon(quad, -0.5, nx - 0.5, -0.5, ny - 0.5)
    return shoelace(clipped) / a


# ------------------------------------------------------------------ kernels
def _drops(kernel, pixmap, i, j, pixfrac, pscale, out_shape):
    """List of (ii, jj, dow/w) for input pixel (i, j)."""
    ny, nx = out_shape
    X, Y = pixmap[j, i]
    if not (np.isfinite(X) and np.isfinite(Y)):
        return []
    drops = []
    if kernel == "square":
        quad = pixel_quad(pixmap, i, j, pixfrac)
        if quad is None:
            return []
        area = shoelace(quad)
        xs = [q[0] for q in quad]
        ys = [q[1] for q in quad]
        for jj in range(max(0, int(math.floor(min(ys))) - 1), min(ny, int(math.ceil(max(ys))) + 2)):
            for ii in range(max(0, int(math.floor(min(xs))) - 1), min(nx, int(math.ceil(max(xs))) + 2)):
                part = shoelace(clip_polygon(quad, ii - 0.5, ii + 0.5, jj - 0.5, jj + 0.5))
                if part != 0.0:
                    drops.append((ii, jj, part / area))
    elif kernel == "point":
        ii = int(math.floor(X + 0.5))
        jj = int(math.floor(Y + 0.5))
        if 0 <= ii < nx and 0 <= jj < ny:
            drops.append((ii, jj, 1.0))
    elif kernel == "turbo":
        h = 0.5 * pixfrac / pscale
        for jj in range(ny):
            oy = min(Y + h, jj + 0.5) - max(Y - h, jj - 0.5)
            if oy <= 0:
                continue
            for ii in range(nx):
                ox = min(X + h, ii + 0.5) - max(X - h, ii - 0.5)
                if ox > 0:
                    drops.append((ii, jj, ox * oy * pscale**2 / pixfrac**2))
    elif kernel == "gaussian":
        pfo = max(2.5 * pixfrac / 2.3548 / pscale, 1.2 / pscale)
        efac = 2.3548**2 * pscale**2 / (2 * pixfrac**2)
        for jj in range(int(math.floor(Y - pfo + 0.5)), int(math.floor(Y + pfo + 0.5)) + 1):
            for ii in range(int(math.floor(X - pfo + 0.5)), int(math.floor(X + pfo + 0.5)) + 1):
                if 0 <= ii < nx and 0 <= jj < ny:
                    r2 = (X - ii) ** 2 + (Y - jj) ** 2
                    drops.append((ii, jj, efac / math.pi * math.exp(-r2 * efac)))
    elif kernel in ("lanczos2", "lanczos3"):
        a = int(kernel[-1])
        step = 0.003
        nlut = int(math.ceil(a / step)) + 1

        def lut(k):
            x = k * step
            if k == 0:
                return 1.0
            if x > a:
                return 0.0
            px = math.pi * x
            return math.sin(px) * math.sin(px / a) / (px * px / a)

        pfo = a / pscale
        for jj in range(int(math.floor(Y - pfo)) + 1, int(math.floor(Y + pfo)) + 1):
            lj = int(math.floor(abs(Y - jj) * pscale / step + 0.5))
            if lj >= nlut or not 0 <= jj < ny:
                continue
            for ii in range(int(math.floor(X - pfo)) + 1, int(math.floor(X + pfo)) + 1):
                li = int(math.floor(abs(X - ii) * pscale / step + 0.5))
                if li >= nlut or not 0 <= ii < nx:
                    continue
                drops.append((ii, jj, lut(li) * lut(lj)))
    else:
        raise ValueError(kernel)
    return drops


def drizzle(data, weight, pixmap, out_shape, *, kernel="square", pixfrac=1.0, pscale=1.0,
            iscale=1.0, out=None, wht=None):
    """Weighted-mean drizzle of one image; returns (out, wht) as float64 arrays."""
    ny_in, nx_in = data.shape
    if out is None:
        out = np.zeros(out_shape)
        wht = np.zeros(out_shape)
    for j in range(ny_in):
        for i in range(nx_in):
            w = float(weight[j, i])
            d = float(data[j, i]) * iscale
            if not (w > 0) or not np.isfinite(d):
                continue
            for ii, jj, f in _drops(kernel, pixmap, i, j, pixfrac, pscale, out_shape):
                dow = f * w
                if dow == 0:
                    continue
                if wht[jj, ii] == 0:
                    out[jj, ii] = d
                else:
                    out[jj, ii] = (out[jj, ii] * wht[jj, ii] + d * dow) / (wht[jj, ii] + dow)
                wht[jj, ii] += dow
    return out, wht


def blot(image, pixmap, fillval=np.nan):
    """Bilinear sampling of ``image`` at every pixmap position."""
    ny, nx = pixmap.shape[:2]
    iny, inx = image.shape
    out = np.full((ny, nx), fillval, dtype=np.float64)
    for j in range(ny):
        for i in range(nx):
            X, Y = pixmap[j, i]
            if not (0 <= X < inx and 0 <= Y < iny):
                continue
            x0, y0 = int(X), int(Y)
            fx, fy = X - x0, Y - y0
            if x0 == inx - 1:  # last column: interpolate along y only
                fx = 0.0
            if y0 == iny - 1:
                fy = 0.0
            total = 0.0
            for dx, wx in ((0, 1 - fx), (1, fx)):
                for dy, wy in ((0, 1 - fy), (1, fy)):
                    if wx * wy > 0:
                        total += wx * wy * image[y0 + dy, x0 + dx]
            out[j, i] = total
    return out
