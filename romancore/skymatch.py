"""The mosaic ``skymatch`` step on a container: measure and match the sky of overlapping images.

Each member becomes a :class:`~romancore.algorithms.skymatch.SkyImage` built from its
``meta.wcs`` (footprint and sky → pixel mapping), its data and its DQ (pixels whose
flags are all in ``dqbits`` are usable); :func:`~romancore.algorithms.skymatch.match_sky`
computes the levels (ALGORITHMS.md §8).  Each member gets ``meta.background``
(``level``, ``method``, ``subtracted``) and ``meta.cal_step.skymatch`` (SKIPPED when
its sky could not be computed); with ``subtract=True`` the level is also subtracted
from its data.  Otherwise resample and outlier detection subtract it later.
"""

from __future__ import annotations

import logging

import numpy as np

from romancore.errors import RomancoreError

from .resample import check_imaging, input_wcs, member_name, release_member, store_array

log = logging.getLogger(__name__)


def _callables(wcs):
    def pixel_to_world(x, y):
        return wcs(x, y, with_bounding_box=False)

    def world_to_pixel(ra, dec):
        return wcs.invert(ra, dec, with_bounding_box=False)

    return pixel_to_world, world_to_pixel


def skymatch(
    container,
    *,
    skymethod: str = "match",
    match_down: bool = True,
    subtract: bool = False,
    stepsize: int | None = None,
    skystat: str = "mode",
    dqbits="~DO_NOT_USE+NON_SCIENCE",
    lower: float | None = None,
    upper: float | None = None,
    nclip: int = 5,
    lsigma: float = 4.0,
    usigma: float = 4.0,
    binwidth: float = 0.1,
):
    """Compute the sky of every member and record it in ``meta.background``.

    Parameters
    ----------
    container : ModelContainer of ImageModel
        Images with ``meta.wcs``; data in any unit (the levels are in that unit).
    skymethod : {"local", "global", "match", "global+match"}
    match_down : bool
        Matched levels are relative to the lowest (True) or highest sky.
    subtract : bool
        Subtract the levels from the data.
    stepsize : int or None
        Maximum spacing (pixels) of the footprint polygon vertices; None: corners only.
    skystat, lower, upper, nclip, lsigma, usigma, binwidth
        Sky statistic and its clipping (see :func:`romancore.algorithms.skymatch.sky_statistic`).
    dqbits : bit specification
        DQ bits that do not exclude a pixel.

    Returns
    -------
    The container (members updated in place).
    """
    from romancore.algorithms.skymatch import SkyImage, match_sky, usable_mask

    n = len(container)
    if n == 0:
        raise RomancoreError("skymatch: the container holds no images")
    check_imaging(container)

    def loader(index):
        # each member's pixels are read only while its own statistics are computed, so the
        # step holds one image at a time whatever the number of members
        def load():
            model = container[index]
            data = np.array(model.data, dtype=np.float32)
            mask = usable_mask(data, np.asarray(model.dq), dqbits)
            release_member(model)
            return data, mask
        return load

    images = []
    for i in range(n):
        model = container[i]
        name = member_name(container, i, model)
        try:
            wcs = input_wcs(model, name)
        except RomancoreError as exc:
            raise RomancoreError(f"skymatch: {exc}") from None
        fwd, inv = _callables(wcs)
        shape = np.shape(model.data)
        if len(shape) != 2:
            raise RomancoreError(f"skymatch: {name}: data has shape {shape}, expected a 2-D image")
        if "dq" in model and np.shape(model.dq) != shape:
            raise RomancoreError(f"skymatch: {name}: dq has shape {np.shape(model.dq)}, "
                                 f"expected {shape} (the shape of data)")
        images.append(SkyImage.deferred(shape, loader(i), fwd, inv, stepsize=stepsize, id=name))
        release_member(model)
    result = match_sky(images, skymethod=skymethod, match_down=match_down, subtract=False,
                       skystat=skystat, lower=lower, upper=upper, nclip=nclip, lsigma=lsigma,
                       usigma=usigma, binwidth=binwidth)
    del images
    for i in range(n):
        model = container[i]
        background = result.background(i)
        if subtract and result.valid[i]:
            level = np.float32(result.levels[i])
            data = np.asarray(model.data)
            if data.dtype == np.float32 and data.flags.writeable and not isinstance(data, np.memmap):
                data -= level
            elif isinstance(data, np.memmap) and data.mode in ("r+", "w+") and data.dtype == np.float32:
                data -= level  # a scratch array of a file-backed member
            else:  # never write into a copy-on-write map of the file: it is re-read on release
                store_array(model, "data", data.astype(np.float32) - level)
            background["subtracted"] = True
        else:
            background["subtracted"] = False
        model.meta.background = background
        model.meta.cal_step.skymatch = result.cal_step(i)
        log.info("skymatch: %s sky %.6g (%s, %s)", member_name(container, i, model),
                 background["level"], skymethod, "subtracted" if background["subtracted"] else "not subtracted")
        container[i] = model
        release_member(model)
    return container
