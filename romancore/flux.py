"""The mosaic ``flux`` step on a container: every L2 image from DN/s to MJy/sr (idempotent).

Members read from files are converted into scratch arrays (shared maps of unlinked
temporary files, see :func:`romancore.resample.release_member`) rather than in their
copy-on-write file maps, and their pages are handed back once converted: the resident
memory of the step does not grow with the number of members.
"""

from __future__ import annotations

import logging

from .resample import file_backed, release_member, scratch_array, store_array

log = logging.getLogger(__name__)

_SCALED = ("data", "err", "var_poisson", "var_rnoise", "var_flat")


def _converted(image) -> bool:
    cal = image.meta.get("cal_step")
    return cal is not None and cal.get("flux") == "COMPLETE"


def _to_surface_brightness_scratch(image) -> None:
    """``image.to_surface_brightness()`` for a file-backed image, results in scratch arrays."""
    import numpy as np

    from .algorithms.flux import surface_brightness_factor

    c = surface_brightness_factor(image.meta.photometry.conversion_megajanskys)
    arrays = {}
    for name in _SCALED:
        if name in image:
            src = getattr(image, name)
            out = scratch_array(np.shape(src), np.float32)
            # one pass: read the file's values, write the scaled ones (data and err × C,
            # variances × C²), as scale_to_surface_brightness does in place
            factor = c if name in ("data", "err") else c * c
            np.multiply(src, np.float32(factor), out=out, casting="unsafe")
            arrays[name] = out
    for name, out in arrays.items():
        store_array(image, name, out)
    image.meta.cal_step.flux = "COMPLETE"


def flux(container):
    """Convert every member of ``container`` in place (members already converted are left alone)."""
    for index in range(len(container)):
        image = container[index]
        if file_backed(image) and not _converted(image) and "data" in image and "err" in image:
            _to_surface_brightness_scratch(image)
        else:
            image.to_surface_brightness()
        container[index] = image
        release_member(image)
    return container
