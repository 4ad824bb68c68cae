"""TAN (gnomonic) output grids for mosaics and skycells (ALGORITHMS.md §6.6, §6.5, §11).

A grid is a gwcs with frames ``detector → world`` and the FITS-like transform::

    (x − crpix1, y − crpix2) → PC → × cdelt (deg) → Pix2Sky_Gnomonic → RotateNative2Celestial(crval, 180°)

with pixel centres at integers (0-based) and bounding box ``((−0.5, nx−0.5), (−0.5, ny−0.5))``.
The submodels carry fixed names (``crpix1``, ``crpix2``, ``pc``, ``cdelt1``, ``cdelt2``,
``tan``, ``crval``) so :func:`tan_wcs_parameters` can read a grid back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf

from ..errors import ParameterError
from .wfi import _check_shape, _wcsinfo_values, compute_s_region, footprint

__all__ = [
    "compute_scale",
    "l3_wcsinfo",
    "local_orientation",
    "make_output_wcs",
    "make_tan_wcs",
    "output_rotation_matrix",
    "tan_wcs_parameters",
    "wcs_from_l3_wcsinfo",
]


def _unit_vectors(ra, dec):
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def _separation_deg(ra1, dec1, ra2, dec2):
    """Angular distance (deg), Vincenty form: accurate at all separations."""
    ra1, dec1, ra2, dec2 = (np.deg2rad(np.asarray(a, dtype=float)) for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    num = np.hypot(np.cos(dec2) * np.sin(dra), np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(dra))
    den = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(dra)
    return np.rad2deg(np.arctan2(num, den))


def _position_angle_deg(ra1, dec1, ra2, dec2):
    """Position angle (deg, east of north) of point 2 seen from point 1."""
    ra1, dec1, ra2, dec2 = (np.deg2rad(np.asarray(a, dtype=float)) for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    return np.rad2deg(
        np.arctan2(np.sin(dra) * np.cos(dec2), np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(dra))
    )


def output_rotation_matrix(
    rotation: float | None = None,
    *,
    roll_ref: float | None = None,
    v3yangle: float | None = None,
    vparity: int = -1,
) -> np.ndarray:
    """The 2×2 PC matrix of an output grid (ALGORITHMS.md §6.6).

    ``pc = [[vparity·cosθ, sinθ], [−vparity·sinθ, cosθ]]`` with θ = ``rotation`` (deg) when
    given, else θ = ``roll_ref − vparity·v3yangle``. θ is the position angle (east of north)
    of the grid's +y axis; vparity −1 puts east to the left (standard sky orientation).
    """
    if vparity not in (-1, 1):
        raise ParameterError(f"vparity = {vparity} must be -1 or +1")
    if rotation is None:
        if roll_ref is None or v3yangle is None:
            raise ParameterError("give rotation, or both roll_ref and v3yangle")
        theta = float(roll_ref) - vparity * float(v3yangle)
    else:
        theta = float(rotation)
    if not math.isfinite(theta):
        raise ParameterError(f"rotation angle {theta} is not finite")
    t = math.radians(theta)
    return np.array([[vparity * math.cos(t), math.sin(t)], [-vparity * math.sin(t), math.cos(t)]])


def make_tan_wcs(
    crval: Sequence[float],
    crpix: Sequence[float],
    pixel_scale: float,
    *,
    pc=None,
    shape: tuple[int, int] | None = None,
    name: str | None = None,
) -> WCS:
    """A gnomonic (TAN) grid WCS.

    Parameters
    ----------
    crval : (ra, dec) in deg
        Sky position of the tangent point.
    crpix : (x, y)
        0-based pixel position of the tangent point (it may lie outside the image).
    pixel_scale : float
        Pixel size at the tangent point in arcsec.
    pc : 2×2 array, optional
        Rotation/parity matrix (identity by default; see :func:`output_rotation_matrix`).
    shape : (ny, nx), optional
        Sets ``bounding_box = ((−0.5, nx−0.5), (−0.5, ny−0.5))`` and ``pixel_shape``.
    """
    ra0, dec0 = (float(v) for v in crval)
    x0, y0 = (float(v) for v in crpix)
    if not all(math.isfinite(v) for v in (ra0, dec0, x0, y0)):
        raise ParameterError(f"crval = {crval!r} and crpix = {crpix!r} must be finite")
    if abs(dec0) > 90:
        raise ParameterError(f"crval dec = {dec0} is outside [-90, 90] deg")
    if not (math.isfinite(pixel_scale) and pixel_scale > 0):
        raise ParameterError(f"pixel_scale = {pixel_scale} must be a positive number of arcsec")
    pc = np.eye(2) if pc is None else np.asarray(pc, dtype=float)
    if pc.shape != (2, 2) or not np.all(np.isfinite(pc)) or abs(np.linalg.det(pc)) < 1e-12:
        raise ParameterError(f"pc = {pc.tolist()} must be a finite, invertible 2x2 matrix")
    cdelt = pixel_scale / 3600.0
    transform = (
        (am.Shift(-x0, name="crpix1") & am.Shift(-y0, name="crpix2"))
        | am.AffineTransformation2D(matrix=pc, translation=[0.0, 0.0], name="pc")
        | (am.Scale(cdelt, name="cdelt1") & am.Scale(cdelt, name="cdelt2"))
        | am.Pix2Sky_Gnomonic(name="tan")
        | am.RotateNative2Celestial(ra0 % 360.0, dec0, 180.0, name="crval")
    )
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    wcs = WCS(transform, input_frame=detector, output_frame=world, name=name)
    if shape is not None:
        ny, nx = _check_shape(shape)
        wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
        wcs.pixel_shape = (nx, ny)
    return wcs


def _leaf(model, name):
    for sub in model.traverse_postorder():
        if sub.name == name and sub.n_submodels == 1:
            return sub
    return None


def tan_wcs_parameters(wcs: WCS) -> dict:
    """Read back ``crval`` (deg), ``crpix`` (0-based x, y), ``cdelt`` (deg) and ``pc`` of a
    grid made by :func:`make_tan_wcs`."""
    transform = wcs.forward_transform
    parts = {n: _leaf(transform, n) for n in ("crpix1", "crpix2", "pc", "cdelt1", "crval")}
    missing = [n for n, m in parts.items() if m is None]
    if missing:
        raise ParameterError(
            f"wcs is not a TAN grid made by make_tan_wcs (no submodel named {', '.join(missing)})"
        )
    return {
        "crval": (float(parts["crval"].lon.value), float(parts["crval"].lat.value)),
        "crpix": (-float(parts["crpix1"].offset.value), -float(parts["crpix2"].offset.value)),
        "cdelt": float(parts["cdelt1"].factor.value),
        "pc": np.array(parts["pc"].matrix.value, dtype=float),
    }


def compute_scale(wcs: WCS, *, pixel=None, sky=None) -> float:
    """Pixel scale (arcsec) at a point: geometric mean of the sky lengths of one-pixel steps in
    x and in y. Give the point as ``pixel=(x, y)`` or ``sky=(ra, dec)`` (inverted first)."""
    if (pixel is None) == (sky is None):
        raise ParameterError("give exactly one of pixel=(x, y) or sky=(ra, dec)")
    if sky is not None:
        x, y = wcs.invert(float(sky[0]), float(sky[1]), with_bounding_box=False)
    else:
        x, y = (float(v) for v in pixel)
    ra, dec = wcs(np.array([x, x + 1.0, x]), np.array([y, y, y + 1.0]), with_bounding_box=False)
    sx = _separation_deg(ra[0], dec[0], ra[1], dec[1])
    sy = _separation_deg(ra[0], dec[0], ra[2], dec[2])
    scale = 3600.0 * math.sqrt(sx * sy)
    if not math.isfinite(scale):
        raise ParameterError(f"the WCS is not defined at pixel ({x}, {y})")
    return scale


def local_orientation(wcs: WCS, x: float, y: float) -> tuple[float, int]:
    """(position angle of the +y pixel axis in deg east of north, parity) at pixel (x, y).

    Parity is −1 when east is to the left of north seen with +x right, +y up (the normal sky
    view, e.g. WFI detectors with vparity −1), +1 when mirrored.
    """
    d = 0.5
    ra, dec = wcs(np.array([x, x + d, x]), np.array([y, y, y + d]), with_bounding_box=False)
    pa_y = float(_position_angle_deg(ra[0], dec[0], ra[2], dec[2]))
    pa_x = float(_position_angle_deg(ra[0], dec[0], ra[1], dec[1]))
    # +x at PA_y − 90 (east-left) or PA_y + 90 (mirrored)
    diff = (pa_x - pa_y + 180.0) % 360.0 - 180.0
    parity = -1 if diff < 0 else 1
    return pa_y % 360.0, parity


def _input_points(item, n_per_edge):
    """Sky points (deg, (n, 2)) outlining one input: a gwcs or an (n, 2) ra/dec array."""
    if isinstance(item, WCS):
        pts = footprint(item, n_per_edge=n_per_edge)
    else:
        pts = np.asarray(item, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise ParameterError(
                f"a footprint must be an (n >= 3, 2) array of (ra, dec) in deg; got shape {pts.shape}"
            )
    if not np.all(np.isfinite(pts)):
        raise ParameterError("an input footprint has non-finite sky coordinates")
    return pts


def _fiducial(points):
    """Midpoint of the per-axis min/max of the unit vectors (ALGORITHMS.md §6.6)."""
    vec = _unit_vectors(points[:, 0], points[:, 1])
    mid = 0.5 * (vec.min(axis=0) + vec.max(axis=0))
    norm = np.linalg.norm(mid)
    if norm < 1e-12:
        raise ParameterError("the input footprints cover opposite sides of the sky: no fiducial")
    mid /= norm
    ra = math.degrees(math.atan2(mid[1], mid[0])) % 360.0
    dec = math.degrees(math.asin(max(-1.0, min(1.0, mid[2]))))
    return ra, dec


def make_output_wcs(
    inputs,
    *,
    wcsinfo=None,
    pixel_scale: float | None = None,
    pixel_scale_ratio: float = 1.0,
    rotation: float | None = None,
    crpix: Sequence[float] | None = None,
    crval: Sequence[float] | None = None,
    shape: tuple[int, int] | None = None,
    n_per_edge: int = 32,
) -> tuple[WCS, tuple[int, int]]:
    """A TAN grid covering all inputs (ALGORITHMS.md §6.6).

    Parameters
    ----------
    inputs : sequence of gwcs.WCS or (n, 2) arrays of (ra, dec) in deg
        The input images (their bounding-box outline, ``n_per_edge`` points per edge, is
        covered) or sky polygons.
    wcsinfo : mapping, optional
        ``roll_ref``, ``v3yangle``, ``vparity`` of the reference (first) exposure: when given
        and ``rotation`` is None, the grid is oriented by θ = roll_ref − vparity·v3yangle.
    pixel_scale : float, optional
        Output pixel size in arcsec. Default: the first input WCS's scale at the fiducial
        (:func:`compute_scale`) × ``pixel_scale_ratio``.
    pixel_scale_ratio : float
        Output/input pixel-scale ratio used when ``pixel_scale`` is not given.
    rotation : float, optional
        Position angle (deg, east of north) of the output +y axis; 0 = north up. Default:
        from ``wcsinfo``, else the local orientation of the first input WCS, else 0.
        The output is always east-left (vparity −1).
    crpix : (x, y), optional
        0-based pixel of the fiducial. Default: placed so that the lowest footprint point
        lies on the lower pixel edge (−0.5).
    crval : (ra, dec), optional
        Tangent point. Default: the midpoint of the footprints' unit-vector extent.
    shape : (ny, nx), optional
        Default: the smallest shape whose pixel area contains every footprint point.

    Returns
    -------
    (gwcs.WCS, (ny, nx))
    """
    if isinstance(inputs, WCS) or (isinstance(inputs, np.ndarray) and inputs.ndim == 2):
        inputs = [inputs]
    inputs = list(inputs)
    if not inputs:
        raise ParameterError("inputs is empty: at least one WCS or footprint is needed")
    points = np.concatenate([_input_points(item, n_per_edge) for item in inputs])
    first_wcs = next((item for item in inputs if isinstance(item, WCS)), None)

    if crval is None:
        crval = _fiducial(points)
    crval = (float(crval[0]) % 360.0, float(crval[1]))

    if rotation is None and wcsinfo is not None:
        info = _wcsinfo_values(wcsinfo, ("roll_ref", "v3yangle", "vparity"))
        pc = output_rotation_matrix(
            roll_ref=info["roll_ref"], v3yangle=info["v3yangle"], vparity=int(info["vparity"])
        )
    else:
        if rotation is None:
            if first_wcs is not None:
                (x0, x1), (y0, y1) = first_wcs.bounding_box.bounding_box(order="F")
                rotation, _ = local_orientation(first_wcs, 0.5 * (x0 + x1), 0.5 * (y0 + y1))
            else:
                rotation = 0.0
        pc = output_rotation_matrix(rotation)

    if pixel_scale is None:
        if first_wcs is None:
            raise ParameterError("pixel_scale is required when the inputs are only footprints")
        if not (math.isfinite(pixel_scale_ratio) and pixel_scale_ratio > 0):
            raise ParameterError(f"pixel_scale_ratio = {pixel_scale_ratio} must be positive")
        try:
            pixel_scale = compute_scale(first_wcs, sky=crval) * pixel_scale_ratio
        except ParameterError:
            (x0, x1), (y0, y1) = first_wcs.bounding_box.bounding_box(order="F")
            pixel_scale = compute_scale(first_wcs, pixel=(0.5 * (x0 + x1), 0.5 * (y0 + y1)))
            pixel_scale *= pixel_scale_ratio

    # project the footprints with the tangent point at pixel (0, 0)
    probe = make_tan_wcs(crval, (0.0, 0.0), pixel_scale, pc=pc)
    px, py = probe.invert(points[:, 0], points[:, 1], with_bounding_box=False)
    if not (np.all(np.isfinite(px)) and np.all(np.isfinite(py))):
        raise ParameterError(
            "some input footprint points are 90 deg or more from the tangent point: "
            "the inputs are too spread out for one TAN grid"
        )
    if crpix is None:
        crpix = (-0.5 - px.min(), -0.5 - py.min())
    crpix = (float(crpix[0]), float(crpix[1]))
    if shape is None:
        nx = int(math.ceil(px.max() + crpix[0] + 0.5 - 1e-9))
        ny = int(math.ceil(py.max() + crpix[1] + 0.5 - 1e-9))
        shape = (max(ny, 1), max(nx, 1))
    shape = _check_shape(shape)
    return make_tan_wcs(crval, crpix, pixel_scale, pc=pc, shape=shape), shape


def l3_wcsinfo(wcs: WCS, shape: tuple[int, int] | None = None, *, skycell_name: str | None = None) -> dict:
    """The L3 ``meta.wcsinfo`` record of a TAN grid (ALGORITHMS.md §6.5, §12).

    Keys: ``projection`` ('TAN'), ``ra_ref``/``dec_ref`` (crval, deg), ``x_ref``/``y_ref``
    (crpix, 0-based), ``pixel_scale_ref`` (deg/pixel at the reference point = cdelt),
    ``orientation_ref`` (PA of +y at the reference point, deg), ``ra``/``dec`` (deg, at the
    image centre ((nx−1)/2, (ny−1)/2)), ``pixel_scale`` (deg/pixel at the centre),
    ``orientation`` (PA of +y at the centre), ``image_shape`` [ny, nx], ``rotation_matrix``
    (pc as nested lists), ``s_region``, and ``skycell_name`` when given.
    """
    params = tan_wcs_parameters(wcs)
    if shape is None:
        if wcs.pixel_shape is None:
            raise ParameterError("the grid has no pixel_shape: give shape=(ny, nx)")
        nx, ny = wcs.pixel_shape
    else:
        ny, nx = _check_shape(shape)
    xc, yc = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra_c, dec_c = wcs(xc, yc, with_bounding_box=False)
    info = {
        "projection": "TAN",
        "ra_ref": params["crval"][0],
        "dec_ref": params["crval"][1],
        "x_ref": params["crpix"][0],
        "y_ref": params["crpix"][1],
        "pixel_scale_ref": params["cdelt"],
        "orientation_ref": local_orientation(wcs, *params["crpix"])[0],
        "ra": float(ra_c) % 360.0,
        "dec": float(dec_c),
        "pixel_scale": compute_scale(wcs, pixel=(xc, yc)) / 3600.0,
        "orientation": local_orientation(wcs, xc, yc)[0],
        "image_shape": [int(ny), int(nx)],
        "rotation_matrix": params["pc"].tolist(),
        "s_region": compute_s_region(wcs, (ny, nx)),
    }
    if skycell_name is not None:
        info["skycell_name"] = str(skycell_name)
    return info


def wcs_from_l3_wcsinfo(wcsinfo) -> tuple[WCS, tuple[int, int]]:
    """Rebuild the TAN grid from an L3 wcsinfo record made by :func:`l3_wcsinfo`."""
    try:
        crval = (float(wcsinfo["ra_ref"]), float(wcsinfo["dec_ref"]))
        crpix = (float(wcsinfo["x_ref"]), float(wcsinfo["y_ref"]))
        scale = float(wcsinfo["pixel_scale_ref"]) * 3600.0
        pc = np.asarray(wcsinfo["rotation_matrix"], dtype=float)
        shape = tuple(int(n) for n in wcsinfo["image_shape"])
    except KeyError as exc:
        raise ParameterError(f"wcsinfo has no '{exc.args[0]}' entry; it is needed for a TAN grid") from None
    return make_tan_wcs(crval, crpix, scale, pc=pc, shape=shape), shape
