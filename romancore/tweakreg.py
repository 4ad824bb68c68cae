"""The ``tweakreg`` step on a container: align image WCSs to each other and to a reference catalog.

For every image: take its source catalog (the one ``source_catalog`` produced, a custom
catalog from ``catfile``, or a fresh detection), then
:func:`romancore.algorithms.tweakreg.align_images` fits the relative alignment between
exposure groups and the absolute alignment to ``abs_refcat`` (an ECSV or parquet file with
``ra``/``dec``; no network).  Corrected WCSs get a ``v2v3corr`` frame,
``meta.wcs_fit_results`` records the fit, and catalog sky positions are recomputed.
Images that cannot be aligned are marked SKIPPED with the reason; the others still are.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ParameterError

log = logging.getLogger(__name__)

_GAIA_NAMES = {"GAIADR1", "GAIADR2", "GAIADR3", "GAIAREFCAT"}
_ALIGN_KEYS = (
    "minobj", "searchrad", "use2dhist", "separation", "tolerance", "fitgeometry", "nclip", "sigma",
    "enforce_user_order", "expand_refcat", "abs_minobj", "abs_searchrad", "abs_use2dhist",
    "abs_separation", "abs_tolerance", "abs_fitgeometry", "abs_nclip", "abs_sigma",
)


def _read_catfile(catfile: str) -> dict[str, str]:
    """``image catalog`` pairs, one per line (paths relative to the catfile's folder)."""
    path = Path(catfile)
    if not path.is_file():
        raise ParameterError(f"tweakreg catfile={catfile!r}: no such file")
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise ParameterError(f"{catfile}:{number}: expected 'image catalog', got {line!r}")
        out[Path(words[0]).name] = str((path.parent / words[1]).resolve())
    return out


def _image_catalog(image, custom: dict, catalog_format: str):
    """(table for alignment, catalog model or None) of one image."""
    from .algorithms.source_catalog import tweakreg_catalog
    from .algorithms.tweakreg import read_catalog

    name = str(image.meta.get("filename", ""))
    if name in custom:
        return read_catalog(custom[name], format=catalog_format), None
    catalog_model = image.__dict__.get("_catalog")
    if catalog_model is None:
        log.info("tweakreg: %s has no catalog from source_catalog; detecting sources now", name)
        catalog_model, _segm = image.source_catalog()
    return tweakreg_catalog(catalog_model.source_catalog), catalog_model


def tweakreg(container, *, use_custom_catalogs: bool = False, catalog_format: str = "ascii.ecsv",
             catfile: str = "", catalog_path: str = "", abs_refcat: str = "",
             save_abs_catalog: bool = False, **align_params):
    """Align every image of ``container`` in place; returns the container."""
    from .algorithms.source_catalog import update_sky_coordinates
    from .algorithms.tweakreg import AlignInput, align_images

    unknown = set(align_params) - set(_ALIGN_KEYS)
    if unknown:
        raise ParameterError(f"tweakreg got unknown parameters {sorted(unknown)}")
    refcat = abs_refcat.strip() if isinstance(abs_refcat, str) else abs_refcat
    if isinstance(refcat, str) and refcat.upper() in _GAIA_NAMES:
        raise ParameterError(
            f"tweakreg abs_refcat={abs_refcat!r} names an online catalog, and romancore does not use "
            "the network: give a file (ECSV or parquet with ra, dec columns)"
        )
    if isinstance(refcat, str) and refcat and not Path(refcat).is_file():
        raise ParameterError(f"tweakreg abs_refcat={abs_refcat!r}: no such file")
    custom = _read_catfile(catfile) if use_custom_catalogs and catfile else {}
    if use_custom_catalogs and not catfile:
        raise ParameterError("tweakreg use_custom_catalogs=True needs catfile (lines of 'image catalog')")

    images = list(container)
    groups = getattr(container, "group_indices", {})
    group_of = {i: g for g, idx in (groups.items() if isinstance(groups, dict) else []) for i in idx}
    inputs, catalogs = [], []
    for i, image in enumerate(images):
        wcs = image.meta.get("wcs")
        table, catalog_model = _image_catalog(image, custom, catalog_format) if wcs is not None else (None, None)
        catalogs.append(catalog_model)
        inputs.append(AlignInput(wcs=wcs, catalog=table, wcsinfo=image.meta.wcsinfo.to_dict(),
                                 group_id=group_of.get(i, i), name=str(image.meta.get("filename", i)),
                                 shape=image.data.shape))
    if not refcat and len({a.group_id for a in inputs}) < 2:
        log.warning("tweakreg: one exposure and no abs_refcat file: nothing to align to; step SKIPPED "
                    "(give abs_refcat=<ECSV/parquet with ra, dec> for absolute alignment)")
        for image in images:
            image.meta.cal_step.tweakreg = "SKIPPED"
        return container
    result = align_images(inputs, refcat or None, **align_params)
    for i, (image, res) in enumerate(zip(images, result.images, strict=True)):
        if res.succeeded:
            image.meta.wcs = res.wcs
            image.meta.wcs_fit_results = _plain(res.fit_results)
            image.meta.cal_step.tweakreg = "COMPLETE"
            if catalogs[i] is not None:
                update_sky_coordinates(catalogs[i].source_catalog, res.wcs)
            log.info("tweakreg: %s aligned (%s)", res.name, _summary(res.fit_results))
        else:
            image.meta.cal_step.tweakreg = "SKIPPED"
            log.warning("tweakreg: %s not aligned: %s", res.name, res.status)
        container[i] = image
    if save_abs_catalog and result.refcat is not None:
        folder = Path(catalog_path) if catalog_path else Path(".")
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "fit_abs_refcat.ecsv"
        result.refcat.write(out, format="ascii.ecsv", overwrite=True)
        log.info("tweakreg: absolute reference catalog written to %s", out)
    return container


def _plain(value):
    """Fit results as plain Python values (lists, floats) for the metadata tree."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _summary(fit: dict) -> str:
    parts = []
    for key in ("nmatches", "rmse", "shift"):
        if key in fit:
            parts.append(f"{key}={fit[key]}")
    return ", ".join(parts)
