"""The mosaic ``outlier_detection`` step on a container: flag cosmic rays against a median.

Orchestration of :mod:`romancore.algorithms.outlier_detection` and the drizzle
(ALGORITHMS.md §7):

* **resample_data=True**: the members are grouped by exposure
  (``container.group_indices``); each group is drizzled onto one common grid (the
  association's skycell when ``resample_on_skycell``, else a TAN grid covering every
  input) with sky levels that skymatch measured but did not subtract removed.  The
  groups stream one at a time into :func:`median_of_resampled`, which spills each
  resampled plane to a memory-mapped file (``in_memory=False``) or keeps them all
  (``in_memory=True``) and takes the tiled, weight-thresholded (``maskpt``) median with
  ``nlow``/``nhigh`` rejection.  The median is blotted back onto each input with the
  same pixel map (:func:`blot_median`: sharpened by the drizzle's smoothing and
  sampled with cubic splines, so that undersampled star cores are not flagged), and
  :func:`flag_resampled_crs` compares data − blot − background with ``snr``/``scale``
  and ``grow``.
* **resample_data=False**: the inputs must share one pixel grid; the median of the
  inputs themselves is compared with ``|data − median − background| > snr1·err``.

Flagged pixels get ``DO_NOT_USE | OUTLIER`` in ``dq``.  The background compared is
``backg`` plus the member's unsubtracted sky level.  With ``save_intermediate_results``
the median (``<product>_median.asdf``, a MosaicModel) and the blotted images
(``<member>_blot.asdf``) are written to ``output_dir`` (default: the association's
directory, else the current directory).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from romancore.errors import ParameterError, RomancoreError

from .resample import (
    check_imaging,
    exposure_time,
    float32,
    member_name,
    output_grid,
    pixmap_for,
    product_name,
    release_member,
    sky_level,
    store_array,
)

log = logging.getLogger(__name__)


def _set_all(container, status: str) -> None:
    for i in range(len(container)):
        model = container[i]
        model.meta.cal_step.outlier_detection = status
        container[i] = model


def _weight(model, name, weight_type, good_bits):
    from romancore.algorithms.drizzle import build_driz_weight

    var_rnoise = float32(model.var_rnoise) if "var_rnoise" in model else None
    texp = exposure_time(model, name) if weight_type == "exptime" else None
    return build_driz_weight(np.asarray(model.data), np.asarray(model.dq), var_rnoise, texp,
                             weight_type=weight_type, good_bits=good_bits)


def _err(model) -> np.ndarray:
    if "err" in model:
        return float32(model.err)
    total = np.zeros(np.shape(model.data), np.float32)
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        if name in model:
            total += np.nan_to_num(float32(model[name]))
    return np.sqrt(total)


def _outdir(container, output_dir) -> Path:
    if output_dir:
        return Path(output_dir)
    asn_path = getattr(container, "asn_file_path", None)
    return Path(asn_path).parent if asn_path else Path(".")


def outlier_detection(
    container,
    *,
    weight_type: str = "exptime",
    pixfrac: float = 1.0,
    kernel: str = "square",
    fillval="INDEF",
    nlow: int = 0,
    nhigh: int = 0,
    maskpt: float = 0.7,
    grow: int = 1,
    snr=(4.0, 3.0),
    scale=(0.5, 0.4),
    backg: float = 0.0,
    save_intermediate_results: bool = False,
    resample_data: bool = True,
    good_bits="0",
    allowed_memory: float | None = None,
    in_memory: bool = False,
    resample_on_skycell: bool = True,
    output_dir: str | None = None,
):
    """Flag outliers in every member of ``container`` (updates ``dq`` in place).

    Parameters
    ----------
    container : ModelContainer of ImageModel
        At least 2 images with ``meta.wcs`` (with fewer the step is SKIPPED).
    weight_type : {"ivm", "exptime"}
        Weights of the per-group resampling and of the median threshold.
    pixfrac, kernel, fillval
        Drizzle options of the per-group resampling (``fillval``: value of grid
        pixels no input reached; these have zero weight and enter the median only
        when ``maskpt=0``).
    nlow, nhigh : int
        Lowest / highest values of each pixel stack dropped from the median.
    maskpt : float
        Resampled pixels with weight below ``maskpt`` × the clipped mean weight of
        their group are left out of the median.
    grow : int
        Half-size of the box by which primary detections are grown.
    snr, scale : pair of float
        Primary and neighbour thresholds (noise sigmas, derivative factors).
    backg : float
        Background added to each member's unsubtracted sky level in the comparison.
    save_intermediate_results : bool
        Write ``_median`` and ``_blot`` products to ``output_dir``.
    resample_data : bool
        Median of resampled groups (True) or of the inputs on their own common grid.
    good_bits : bit specification
        DQ bits that do not exclude a pixel from the median.
    allowed_memory : float or None
        Fraction of the available memory one resampled group may use.
    in_memory : bool
        Keep every resampled group in memory for the median (False: memory-mapped
        temporary files, one group resident at a time).
    resample_on_skycell : bool
        Use the skycell the association names as the common grid.
    output_dir : str or None
        Directory of the intermediate products.

    Returns
    -------
    The container.
    """
    from romancore.algorithms.drizzle import Drizzler, estimate_pixel_scale_ratio
    from romancore.algorithms.outlier_detection import (
        PreparedMedian,
        blot_median,
        detect_outliers_same_grid,
        flag_resampled_crs,
        median_of_resampled,
        outlier_dq,
        parse_pair,
        resampling_blur_variance,
    )

    if weight_type not in ("ivm", "exptime"):
        raise ParameterError(f"weight_type={weight_type!r}: must be 'ivm' or 'exptime'")
    snr = parse_pair(snr, "snr")
    scale = parse_pair(scale, "scale")
    n = len(container)
    if n < 2:
        log.warning("outlier_detection needs at least 2 input images, got %d: step SKIPPED", n)
        _set_all(container, "SKIPPED")
        return container
    check_imaging(container)
    groups = list(container.group_indices.values())
    if resample_data and len(groups) < 2:
        log.warning("outlier_detection: all %d images belong to one exposure group; the median of a "
                    "single group cannot reveal outliers: step SKIPPED", n)
        _set_all(container, "SKIPPED")
        return container
    if nlow + nhigh >= (len(groups) if resample_data else n):
        raise ParameterError(
            f"nlow={nlow} + nhigh={nhigh} must be smaller than the number of "
            f"{'exposure groups' if resample_data else 'images'} ({len(groups) if resample_data else n})"
        )
    outdir = _outdir(container, output_dir)
    product = product_name(container) or "outlier"

    if not resample_data:
        _same_grid(container, weight_type=weight_type, good_bits=good_bits, maskpt=maskpt, snr=snr,
                   nlow=nlow, nhigh=nhigh, backg=backg, detect=detect_outliers_same_grid,
                   outlier_dq=outlier_dq)
        return container

    grid = output_grid(container, None, resample_on_skycell=resample_on_skycell)

    def resampled_groups(reuse: bool):
        # ``reuse``: the consumer is done with a group's planes before it asks for the
        # next one (the streamed median spills each plane), so one pair of output
        # arrays serves every group (no fresh pages to fault in per group)
        out_data = out_weight = None
        for idx in groups:
            if reuse:
                if out_data is None:
                    out_data = np.empty(grid.shape, np.float32)
                    out_weight = np.empty(grid.shape, np.float32)
                out_data.fill(np.nan)
                out_weight.fill(0.0)
            driz = Drizzler(grid.shape, kernel=kernel, pixfrac=pixfrac, fillval=fillval,
                            want_context=False, pixel_scale_ratio=grid.pixel_scale_ratio,
                            allowed_memory=allowed_memory, out_data=out_data,
                            out_weight=out_weight)
            for i in idx:
                model = container[i]
                name = member_name(container, i, model)
                data = float32(model.data)
                level = sky_level(model)
                if level:
                    data = data - np.float32(level)
                weight = _weight(model, name, weight_type, good_bits)
                driz.add_image(data, weight, pixmap_for(model, grid, name))
                del data, weight
                release_member(model)
            res = driz.finalize()
            log.info("outlier_detection: resampled exposure group of %d image(s)", len(idx))
            yield res.data, res.weight

    if in_memory:
        median = median_of_resampled(list(resampled_groups(False)), maskpt=maskpt, nlow=nlow,
                                     nhigh=nhigh)
    else:
        with tempfile.TemporaryDirectory(prefix="romancore_outlier_") as spill:
            median = median_of_resampled(resampled_groups(True), maskpt=maskpt, nlow=nlow,
                                         nhigh=nhigh, spill_dir=spill)
    if save_intermediate_results:
        _save_median(median, grid, outdir, product)

    total = 0
    prepared = None  # the median's spline coefficients, shared by inputs of one blur variance
    for i in range(n):
        model = container[i]
        name = member_name(container, i, model)
        pixmap = pixmap_for(model, grid, name)
        psr = grid.pixel_scale_ratio or estimate_pixel_scale_ratio(pixmap)
        variance = resampling_blur_variance(kernel, pixfrac, psr)
        if prepared is None or prepared.blur_variance != variance:
            prepared = None  # free the old coefficients first
            prepared = PreparedMedian(median, variance)
        blotted = blot_median(prepared, pixmap)
        del pixmap
        background = float(backg) + sky_level(model)
        mask = flag_resampled_crs(float32(model.data), _err(model), blotted, snr=snr, scale=scale,
                                  backg=background, grow=grow)
        store_array(model, "dq", np.asarray(model.dq, dtype=np.uint32) | outlier_dq(mask), np.uint32)
        _record(model, good_bits)
        nflag = int(mask.sum())
        total += nflag
        log.info("outlier_detection: %s: %d pixels flagged (%.3f%%)", name, nflag, 100.0 * nflag / mask.size)
        if save_intermediate_results:
            _save_blot(model, blotted, outdir, name)
        container[i] = model
        release_member(model)
        del blotted, mask
    del prepared
    log.info("outlier_detection: %d pixels flagged in %d images", total, n)
    return container


def _record(model, good_bits):
    model.meta.cal_step.outlier_detection = "COMPLETE"
    try:
        model.meta.outlier_detection.good_bits = str(good_bits)
    except AttributeError:  # schema without meta.outlier_detection
        pass


def _same_grid(container, *, weight_type, good_bits, maskpt, snr, nlow, nhigh, backg, detect, outlier_dq):
    n = len(container)
    data, err, weights, levels = [], [], [], []
    shape = None
    for i in range(n):
        model = container[i]
        name = member_name(container, i, model)
        d = np.array(model.data, dtype=np.float32)
        if shape is None:
            shape = d.shape
        elif d.shape != shape:
            raise RomancoreError(
                f"outlier_detection with resample_data=False needs inputs on one pixel grid: "
                f"{name} has shape {d.shape}, the first input {shape}"
            )
        data.append(d)
        err.append(_err(model))
        weights.append(_weight(model, name, weight_type, good_bits))
        levels.append(float(backg) + sky_level(model))
    masks = detect(data, err, weights, maskpt=maskpt, snr=snr, nlow=nlow, nhigh=nhigh, backg=levels)
    del data, err, weights
    for i, mask in enumerate(masks):
        model = container[i]
        store_array(model, "dq", np.asarray(model.dq, dtype=np.uint32) | outlier_dq(mask), np.uint32)
        _record(model, good_bits)
        log.info("outlier_detection: %s: %d pixels flagged", member_name(container, i, model), int(mask.sum()))
        container[i] = model


def _save_median(median, grid, outdir: Path, product: str) -> Path:
    from romancore.datamodels import MosaicModel
    from romancore.wcs import l3_wcsinfo

    zeros = np.zeros(grid.shape, np.float32)
    model = MosaicModel.create_minimal(
        meta={"wcs": grid.wcs, "wcsinfo": l3_wcsinfo(grid.wcs, grid.shape, skycell_name=grid.skycell_name or "none")},
        data=np.asarray(median, np.float32), err=zeros, weight=zeros, var_rnoise=zeros, var_poisson=zeros,
        context=np.zeros((1,) + grid.shape, np.uint32),
    )
    outdir.mkdir(parents=True, exist_ok=True)
    path = model.save(outdir / f"{product}_median.asdf", overwrite=True)
    log.info("outlier_detection: saved the median image %s", path)
    return path


def _save_blot(model, blotted, outdir: Path, name: str) -> Path:
    from romancore.pipeline.naming import with_suffix

    copy = model.copy()
    copy.data = np.asarray(blotted, np.float32)
    outdir.mkdir(parents=True, exist_ok=True)
    path = copy.save(outdir / with_suffix(name, "blot"), overwrite=True)
    log.info("outlier_detection: saved the blotted median %s", path)
    return path
