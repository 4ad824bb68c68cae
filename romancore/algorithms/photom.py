"""Photometric calibration values for a filter (ALGORITHMS.md §5.6): metadata only.

The PHOTOM reference ``phot_table`` maps a filter name (F062 … F213) to ``photmjsr``
((MJy/sr) per (DN/s)), ``uncertainty`` and ``pixelareasr`` (sr).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError

__all__ = ["photometry_for_filter", "MJY_SR_TO_UJY_ARCSEC2", "SR_TO_ARCSEC2"]

#: 1 sr in arcsec²
SR_TO_ARCSEC2 = (180.0 / math.pi * 3600.0) ** 2
#: (MJy/sr) → (µJy/arcsec²)
MJY_SR_TO_UJY_ARCSEC2 = 1e12 / SR_TO_ARCSEC2


def _number(row, key):
    value = row.get(key) if hasattr(row, "get") else None
    if value is None:
        return None
    arr = np.asarray(getattr(value, "value", value), dtype=float)  # Quantity or number
    if arr.size != 1:
        raise ParameterError(f"PHOTOM {key} must be a scalar, got an array of shape {arr.shape}")
    value = float(arr.reshape(-1)[0])
    return value if math.isfinite(value) else None


def photometry_for_filter(phot_table, optical_element: str) -> dict | None:
    """``meta.photometry`` values for ``optical_element``, or None when the table lacks it."""
    if hasattr(phot_table, "to_dict"):
        phot_table = phot_table.to_dict()
    row = phot_table.get(str(optical_element).upper()) if hasattr(phot_table, "get") else None
    if row is None:
        return None
    mjsr = _number(row, "photmjsr")
    unc = _number(row, "uncertainty")
    area = _number(row, "pixelareasr")
    out = {
        "conversion_megajanskys": mjsr,
        "conversion_megajanskys_uncertainty": unc,
        "conversion_microjanskys": None if mjsr is None else mjsr * MJY_SR_TO_UJY_ARCSEC2,
        "conversion_microjanskys_uncertainty": None if unc is None else unc * MJY_SR_TO_UJY_ARCSEC2,
        "pixel_area": area,
        "pixel_area_arcsecsq": None if area is None else area * SR_TO_ARCSEC2,
    }
    return out
