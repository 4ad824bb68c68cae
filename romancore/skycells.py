"""Sky tessellation into projection regions and skycells (ALGORITHMS.md §11).

romancore's own tessellation, with the SKYCELLS reference layout and conventions:

* **Projection regions.** The sphere is cut into declination bands of height
  H = 180°/57 ≈ 3.158°, plus two polar caps of radius H/2. Band k spans
  ``[−90 + H/2 + kH, −90 + H/2 + (k+1)H)`` and is divided in RA into n equal regions, n the
  smallest multiple of 4 with ``360°·cos(δ_eq)/n ≤ H`` (δ_eq the band edge nearest the
  equator), so regions are at most H wide on the sky. Region i of a band is centred on
  RA = i·360°/n (region 0 straddles RA 0). The tangent point is the region centre (the pole
  for a cap); ``orientat`` = 0 (north up at the tangent point). 4354 regions in all.
* **Region pixel grid.** TAN about the tangent point, 0.055″ pixels,
  ``pc = [[cos o, sin o], [−sin o, cos o]]`` (o = orientat, vparity +1: x grows eastwards),
  ``crpix`` = the tangent point's 0-based pixel. Skycells of 5000² pixels step by 4900 pixels
  (100-pixel overlap); cell (i, j) covers region pixels ``[4900 i, 4900 i + 5000)`` in x and
  likewise in y. The *core* of a cell is the cell less 50 pixels on each side; cores tile the
  region grid, and the grid is sized (and the region centred in it) so that the cores cover
  the whole region. Only cells whose core overlaps the region are kept.
* **Names** ``RRRsDDxXXyYY``: tangent RA rounded to 3 digits, ``p``/``m`` and |Dec| rounded to
  2 digits, then the cell's x and y ordinals (2 digits or more), e.g. ``270p65x21y17``.
* **Table** arrays have exactly the dtypes of the SKYCELLS reference file.
  ``projection_regions.index`` is the global region number (bands from the south, then RA),
  ``skycell_start``/``skycell_end`` index the ``skycells`` array of the same table (end
  exclusive). Skycell ``x_tangent``/``y_tangent`` are the region tangent point in the cell's own
  pixel frame, ``ra/dec_center`` the sky position of cell pixel (2499.5, 2499.5),
  ``ra/dec_corn1..4`` the outer pixel corners (−0.5, −0.5), (4999.5, −0.5), (4999.5, 4999.5),
  (−0.5, 4999.5), and ``orientat`` the position angle of the cell's +y axis at its centre.

:func:`make_skycell_table` builds the table for a sky area (a cone or an RA/Dec box); called with
no area it builds the whole sky: at most 7.81 million cells (the region grids hold 7,812,274;
cells outside their region are dropped), at most 1.3 GB of skycell rows (164 bytes each), about
0.1 s per region (4354 regions: several minutes). Do that once, offline, and save it as the
SKYCELLS reference file.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from typing import NamedTuple

import numpy as np

from .errors import ParameterError

log = logging.getLogger(__name__)

NXY_SKYCELL = 5000
SKYCELL_BORDER = 100
SKYCELL_PIXEL_SCALE = 0.055  # arcsec
CORE_MARGIN = SKYCELL_BORDER // 2
PITCH = NXY_SKYCELL - SKYCELL_BORDER
BAND_HEIGHT = 180.0 / 57.0

PROJECTION_REGION_DTYPE = np.dtype(
    [
        ("index", "<i4"), ("ra_tangent", "<f8"), ("dec_tangent", "<f8"),
        ("ra_min", "<f8"), ("ra_max", "<f8"), ("dec_min", "<f8"), ("dec_max", "<f8"),
        ("orientat", "<f4"), ("x_tangent", "<f8"), ("y_tangent", "<f8"),
        ("nx", "<i4"), ("ny", "<i4"), ("skycell_start", "<i4"), ("skycell_end", "<i4"),
    ]
)
SKYCELL_DTYPE = np.dtype(
    [
        ("name", "<U16"), ("ra_center", "<f8"), ("dec_center", "<f8"), ("orientat", "<f4"),
        ("x_tangent", "<f8"), ("y_tangent", "<f8"),
        ("ra_corn1", "<f8"), ("dec_corn1", "<f8"), ("ra_corn2", "<f8"), ("dec_corn2", "<f8"),
        ("ra_corn3", "<f8"), ("dec_corn3", "<f8"), ("ra_corn4", "<f8"), ("dec_corn4", "<f8"),
    ]
)

_NAME_RE = re.compile(r"^(\d{3})([pm])(\d{2})x(\d{2,})y(\d{2,})$")


class SkycellTable(NamedTuple):
    """A SKYCELLS table: ``meta`` dict, ``projection_regions`` and ``skycells`` arrays."""

    meta: dict
    projection_regions: np.ndarray
    skycells: np.ndarray


# ------------------------------------------------------------------ TAN in numpy (vectorised)

def _tan_to_sky(px, py, ra0, dec0, orientat, scale_arcsec):
    """Region-frame pixel offsets from the tangent point → (ra, dec) deg (TAN, lon_pole 180)."""
    o = math.radians(orientat)
    c = scale_arcsec / 3600.0
    xp = c * (math.cos(o) * px + math.sin(o) * py)
    yp = c * (-math.sin(o) * px + math.cos(o) * py)
    xi, eta = np.deg2rad(xp), np.deg2rad(yp)  # standard coordinates (east, north)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    den = math.cos(d0) - eta * math.sin(d0)
    ra = a0 + np.arctan2(xi, den)
    dec = np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, den))
    return np.rad2deg(ra) % 360.0, np.rad2deg(dec)


def _sky_to_tan(ra, dec, ra0, dec0, orientat, scale_arcsec):
    """(ra, dec) deg → region-frame pixel offsets from the tangent point; NaN beyond 90°."""
    a = np.deg2rad(np.asarray(ra, float)) - math.radians(ra0)
    d = np.deg2rad(np.asarray(dec, float))
    d0 = math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.cos(d) * np.sin(a) / cosc
        eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a)) / cosc
    bad = cosc <= 1e-9
    xi = np.where(bad, np.nan, xi)
    eta = np.where(bad, np.nan, eta)
    o = math.radians(orientat)
    c = scale_arcsec / 3600.0
    xp, yp = np.rad2deg(xi) / c, np.rad2deg(eta) / c
    return math.cos(o) * xp - math.sin(o) * yp, math.sin(o) * xp + math.cos(o) * yp


def _unit(ra, dec):
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _sep_deg(u1, u2):
    return np.rad2deg(np.arctan2(np.linalg.norm(np.cross(u1, u2), axis=-1), np.sum(u1 * u2, axis=-1)))


# ------------------------------------------------------------------ projection regions

def _band_edges():
    nb = 56
    return -90.0 + BAND_HEIGHT / 2 + BAND_HEIGHT * np.arange(nb + 1)


def _region_boxes():
    """(ra_tangent, dec_tangent, ra_min, ra_max, dec_min, dec_max) of every region, in order."""
    rows = [(0.0, -90.0, 0.0, 360.0, -90.0, -90.0 + BAND_HEIGHT / 2)]
    edges = _band_edges()
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        eq = 0.0 if lo < 0 < hi else min(abs(lo), abs(hi))
        n = 4 * math.ceil(360.0 * math.cos(math.radians(eq)) / BAND_HEIGHT / 4)
        width = 360.0 / n
        dec_t = 0.5 * (lo + hi)
        for i in range(n):
            ra_t = i * width
            rows.append((ra_t, dec_t, (ra_t - width / 2) % 360.0, (ra_t + width / 2) % 360.0, lo, hi))
    rows.append((0.0, 90.0, 0.0, 360.0, 90.0 - BAND_HEIGHT / 2, 90.0))
    return rows


def _ra_width(ra_min, ra_max):
    w = (ra_max - ra_min) % 360.0
    return 360.0 if w == 0 else w


def _in_region(ra, dec, box):
    _, _, ra_min, ra_max, dec_min, dec_max = box
    dec = np.asarray(dec)
    if dec_max >= 90.0:
        in_dec = dec >= dec_min
    elif dec_min <= -90.0:
        in_dec = dec < dec_max
    else:
        in_dec = (dec >= dec_min) & (dec < dec_max)
    width = _ra_width(ra_min, ra_max)
    in_ra = np.ones_like(in_dec) if width >= 360.0 else ((np.asarray(ra) - ra_min) % 360.0) < width
    return in_dec & in_ra


def _boundary(box, n=64):
    """Sky points along the boundary of a region box."""
    ra_t, dec_t, ra_min, ra_max, dec_min, dec_max = box
    width = _ra_width(ra_min, ra_max)
    ras = ra_min + width * np.linspace(0, 1, n)
    if dec_max >= 90.0:
        return ras, np.full(n, dec_min)
    if dec_min <= -90.0:
        return ras, np.full(n, dec_max)
    decs = np.linspace(dec_min, dec_max, n // 4)
    ra = np.concatenate([ras, np.full(len(decs), ra_min + width), ras[::-1], np.full(len(decs), ra_min)])
    dec = np.concatenate([np.full(n, dec_min), decs, np.full(n, dec_max), decs[::-1]])
    return ra % 360.0, dec


def _region_grid(box, scale=SKYCELL_PIXEL_SCALE):
    """(x_tangent, y_tangent, n_cells_x, n_cells_y) of a region's pixel grid."""
    ra_t, dec_t = box[0], box[1]
    bra, bdec = _boundary(box, 256)
    px, py = _sky_to_tan(bra, bdec, ra_t, dec_t, 0.0, scale)
    if box[5] >= 90.0 or box[4] <= -90.0:  # cap: a circle about the pole
        r = float(np.max(np.hypot(px, py)))
        xmin, xmax, ymin, ymax = -r, r, -r, r
    else:
        xmin, xmax, ymin, ymax = px.min(), px.max(), py.min(), py.max()
    ncx = max(1, math.ceil((xmax - xmin) / PITCH))
    ncy = max(1, math.ceil((ymax - ymin) / PITCH))
    x_t = CORE_MARGIN - 0.5 + (ncx * PITCH - (xmax - xmin)) / 2 - xmin
    y_t = CORE_MARGIN - 0.5 + (ncy * PITCH - (ymax - ymin)) / 2 - ymin
    return x_t, y_t, ncx, ncy


def region_name(ra_tangent: float, dec_tangent: float) -> str:
    """``RRRsDD`` prefix of a region's skycell names."""
    return f"{round(ra_tangent) % 360:03d}{'p' if dec_tangent >= 0 else 'm'}{abs(round(dec_tangent)):02d}"


def parse_skycell_name(name: str) -> tuple[int, str, int, int, int]:
    """``"270p65x21y17"`` → (270, 'p', 65, 21, 17); raises ParameterError on a bad name."""
    m = _NAME_RE.match(str(name))
    if not m:
        raise ParameterError(
            f"skycell name {name!r} does not have the form RRRsDDxXXyYY (e.g. '270p65x21y17')"
        )
    return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))


# ------------------------------------------------------------------ table generation

def _cells_of_region(box, x_t, y_t, ncx, ncy, scale):
    """Skycell rows (i, j, fields) of one region, keeping cells whose core overlaps it."""
    ra_t, dec_t = box[0], box[1]
    ii, jj = np.meshgrid(np.arange(ncx), np.arange(ncy))
    ii, jj = ii.ravel(), jj.ravel()
    keep = np.zeros(ii.size, bool)
    # (a) a sample of core points lies in the region
    f = np.linspace(0, 1, 7)
    fx, fy = np.meshgrid(f, f)
    off = CORE_MARGIN - 0.5 + fx.ravel() * PITCH, CORE_MARGIN - 0.5 + fy.ravel() * PITCH
    X = ii[:, None] * PITCH + off[0][None, :]
    Y = jj[:, None] * PITCH + off[1][None, :]
    ra, dec = _tan_to_sky(X - x_t, Y - y_t, ra_t, dec_t, 0.0, scale)
    keep |= _in_region(ra, dec, box).any(axis=1)
    # (b) the region boundary passes through the core
    bra, bdec = _boundary(box, 2048)
    bx, by = _sky_to_tan(bra, bdec, ra_t, dec_t, 0.0, scale)
    ci = np.floor((bx + x_t - (CORE_MARGIN - 0.5)) / PITCH).astype(int)
    cj = np.floor((by + y_t - (CORE_MARGIN - 0.5)) / PITCH).astype(int)
    ok = (ci >= 0) & (ci < ncx) & (cj >= 0) & (cj < ncy)
    keep[np.unique(cj[ok] * ncx + ci[ok])] = True
    ii, jj = ii[keep], jj[keep]

    cells = np.zeros(ii.size, SKYCELL_DTYPE)
    prefix = region_name(ra_t, dec_t)
    cells["name"] = [f"{prefix}x{i:02d}y{j:02d}" for i, j in zip(ii, jj, strict=True)]
    x0, y0 = ii * PITCH - x_t, jj * PITCH - y_t  # cell pixel (0, 0) relative to the tangent
    cells["x_tangent"] = x_t - ii * PITCH
    cells["y_tangent"] = y_t - jj * PITCH
    c = (NXY_SKYCELL - 1) / 2
    rc, dc = _tan_to_sky(x0 + c, y0 + c, ra_t, dec_t, 0.0, scale)
    cells["ra_center"], cells["dec_center"] = rc, dc
    hi = NXY_SKYCELL - 0.5
    for k, (cx, cy) in enumerate(((-0.5, -0.5), (hi, -0.5), (hi, hi), (-0.5, hi)), start=1):
        r, d = _tan_to_sky(x0 + cx, y0 + cy, ra_t, dec_t, 0.0, scale)
        cells[f"ra_corn{k}"], cells[f"dec_corn{k}"] = r, d
    ru, du = _tan_to_sky(x0 + c, y0 + c + 1.0, ra_t, dec_t, 0.0, scale)
    a1, d1, a2, d2 = (np.deg2rad(v) for v in (rc, dc, ru, du))
    pa = np.arctan2(np.sin(a2 - a1) * np.cos(d2), np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(a2 - a1))
    cells["orientat"] = np.rad2deg(pa)
    return cells


@functools.lru_cache(maxsize=1)
def _all_boxes():
    """All region boxes (list) and their angular radii (deg, tangent point to farthest boundary
    point, sampled at 9 points per edge, +1 % margin)."""
    boxes = _region_boxes()
    b = np.array(boxes)
    width = (b[:, 3] - b[:, 2]) % 360.0
    width[width == 0] = 360.0
    t = np.linspace(0, 1, 9)
    ra = np.concatenate([b[:, 2:3] + width[:, None] * t] * 2 + [b[:, 2:3] + 0 * t, b[:, 2:3] + width[:, None] + 0 * t], 1)
    dec = np.concatenate(
        [b[:, 4:5] + 0 * t, b[:, 5:6] + 0 * t] + [b[:, 4:5] + (b[:, 5:6] - b[:, 4:5]) * t] * 2, 1
    )
    radius = _sep_deg(_unit(ra, dec), _unit(b[:, 0], b[:, 1])[:, None, :]).max(axis=1) * 1.01
    return boxes, radius


def _selected(box, region_radius, center, radius, ra_range, dec_range):
    if center is not None:
        d = float(_sep_deg(_unit(center[0], center[1]), _unit(box[0], box[1])))
        if d > radius + region_radius:
            return False
    if dec_range is not None and (box[5] < dec_range[0] or box[4] > dec_range[1]):
        return False
    if ra_range is not None:
        width = _ra_width(box[2], box[3])
        if width < 360.0:
            rw = (ra_range[1] - ra_range[0]) % 360.0 or 360.0
            # two arcs overlap if either start lies inside the other arc
            a_in_b = ((box[2] - ra_range[0]) % 360.0) <= rw
            b_in_a = ((ra_range[0] - box[2]) % 360.0) <= width
            if not (a_in_b or b_in_a):
                return False
    return True


def make_skycell_table(
    *,
    center: tuple[float, float] | None = None,
    radius: float | None = None,
    ra_range: tuple[float, float] | None = None,
    dec_range: tuple[float, float] | None = None,
    pixel_scale: float = SKYCELL_PIXEL_SCALE,
) -> SkycellTable:
    """Projection regions and skycells for a sky area (all cells of every region touching it).

    Parameters
    ----------
    center, radius : (ra, dec) deg and deg, optional
        A cone: regions whose extent comes within ``radius`` of ``center``.
    ra_range, dec_range : (lo, hi) deg, optional
        An RA arc (may wrap through 0, e.g. (350, 10)) and/or a Dec band.
    pixel_scale : float
        Skycell pixel scale in arcsec (0.055).

    With no area the whole sky is generated (<= 7.8e6 cells, <= 1.3 GB; minutes).
    """
    if (center is None) != (radius is None):
        raise ParameterError("give both center=(ra, dec) and radius (deg), or neither")
    if radius is not None and not (0 <= radius <= 180):
        raise ParameterError(f"radius = {radius} must be within [0, 180] deg")
    if center is not None and abs(center[1]) > 90:
        raise ParameterError(f"center dec = {center[1]} is outside [-90, 90]")
    if dec_range is not None and dec_range[0] > dec_range[1]:
        raise ParameterError(f"dec_range = {dec_range} must be (low, high)")
    regions, cells = [], []
    n_cells = 0
    boxes, radii = _all_boxes()
    for index, box in enumerate(boxes):
        if not _selected(box, radii[index], center, radius, ra_range, dec_range):
            continue
        x_t, y_t, ncx, ncy = _region_grid(box, pixel_scale)
        c = _cells_of_region(box, x_t, y_t, ncx, ncy, pixel_scale)
        regions.append(
            (index, box[0], box[1], box[2], box[3], box[4], box[5], 0.0, x_t, y_t,
             ncx * PITCH + SKYCELL_BORDER, ncy * PITCH + SKYCELL_BORDER, n_cells, n_cells + len(c))
        )
        cells.append(c)
        n_cells += len(c)
    meta = {
        "nxy_skycell": NXY_SKYCELL,
        "skycell_border_pixels": SKYCELL_BORDER,
        "pixel_scale": float(pixel_scale),
    }
    pr = np.array(regions, dtype=PROJECTION_REGION_DTYPE)
    sc = np.concatenate(cells) if cells else np.zeros(0, SKYCELL_DTYPE)
    log.debug("skycell table: %d regions, %d cells", len(pr), len(sc))
    return SkycellTable(meta, pr, sc)


def all_projection_regions() -> np.ndarray:
    """The box columns (index, ra/dec_tangent, ra/dec_min/max, orientat) of every region of the
    whole-sky tessellation; grid and skycell columns are zero (cheap: no cells)."""
    boxes = _region_boxes()
    pr = np.zeros(len(boxes), PROJECTION_REGION_DTYPE)
    pr["index"] = np.arange(len(boxes))
    for k, name in enumerate(("ra_tangent", "dec_tangent", "ra_min", "ra_max", "dec_min", "dec_max")):
        pr[name] = [b[k] for b in boxes]
    return pr


# ------------------------------------------------------------------ lookup

def _arrays(table):
    if isinstance(table, SkycellTable):
        return table.meta, table.projection_regions, table.skycells
    get = table.get if isinstance(table, dict) else lambda k, d=None: getattr(table, k, d)
    pr, sc = get("projection_regions"), get("skycells")
    if pr is None or sc is None:
        raise ParameterError("table must provide 'projection_regions' and 'skycells' arrays")
    meta = get("meta", {}) or {}
    return dict(meta), np.asarray(pr), np.asarray(sc)


def _meta_value(meta, key, default):
    value = meta.get(key, default) if isinstance(meta, dict) else getattr(meta, key, default)
    return default if value is None else value


def _region_of_cell(pr, index):
    hit = np.nonzero((pr["skycell_start"] <= index) & (index < pr["skycell_end"]))[0]
    if len(hit) != 1:
        raise ParameterError(f"skycell row {index} belongs to {len(hit)} projection regions (need 1)")
    return pr[hit[0]]


def skycell_wcs(table, name: str):
    """(gwcs.WCS, (ny, nx)) of the skycell ``name`` (ALGORITHMS.md §11): TAN about the region's
    tangent point, crpix = the cell's (x_tangent, y_tangent), 0.055″ pixels, 5000² box."""
    from .wcs.grid import make_tan_wcs

    meta, pr, sc = _arrays(table)
    parse_skycell_name(name)
    rows = np.nonzero(sc["name"] == name)[0]
    if len(rows) == 0:
        raise ParameterError(f"skycell {name!r} is not in the SKYCELLS table ({len(sc)} cells)")
    cell = sc[rows[0]]
    region = _region_of_cell(pr, rows[0])
    nxy = int(_meta_value(meta, "nxy_skycell", NXY_SKYCELL))
    scale = float(_meta_value(meta, "pixel_scale", SKYCELL_PIXEL_SCALE))
    o = math.radians(float(region["orientat"]))
    pc = np.array([[math.cos(o), math.sin(o)], [-math.sin(o), math.cos(o)]])
    wcs = make_tan_wcs(
        (float(region["ra_tangent"]), float(region["dec_tangent"])),
        (float(cell["x_tangent"]), float(cell["y_tangent"])),
        scale, pc=pc, shape=(nxy, nxy), name=str(name),
    )
    return wcs, (nxy, nxy)


def skycell_wcs_info(table, name: str) -> dict:
    """The association's ``skycell_wcs_info`` record of a skycell (ALGORITHMS.md §11)."""
    meta, pr, sc = _arrays(table)
    rows = np.nonzero(sc["name"] == name)[0]
    if len(rows) == 0:
        raise ParameterError(f"skycell {name!r} is not in the SKYCELLS table")
    cell = sc[rows[0]]
    region = _region_of_cell(pr, rows[0])
    nxy = int(_meta_value(meta, "nxy_skycell", NXY_SKYCELL))
    return {
        "name": str(name),
        "pixel_scale": float(_meta_value(meta, "pixel_scale", SKYCELL_PIXEL_SCALE)) / 3600.0,
        "ra_projection_center": float(region["ra_tangent"]),
        "dec_projection_center": float(region["dec_tangent"]),
        "x0_projection": float(cell["x_tangent"]),
        "y0_projection": float(cell["y_tangent"]),
        "ra_center": float(cell["ra_center"]),
        "dec_center": float(cell["dec_center"]),
        "nx": nxy,
        "ny": nxy,
        "orientat": float(cell["orientat"]),
        "orientat_projection_center": float(region["orientat"]),
    }


def _densify(footprint, n=4):
    """Add ``n − 1`` points (great-circle interpolation) along each polygon edge."""
    v = _unit(footprint[:, 0], footprint[:, 1])
    w = np.roll(v, -1, axis=0)
    t = np.arange(n)[:, None, None] / n
    pts = (1 - t) * v[None] + t * w[None]
    pts = pts.transpose(1, 0, 2).reshape(-1, 3)
    pts /= np.linalg.norm(pts, axis=1)[:, None]
    return np.rad2deg(np.arctan2(pts[:, 1], pts[:, 0])) % 360.0, np.rad2deg(np.arcsin(np.clip(pts[:, 2], -1, 1)))


def _segments_hit_boxes(x1, y1, x2, y2, bx0, by0, bx1, by1):
    """For boxes (m,) and segments (k,): does any segment cross each box? (Liang–Barsky)"""
    dx, dy = (x2 - x1)[None, :], (y2 - y1)[None, :]
    t0 = np.zeros((bx0.size, x1.size))
    t1 = np.ones_like(t0)
    for p, q in (
        (-dx, x1[None, :] - bx0[:, None]),
        (dx, bx1[:, None] - x1[None, :]),
        (-dy, y1[None, :] - by0[:, None]),
        (dy, by1[:, None] - y1[None, :]),
    ):
        p = np.broadcast_to(p, t0.shape)
        q = np.broadcast_to(q, t0.shape)
        parallel = p == 0
        outside = parallel & (q < 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(parallel, 0.0, q / p)
        t0 = np.where(~parallel & (p < 0), np.maximum(t0, r), t0)
        t1 = np.where(~parallel & (p > 0), np.minimum(t1, r), t1)
        t0 = np.where(outside, 2.0, t0)
    return (t0 <= t1).any(axis=1)


def _points_in_polygon(px, py, vx, vy):
    """Even-odd rule, points (m,) against one polygon (k vertices)."""
    inside = np.zeros(px.size, bool)
    xj, yj = np.roll(vx, 1), np.roll(vy, 1)
    for xa, ya, xb, yb in zip(vx, vy, xj, yj, strict=True):
        cond = (ya > py) != (yb > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = (xb - xa) * (py - ya) / (yb - ya) + xa
        inside ^= cond & (px < xc)
    return inside


def find_skycells(table, footprint_radec) -> list[str]:
    """Names of the skycells whose 5000² pixel area overlaps a sky polygon.

    ``footprint_radec``: (n ≥ 3, 2) array of polygon vertices (ra, dec) in deg, e.g.
    :func:`romancore.wcs.footprint` of an image. Edges are great circles (densified before
    projection). Candidate regions are those whose tangent point lies within their radius plus
    the footprint radius; in each region's tangent plane the footprint polygon is tested
    against every cell rectangle (an edge crosses the cell, or the cell lies inside).
    """
    meta, pr, sc = _arrays(table)
    fp = np.asarray(footprint_radec, dtype=float)
    if fp.ndim != 2 or fp.shape[1] != 2 or len(fp) < 3 or not np.all(np.isfinite(fp)):
        raise ParameterError(
            f"footprint_radec must be a finite (n >= 3, 2) array of (ra, dec) deg; got shape {fp.shape}"
        )
    scale = float(_meta_value(meta, "pixel_scale", SKYCELL_PIXEL_SCALE))
    nxy = int(_meta_value(meta, "nxy_skycell", NXY_SKYCELL))
    fra, fdec = _densify(fp, 4)
    fv = _unit(fra, fdec)
    centre = fv.mean(axis=0)
    centre /= np.linalg.norm(centre)
    f_radius = float(_sep_deg(fv, centre).max())
    boxes, radii = _all_boxes()
    found = []
    for region in pr:
        box = tuple(float(region[k]) for k in ("ra_tangent", "dec_tangent", "ra_min", "ra_max", "dec_min", "dec_max"))
        if region["skycell_end"] <= region["skycell_start"]:
            continue
        t = _unit(box[0], box[1])
        r_radius = radii[region["index"]] if 0 <= region["index"] < len(radii) else 180.0
        if float(_sep_deg(centre, t)) > f_radius + r_radius:
            continue
        if np.any(np.sum(fv * t, axis=1) <= 1e-6):
            continue  # the footprint reaches 90° from this tangent point: cannot touch it
        px, py = _sky_to_tan(fra, fdec, box[0], box[1], float(region["orientat"]), scale)
        cells = sc[region["skycell_start"]:region["skycell_end"]]
        # cell pixel (0,0) at region-tangent offset (−x_tangent, −y_tangent)
        bx0 = -cells["x_tangent"] - 0.5
        by0 = -cells["y_tangent"] - 0.5
        bx1, by1 = bx0 + nxy, by0 + nxy
        near = (bx1 >= px.min()) & (bx0 <= px.max()) & (by1 >= py.min()) & (by0 <= py.max())
        if not near.any():
            continue
        idx = np.nonzero(near)[0]
        hit = _segments_hit_boxes(px, py, np.roll(px, -1), np.roll(py, -1), bx0[idx], by0[idx], bx1[idx], by1[idx])
        hit |= _points_in_polygon(0.5 * (bx0[idx] + bx1[idx]), 0.5 * (by0[idx] + by1[idx]), px, py)
        found.extend(str(n) for n in cells["name"][idx[hit]])
    return found


def skycell_owner(table, ra, dec) -> np.ndarray:
    """Name of the one skycell whose core (cell less 50 px per side) holds each (ra, dec) of the
    region that contains it; '' where the table has no such cell (area not generated)."""
    meta, pr, sc = _arrays(table)
    scale = float(_meta_value(meta, "pixel_scale", SKYCELL_PIXEL_SCALE))
    ra = np.atleast_1d(np.asarray(ra, float)) % 360.0
    dec = np.atleast_1d(np.asarray(dec, float))
    out = np.full(ra.shape, "", dtype="<U16")
    for region in pr:
        box = tuple(float(region[k]) for k in ("ra_tangent", "dec_tangent", "ra_min", "ra_max", "dec_min", "dec_max"))
        inside = _in_region(ra, dec, box)
        if not inside.any():
            continue
        px, py = _sky_to_tan(ra[inside], dec[inside], box[0], box[1], float(region["orientat"]), scale)
        i = np.floor((px + region["x_tangent"] - (CORE_MARGIN - 0.5)) / PITCH).astype(int)
        j = np.floor((py + region["y_tangent"] - (CORE_MARGIN - 0.5)) / PITCH).astype(int)
        cells = sc[region["skycell_start"]:region["skycell_end"]]
        ci = np.rint((region["x_tangent"] - cells["x_tangent"]) / PITCH).astype(int)
        cj = np.rint((region["y_tangent"] - cells["y_tangent"]) / PITCH).astype(int)
        lookup = {(a, b): n for a, b, n in zip(ci, cj, cells["name"], strict=True)}
        out[np.nonzero(inside)[0]] = [lookup.get((a, b), "") for a, b in zip(i, j, strict=True)]
    return out
