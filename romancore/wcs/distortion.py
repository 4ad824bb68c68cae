"""A realistic, smooth detector → v2v3 distortion for the 18 WFI detectors (for simulations).

The focal plane is modelled as 18 detectors of 4088² pixels in 6 columns × 3 rows
(WFI01–03 in the first column, bottom to top, …, WFI16–18 in the last), with the outer
columns bowed upwards like the real WFI layout. Positions are in a focal-plane frame (X, Y) in
arcsec whose axes are parallel to the detector axes; the focal plane maps to v2/v3 with the
SIAF-style relation of ALGORITHMS.md §10 (parity −1, V3 y-angle −60°)::

    v2 = v2_c + π·X·cosθ + Y·sinθ,   v3 = v3_c − π·X·sinθ + Y·cosθ

The optical distortion is radial about the telescope axis (v2, v3) = (0, 0):
``r_true = r·(1 + k·(r/1°)²)`` with k = 0.02, i.e. a few arcsec of non-linearity across a
detector. On each detector that is an exact cubic polynomial of the pixel offsets, stored as
two ``Polynomial2D`` of degree 3; the inverse is a fitted ``Polynomial2D`` pair of higher
degree (about 1e-10 pixel over the detector at the default degree 7; see the tests). Everything is built from
standard astropy models so it serialises to ASDF like a real DISTORTION reference.
"""

from __future__ import annotations

import numpy as np
from astropy.modeling import models as am

from ..errors import ParameterError

WFI_DETECTORS = tuple(f"WFI{n:02d}" for n in range(1, 19))

#: Detector centre spacing in the focal plane (arcsec): 4088 px × 0.11″ plus a gap.
_PITCH_X = 500.0
_PITCH_Y = 480.0
#: Upward bow of the outermost columns (arcsec), quadratic in the column offset.
_BOW = 160.0
#: Focal-plane centre in v2/v3 (arcsec): the WFI field is offset from the telescope axis.
_V2_CENTER = 0.0
_V3_CENTER = -1850.0
_V3YANGLE = -60.0
_VPARITY = -1
_RADIAL_K = 0.02


def _fpa_to_v2v3_matrix(v3yangle=_V3YANGLE, vparity=_VPARITY):
    t = np.deg2rad(v3yangle)
    return np.array([[vparity * np.cos(t), np.sin(t)], [-vparity * np.sin(t), np.cos(t)]])


def _detector_index(detector) -> int:
    name = str(detector).upper()
    if name not in WFI_DETECTORS:
        raise ParameterError(f"detector = {detector!r} is not one of WFI01..WFI18")
    return WFI_DETECTORS.index(name)


def _fpa_center(index: int) -> tuple[float, float]:
    col, row = divmod(index, 3)
    dc = col - 2.5
    return dc * _PITCH_X, (row - 1) * _PITCH_Y + _BOW * (dc / 2.5) ** 2


def _fpa_origin() -> np.ndarray:
    """Focal-plane coordinates of the telescope axis (v2, v3) = (0, 0)."""
    m = _fpa_to_v2v3_matrix()
    return np.linalg.solve(m, -np.array([_V2_CENTER, _V3_CENTER]))


def _distort(X, Y, k=_RADIAL_K):
    """Radial distortion about the telescope axis, in focal-plane arcsec."""
    x0, y0 = _fpa_origin()
    dx, dy = X - x0, Y - y0
    f = 1.0 + k * (dx * dx + dy * dy) / 3600.0**2
    return x0 + dx * f, y0 + dy * f


def wfi_detector_geometry(detector: str, *, pixel_scale: float = 0.11) -> dict:
    """Aperture reference values of a simulated detector (its ``meta.wcsinfo`` part).

    Returns a dict with ``v2_ref``, ``v3_ref`` (arcsec, the v2/v3 of the detector centre
    pixel), ``v3yangle`` (deg), ``vparity``, ``x_ref``, ``y_ref`` (0-based pixel of the
    reference point, the array centre 2043.5) and ``aperture_name`` (e.g. ``WFI01_FULL``).
    """
    index = _detector_index(detector)
    xc, yc = _fpa_center(index)
    dxc, dyc = _distort(np.array(xc), np.array(yc))
    v2, v3 = _fpa_to_v2v3_matrix() @ np.array([float(dxc), float(dyc)]) + np.array(
        [_V2_CENTER, _V3_CENTER]
    )
    return {
        "aperture_name": f"{WFI_DETECTORS[index]}_FULL",
        "v2_ref": float(v2),
        "v3_ref": float(v3),
        "v3yangle": _V3YANGLE,
        "vparity": _VPARITY,
        "x_ref": 2043.5,
        "y_ref": 2043.5,
    }


def _poly_terms(degree):
    return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]


def _fit_poly_pair(u, v, fx, fy, degree):
    """Least-squares Polynomial2D pair fx(u, v), fy(u, v) (plain numpy; exact for polynomials)."""
    terms = _poly_terms(degree)
    s = max(np.abs(u).max(), np.abs(v).max())  # normalise the columns for conditioning
    un, vn = u / s, v / s
    design = np.stack([un**i * vn**j for i, j in terms], axis=1)
    coefs, *_ = np.linalg.lstsq(design, np.stack([fx, fy], axis=1), rcond=None)
    coefs /= np.array([s ** (i + j) for i, j in terms])[:, None]
    px = am.Polynomial2D(degree, **{f"c{i}_{j}": c for (i, j), c in zip(terms, coefs[:, 0], strict=True)})
    py = am.Polynomial2D(degree, **{f"c{i}_{j}": c for (i, j), c in zip(terms, coefs[:, 1], strict=True)})
    return px, py


def make_wfi_distortion(
    detector: str,
    *,
    pixel_scale: float = 0.11,
    radial_k: float = _RADIAL_K,
    shape: tuple[int, int] = (4088, 4088),
    inverse_degree: int = 7,
):
    """Detector → v2v3 distortion model of a simulated WFI detector, with its inverse.

    Parameters
    ----------
    detector : str
        ``"WFI01"`` … ``"WFI18"``.
    pixel_scale : float
        Nominal pixel scale in arcsec (0.11).
    radial_k : float
        Radial distortion coefficient: ``r → r·(1 + k·(r/1°)²)`` about the telescope axis.
    shape : (ny, nx)
        Science-array shape; the reference pixel is its centre.
    inverse_degree : int
        Degree of the fitted inverse polynomials.

    Returns
    -------
    astropy CompoundModel
        Inputs (x, y) 0-based science-array pixels, outputs (v2, v3) arcsec;
        ``model.inverse`` maps v2/v3 back to pixels; ``model.bounding_box`` is the array.
        Structure: ``Shift & Shift | Mapping | Polynomial2D(3) & Polynomial2D(3) | Affine``,
        where the polynomials give ideal-frame offsets (arcsec) from the reference point
        and the affine rotates them into v2/v3 about (v2_ref, v3_ref).
    """
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ParameterError(f"pixel_scale = {pixel_scale} must be a positive number (arcsec)")
    if not np.isfinite(radial_k) or abs(radial_k) > 0.2:
        raise ParameterError(f"radial_k = {radial_k} must be finite with |k| <= 0.2")
    if int(inverse_degree) < 3:
        raise ParameterError(f"inverse_degree = {inverse_degree} must be >= 3")
    index = _detector_index(detector)
    ny, nx = (int(n) for n in shape)
    xr, yr = (nx - 1) / 2.0, (ny - 1) / 2.0
    xc, yc = _fpa_center(index)
    dxc, dyc = _distort(np.array(xc), np.array(yc), radial_k)
    geometry = wfi_detector_geometry(detector, pixel_scale=pixel_scale)

    # exact cubic: sample the analytic map on a grid and solve the linear least squares
    g = np.linspace(-0.55, 0.55, 23)
    ux, uy = np.meshgrid(g * nx, g * ny)
    ux, uy = ux.ravel(), uy.ravel()
    X, Y = _distort(xc + pixel_scale * ux, yc + pixel_scale * uy, radial_k)
    x_idl, y_idl = X - dxc, Y - dyc
    px, py = _fit_poly_pair(ux, uy, x_idl, y_idl, 3)
    px.name, py.name = "x_idl_poly", "y_idl_poly"

    # inverse on normalised ideal coordinates for conditioning
    norm = 0.5 * pixel_scale * max(nx, ny)
    ix, iy = _fit_poly_pair(x_idl / norm, y_idl / norm, ux, uy, int(inverse_degree))
    ix.name, iy.name = "x_pix_poly", "y_pix_poly"

    rot = _fpa_to_v2v3_matrix()
    idl2v23 = am.AffineTransformation2D(
        matrix=rot, translation=[geometry["v2_ref"], geometry["v3_ref"]], name="idl_to_v2v3"
    )
    forward = (
        (am.Shift(-xr, name="x_ref") & am.Shift(-yr, name="y_ref"))
        | am.Mapping((0, 1, 0, 1))
        | (px & py)
        | idl2v23
    )
    inverse = (
        idl2v23.inverse
        | (am.Scale(1 / norm) & am.Scale(1 / norm))
        | am.Mapping((0, 1, 0, 1))
        | (ix & iy)
        | (am.Shift(xr) & am.Shift(yr))
    )
    forward.inverse = inverse
    forward.name = f"{WFI_DETECTORS[index]}_distortion"
    forward.bounding_box = ((-0.5, ny - 0.5), (-0.5, nx - 0.5))  # astropy order: (y, x)
    return forward
