"""The mosaic ``resample`` step on a container: drizzle L2 images onto one L3 grid.

Pipeline-layer orchestration around :mod:`romancore.algorithms.drizzle`
(ALGORITHMS.md §6.5, §6.6, §11):

1. **Output grid**, first that applies: ``output_wcs`` (an ASDF file with a gwcs
   under ``wcs``); the skycell named by the association when
   ``resample_on_skycell`` (its ``skycell_wcs_info``, or its ``target`` looked up in
   the SKYCELLS reference); else a TAN grid covering every input
   (:func:`romancore.wcs.make_output_wcs`) shaped by ``pixel_scale`` /
   ``pixel_scale_ratio``, ``rotation``, ``crpix``, ``crval``, ``output_shape``.
2. **Streaming**: members are fetched one at a time (an on-disk container keeps only
   one resident); each is mapped with :func:`calc_pixmap`, weighted with
   :func:`build_driz_weight` (``weight_type``, ``good_bits``), sky-subtracted when
   skymatch measured but did not subtract a level, and added to one
   :class:`Drizzler`.  Peak memory is O(output + one input).
3. **Product**: a :class:`~romancore.datamodels.MosaicModel` with data, weight,
   context, err (= sqrt of the summed variances), var_rnoise, var_poisson
   (+ var_flat), the exposure-time map ``exptime``, ``meta.wcs``, L3 ``wcsinfo``,
   ``resample``, ``coadd_info``, ``association``, ``instrument``, ``cal_step`` and
   (``blendheaders``) ``individual_image_meta``.

``single=True`` drizzles each input onto its own copy of the grid and returns a
container of mosaics.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import os
import tempfile
from pathlib import Path

import numpy as np

from romancore.datamodels.base import get_meta
from romancore.errors import ParameterError, RomancoreError

log = logging.getLogger(__name__)

SPECTRAL_TYPES = ("WFI_GRISM", "WFI_PRISM", "WFI_SPECTRAL")
VARIANCES = ("var_rnoise", "var_poisson")
# sparse-grid spacing of the pixel maps: on a 5th-order distortion with ~2 arcsec at the
# corners (tests/test_pixmap.py) step 32 interpolates to 3e-8 px, step 64 to 5e-7 px
PIXMAP_STEPSIZE = 32
PIXMAP_ORDER = 3

__all__ = ["OutputGrid", "check_imaging", "output_grid", "release_member", "resample", "sky_level",
           "member_name", "scratch_array", "store_array"]


# ----------------------------------------------------------------------------- small helpers
def _real(value) -> float | None:
    """A usable number (not None, NaN or the -999999 placeholder)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or v == -999999:
        return None
    return v


def member_name(container, index: int, model=None) -> str:
    """A name for messages: ``meta.filename``, else the member's file, else ``member <i>``."""
    name = get_meta(model, "filename") if model is not None else None
    if isinstance(name, str) and name.strip() not in ("", "?"):
        return name
    paths = container.paths() if hasattr(container, "paths") else []
    if index < len(paths) and paths[index] is not None:
        return Path(paths[index]).name
    return f"member {index}"


def check_imaging(container) -> None:
    """Refuse spectroscopic exposures (the mosaic pipeline is for imaging only).

    A container that passed is marked, so later steps do not fetch every member again
    (which costs a write per member in an on-disk container).
    """
    if getattr(container, "_romancore_imaging_checked", None) == len(container):
        return
    for i in range(len(container)):
        model = container[i]
        exptype = str(get_meta(model, "exposure.type", "") or "").upper()
        if exptype in SPECTRAL_TYPES:
            raise RomancoreError(
                f"{member_name(container, i, model)} is a {exptype} exposure: the mosaic pipeline "
                "processes imaging data only (spectroscopic data are calibrated elsewhere)"
            )
    try:
        container._romancore_imaging_checked = len(container)
    except AttributeError:  # a plain sequence
        pass


def sky_level(model) -> float:
    """The sky still present in the data: ``meta.background.level`` when not subtracted, else 0."""
    if get_meta(model, "background.subtracted", False) is True:
        return 0.0
    level = _real(get_meta(model, "background.level"))
    return 0.0 if level is None else level


def input_wcs(model, name: str):
    wcs = get_meta(model, "wcs")
    if wcs is None or not callable(wcs):
        raise RomancoreError(f"{name} has no WCS (meta.wcs): run assign_wcs before the mosaic steps")
    return wcs


def exposure_time(model, name: str) -> float:
    """Effective exposure time of an input (falls back to ``exposure_time``), seconds."""
    for key in ("exposure.effective_exposure_time", "exposure.exposure_time"):
        t = _real(get_meta(model, key))
        if t is not None and t > 0:
            return t
    raise RomancoreError(
        f"{name} has no positive meta.exposure.effective_exposure_time or exposure_time: "
        "the exposure-time map cannot be made"
    )


def pixmap_for(model, grid: OutputGrid, name: str) -> np.ndarray:
    """Pixel map of one input onto the grid (float64 [ny, nx, 2], NaN outside its bounding box)."""
    from romancore.algorithms.pixmap import calc_pixmap

    wcs = input_wcs(model, name)

    def forward(x, y):
        return wcs(x, y, with_bounding_box=False)

    bbox = getattr(wcs, "bounding_box", None)
    if bbox is not None and not isinstance(bbox, (tuple, list)):
        try:
            bbox = bbox.bounding_box(order="F")
        except (AttributeError, TypeError):
            bbox = None
    return calc_pixmap(forward, grid.world_to_pixel, np.shape(model.data), stepsize=PIXMAP_STEPSIZE,
                       order=PIXMAP_ORDER, bounding_box=bbox)


def overlaps_grid(pixmap: np.ndarray, shape, margin: float) -> bool:
    """Whether any input pixel lies (at least partly) on the output grid."""
    ny, nx = shape
    x, y = pixmap[..., 0], pixmap[..., 1]
    with np.errstate(invalid="ignore"):
        inside = ((x > -0.5 - margin) & (x < nx - 0.5 + margin)
                  & (y > -0.5 - margin) & (y < ny - 0.5 + margin))
    return bool(inside.any())


def float32(arr) -> np.ndarray:
    return np.asarray(arr, dtype=np.float32)


# ----------------------------------------------------------------------------- member memory
# Members opened from files read their arrays as copy-on-write memory maps.  The mosaic
# steps keep every result they compute for such a member (flux-scaled arrays, new DQ) in
# *scratch arrays*: shared memory maps of unlinked temporary files.  Once a step is done
# with a member, ``release_member`` hands all its pages back to the operating system (the
# values stay in the page cache / on disk and are faulted back in when next used), so the
# resident memory does not grow with the number of members.
def file_backed(model) -> bool:
    """Whether ``model`` was read from a file (its arrays can be re-read lazily)."""
    return getattr(model, "_source_path", None) is not None


def scratch_array(shape, dtype) -> np.ndarray:
    """A zeroed array in a shared memory map of an unlinked temporary file."""
    fd, path = tempfile.mkstemp(prefix="romancore_scratch_", suffix=".bin")
    try:
        with os.fdopen(fd, "w+b") as fh:
            arr = np.memmap(fh, dtype=dtype, mode="w+", shape=tuple(int(v) for v in shape))
    finally:
        os.unlink(path)  # the mapping keeps the data; the space is freed when it is unmapped
    return arr


def store_array(model, name: str, values, dtype=np.float32) -> np.ndarray:
    """Set ``model.<name>`` to ``values`` (kept in a scratch array when ``model`` is file-backed)."""
    if not _is_scratch(values):  # np.asarray would turn a scratch memmap into a plain view
        values = np.asarray(values)
    if file_backed(model):
        out = values if _is_scratch(values) and values.dtype == dtype else scratch_array(values.shape, dtype)
        if out is not values:
            out[...] = values
    else:
        out = values.astype(dtype, copy=False)
    setattr(model, name, out)
    # the file's original must not come back when the model's file-read arrays are released
    lazy = model.__dict__.get("_lazy")
    if lazy:
        lazy.pop(name, None)
    return out


def _is_scratch(arr) -> bool:
    return isinstance(arr, np.memmap) and getattr(arr, "mode", None) in ("r+", "w+")


def release_member(model) -> None:
    """Return the pages of a file-backed member to the OS (no-op for in-memory models).

    Scratch arrays are advised ``MADV_DONTNEED`` (their values stay in the file), arrays
    read from the model's file are dropped (``model.release_arrays()``) and read again
    when next used.
    """
    if not file_backed(model):
        return
    for value in list(model.to_tree().values()):
        if _is_scratch(value):
            mm = getattr(value, "_mmap", None)
            if mm is not None and hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_DONTNEED)
    if hasattr(model, "release_arrays"):
        model.release_arrays()


# ----------------------------------------------------------------------------- output grid
class OutputGrid:
    """An output grid: gwcs, shape (ny, nx), how it was chosen and its pixel scale ratio.

    ``pixel_scale_ratio`` is output/input pixel scale, or None (let the drizzle
    estimate it from the first pixmap).  ``skycell_name`` is set for skycell grids.
    """

    def __init__(self, wcs, shape, source: str, pixel_scale_ratio=None, skycell_name=None):
        self.wcs = wcs
        self.shape = (int(shape[0]), int(shape[1]))
        self.source = source
        self.pixel_scale_ratio = pixel_scale_ratio
        self.skycell_name = skycell_name

    def world_to_pixel(self, ra, dec):
        """Sky (deg) -> grid pixel, bounding box ignored; the inverse transform is built once."""
        inverse = self.__dict__.get("_inverse")
        if inverse is None:
            inverse = self.wcs.backward_transform
            self._inverse = inverse
        return inverse(ra, dec, with_bounding_box=False)

    def __repr__(self):
        return f"<OutputGrid {self.source} shape={self.shape} psr={self.pixel_scale_ratio}>"


def _asn_skycell(container):
    """(skycell name or None, skycell_wcs_info dict or None) named by the association."""
    asn = getattr(container, "asn_table", None) or {}
    info = asn.get("skycell_wcs_info")
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except json.JSONDecodeError:
            raise RomancoreError(f"association skycell_wcs_info is not valid JSON: {info[:80]!r}") from None
    if info is not None and not isinstance(info, dict):
        raise RomancoreError("association skycell_wcs_info must be a mapping")
    name = (info or {}).get("name")
    target = asn.get("target")
    if not name and isinstance(target, str) and target.strip().lower() not in ("", "none"):
        name = target.strip()
    return name, (info or None)


def _grid_from_wcs_info(info: dict) -> tuple:
    from romancore.wcs import make_tan_wcs

    try:
        o = math.radians(float(info.get("orientat_projection_center", 0.0)))
        pc = np.array([[math.cos(o), math.sin(o)], [-math.sin(o), math.cos(o)]])
        wcs = make_tan_wcs(
            (float(info["ra_projection_center"]), float(info["dec_projection_center"])),
            (float(info["x0_projection"]), float(info["y0_projection"])),
            float(info["pixel_scale"]) * 3600.0, pc=pc,
            shape=(int(info["ny"]), int(info["nx"])), name=str(info.get("name", "skycell")),
        )
    except KeyError as exc:
        raise RomancoreError(f"association skycell_wcs_info lacks {exc.args[0]!r}") from None
    return wcs, (int(info["ny"]), int(info["nx"]))


def _input_scale(model, name: str) -> float:
    """Input pixel scale (arcsec): from meta.photometry.pixel_area, else the WCS at the centre."""
    from romancore.wcs import compute_scale

    area = _real(get_meta(model, "photometry.pixel_area"))
    if area is not None and area > 0:
        return math.degrees(math.sqrt(area)) * 3600.0
    ny, nx = np.shape(model.data)
    return compute_scale(input_wcs(model, name), pixel=((nx - 1) / 2.0, (ny - 1) / 2.0))


def _grid_scale(wcs, shape) -> float:
    from romancore.wcs import compute_scale

    ny, nx = shape
    return compute_scale(wcs, pixel=((nx - 1) / 2.0, (ny - 1) / 2.0))


def _load_output_wcs(path, output_shape):
    import asdf

    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"output_wcs={str(path)!r}: the file does not exist")
    with asdf.open(p, lazy_load=False, memmap=False) as af:
        wcs = af.tree.get("wcs")
    if wcs is None or not hasattr(wcs, "invert"):
        raise ParameterError(f"output_wcs={str(path)!r}: the file holds no gwcs under 'wcs'")
    if output_shape is not None:
        nx, ny = (int(v) for v in output_shape)
    elif wcs.bounding_box is not None:
        (x0, x1), (y0, y1) = wcs.bounding_box.bounding_box(order="F")
        nx, ny = int(x1 - x0 + 0.5), int(y1 - y0 + 0.5)
    elif wcs.pixel_shape is not None:
        nx, ny = wcs.pixel_shape
    else:
        raise ParameterError(
            f"output_wcs={str(path)!r} has no bounding_box or pixel_shape: give output_shape=nx,ny"
        )
    wcs.pixel_shape = (nx, ny)
    return wcs, (ny, nx)


def output_grid(container, skycells_ref=None, *, output_wcs: str = "", resample_on_skycell: bool = True,
                pixel_scale: float | None = None, pixel_scale_ratio: float = 1.0,
                rotation: float | None = None, crpix=None, crval=None, output_shape=None) -> OutputGrid:
    """Choose the output grid of a container (see the module docstring for the order).

    ``output_shape`` and ``crpix`` are (x, y) / (nx, ny) ordered, as on the command line.
    """
    first = container[0]
    first_name = member_name(container, 0, first)
    if output_wcs:
        wcs, shape = _load_output_wcs(output_wcs, output_shape)
        psr = _grid_scale(wcs, shape) / _input_scale(first, first_name)
        log.info("resampling onto the grid of %s, shape %s", output_wcs, shape)
        return OutputGrid(wcs, shape, "output_wcs", psr)

    if resample_on_skycell:
        name, info = _asn_skycell(container)
        if info is not None or name:
            wcs = shape = None
            if info is not None:
                wcs, shape = _grid_from_wcs_info(info)
            elif skycells_ref is not None:
                from romancore.skycells import skycell_wcs

                try:
                    wcs, shape = skycell_wcs(skycells_ref, name)
                except ParameterError as exc:
                    log.warning("association target %r is not a usable skycell (%s); "
                                "computing the grid from the inputs", name, exc)
            else:
                log.warning("association names skycell %r but has no skycell_wcs_info and no "
                            "SKYCELLS reference is available; computing the grid from the inputs", name)
            if wcs is not None:
                psr = _grid_scale(wcs, shape) / _input_scale(first, first_name)
                log.info("resampling onto skycell %s (shape %s, pixel scale ratio %.4g)", name, shape, psr)
                return OutputGrid(wcs, shape, "skycell", psr, skycell_name=str(name))
        else:
            log.info("the association names no skycell: computing the output grid from the inputs")

    from romancore.wcs import compute_scale, make_output_wcs

    wcss = []
    for i in range(len(container)):
        model = container[i]
        wcss.append(input_wcs(model, member_name(container, i, model)))
    shape = None
    if output_shape is not None:
        nx, ny = (int(v) for v in output_shape)
        shape = (ny, nx)
    wcs, shape = make_output_wcs(wcss, pixel_scale=pixel_scale, pixel_scale_ratio=pixel_scale_ratio,
                                 rotation=rotation, crpix=crpix, crval=crval, shape=shape)
    if pixel_scale is None:
        psr = float(pixel_scale_ratio)
    else:
        from romancore.wcs import tan_wcs_parameters

        ref = tan_wcs_parameters(wcs)["crval"]
        psr = float(pixel_scale) / compute_scale(wcss[0], sky=ref)
    log.info("output grid from the inputs: shape %s, pixel scale ratio %.4g", shape, psr)
    return OutputGrid(wcs, shape, "inputs", psr)


# ----------------------------------------------------------------------------- metadata
def _times(model):
    from astropy.time import Time

    out = []
    for key in ("exposure.start_time", "exposure.end_time"):
        t = get_meta(model, key)
        if isinstance(t, Time):
            out.append(t)
        elif isinstance(t, str):
            try:
                out.append(Time(t))
            except ValueError:
                pass
    return out


_BLEND_SECTIONS = ("exposure", "instrument", "observation", "pointing", "program", "visit",
                   "wcsinfo", "background", "photometry", "cal_step")


def _scalar(value):
    from astropy.time import Time

    if isinstance(value, Time):
        return value.isot
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None


class _MetaCollector:
    """Metadata gathered while members stream through (nothing big is kept)."""

    def __init__(self, blend: bool):
        self.blend = blend
        self.members: list[str] = []
        self.times: list = []
        self.cal_steps: dict[str, set] = {}
        self.first_meta: dict | None = None
        self.individual: dict[str, dict[str, list]] = {}

    def add(self, model, name: str):
        self.members.append(name)
        self.times.extend(_times(model))
        for key in ("flux", "skymatch", "outlier_detection"):
            self.cal_steps.setdefault(key, set()).add(get_meta(model, f"cal_step.{key}"))
        if self.first_meta is None:
            self.first_meta = {}
            for key in ("instrument", "observation", "program", "coordinates"):
                node = get_meta(model, key)
                if node is not None and hasattr(node, "to_dict"):
                    self.first_meta[key] = node.to_dict()
        if self.blend:
            n = len(self.members) - 1
            row = {"filename": name}
            for sec in _BLEND_SECTIONS:
                node = get_meta(model, sec)
                if node is None or not hasattr(node, "to_dict"):
                    continue
                for k, v in node.to_dict().items():
                    s = _scalar(v)
                    if s is not None or v is None:
                        row[f"{sec}.{k}"] = s
            for sec_key, value in row.items():
                sec, _, key = sec_key.rpartition(".")
                column = self.individual.setdefault(sec or "basic", {}).setdefault(key, [None] * n)
                column.append(value)
            for columns in self.individual.values():
                for column in columns.values():
                    if len(column) < n + 1:
                        column.append(None)


def _mosaic_meta(grid: OutputGrid, coll: _MetaCollector, container, result, *, pixfrac, weight_type,
                 good_bits, psr, product_name) -> dict:
    from astropy.time import Time

    from romancore.wcs import l3_wcsinfo

    meta: dict = {}
    first = coll.first_meta or {}
    inst = first.get("instrument", {})
    meta["instrument"] = {"name": "WFI", "optical_element": inst.get("optical_element", "F158")}
    obs = first.get("observation")
    if obs:
        keep = ("program", "execution_plan", "pass", "segment", "observation", "visit", "exposure")
        meta["observation"] = {k: obs[k] for k in keep if isinstance(obs.get(k), int)}
        meta["observation"]["exposure_grouping"] = str(obs.get("observation_id", "?"))
    for key in ("program", "coordinates"):
        if first.get(key):
            meta[key] = first[key]
    meta["wcs"] = grid.wcs
    info = l3_wcsinfo(grid.wcs, grid.shape, skycell_name=grid.skycell_name or "none")
    meta["wcsinfo"] = info
    groups = getattr(container, "group_indices", None)
    pointings = len(groups) if groups is not None else len(coll.members)
    meta["resample"] = {"good_bits": str(good_bits), "members": list(coll.members),
                        "pixel_scale_ratio": float(psr), "pixfrac": float(pixfrac),
                        "pointings": int(pointings), "weight_type": str(weight_type)}
    if coll.times:
        mjd = np.array([t.mjd for t in coll.times])
        tfirst, tlast = Time(mjd.min(), format="mjd"), Time(mjd.max(), format="mjd")
        tmean = Time(mjd.mean(), format="mjd")
    else:
        tfirst = tlast = tmean = Time("2020-01-01T00:00:00")
    emean = result.exptime_mean if math.isfinite(result.exptime_mean) else 0.0
    emax = result.exptime_max if math.isfinite(result.exptime_max) else 0.0
    meta["coadd_info"] = {"time_first": tfirst, "time_last": tlast, "time_mean": tmean,
                          "exposure_time": float(emean), "max_exposure_time": float(emax)}
    asn_name = getattr(container, "asn_table_name", None) or product_name or "none"
    meta["association"] = {"name": str(asn_name)}
    cal = {"resample": "COMPLETE"}
    for key, values in coll.cal_steps.items():
        vals = {v for v in values if v is not None}
        cal[key] = vals.pop() if len(vals) == 1 else ("INCOMPLETE" if vals else "SKIPPED")
    meta["cal_step"] = cal
    if coll.blend:
        meta["individual_image_meta"] = coll.individual
    meta["filename"] = f"{product_name}_coadd.asdf" if product_name else "mosaic_coadd.asdf"
    meta["model_type"] = "MosaicModel"
    return meta


def product_name(container) -> str | None:
    """The association's product name, else the first member's name without its suffix."""
    from romancore.pipeline.naming import remove_suffix, split_name

    asn = getattr(container, "asn_table", None)
    if asn:
        name = asn.get("products", [{}])[0].get("name")
        if name:
            return split_name(str(name))[0]
    if len(container):
        stem, _ = split_name(member_name(container, 0, container[0]))
        return remove_suffix(stem)
    return None


# ----------------------------------------------------------------------------- drizzling
def _drizzle_member(driz, model, name, grid, index, *, weight_type, good_bits, variance_planes,
                    exptime_weighting):
    from romancore.algorithms.drizzle import build_driz_weight

    data = float32(model.data)
    dq = np.asarray(model.dq)
    var_rnoise = float32(model.var_rnoise) if "var_rnoise" in model else None
    texp = exposure_time(model, name)
    weight = build_driz_weight(data, dq, var_rnoise, texp, weight_type=weight_type, good_bits=good_bits)
    level = sky_level(model)
    if level:
        data = data - np.float32(level)
    pixmap = pixmap_for(model, grid, name)
    margin = 1.0 / grid.pixel_scale_ratio if grid.pixel_scale_ratio else 2.0
    if not overlaps_grid(pixmap, grid.shape, margin):
        log.info("%s does not overlap the output grid", name)
        return False
    variances = {}
    for vname in variance_planes:
        if vname in model:
            variances[vname] = float32(model[vname])
        else:
            variances[vname] = np.full(data.shape, np.nan, np.float32)
    exptime_weight = None if exptime_weighting is None else exptime_weighting(dq)
    driz.add_image(data, weight, pixmap, exptime=texp, variances=variances, input_index=index,
                   exptime_weight=exptime_weight)
    return True


def _variance_planes(container, include_var_flat: bool) -> tuple[str, ...]:
    planes = list(VARIANCES)
    if include_var_flat:
        planes.append("var_flat")
    return tuple(planes)


def _build_mosaic(result, grid, coll, container, *, pixfrac, weight_type, good_bits, product):
    from romancore.datamodels import MosaicModel

    psr = result.pixel_scale_ratio if result.pixel_scale_ratio is not None else (grid.pixel_scale_ratio or 1.0)
    meta = _mosaic_meta(grid, coll, container, result, pixfrac=pixfrac, weight_type=weight_type,
                        good_bits=good_bits, psr=psr, product_name=product)
    var = result.variances
    with np.errstate(invalid="ignore"):
        stack = [var[v] for v in var]
        total = np.zeros(grid.shape, np.float32)
        any_finite = np.zeros(grid.shape, bool)
        for v in stack:
            finite = np.isfinite(v)
            total += np.where(finite, v, np.float32(0))
            any_finite |= finite
        err = np.where(any_finite, np.sqrt(total), np.float32(np.nan)).astype(np.float32)
    context = result.context if result.context is not None else np.zeros((1,) + grid.shape, np.uint32)
    arrays = {"data": result.data, "weight": result.weight, "context": context.astype(np.uint32, copy=False),
              "err": err, "var_rnoise": var["var_rnoise"], "var_poisson": var["var_poisson"]}
    if "var_flat" in var:
        arrays["var_flat"] = var["var_flat"]
    if result.exptime is not None:
        arrays["exptime"] = result.exptime
    mosaic = MosaicModel.create_minimal(meta=meta, **arrays)
    if not np.isfinite(result.data).any():
        log.warning("the mosaic has no valid pixel (every input pixel was flagged or had zero weight)")
    return mosaic


def resample(
    container,
    skycells_ref=None,
    *,
    pixfrac: float = 1.0,
    kernel: str = "square",
    pixel_scale_ratio: float = 1.0,
    pixel_scale: float | None = None,
    rotation: float | None = None,
    crpix=None,
    crval=None,
    output_shape=None,
    output_wcs: str = "",
    fillval="INDEF",
    weight_type: str = "ivm",
    single: bool = False,
    blendheaders: bool = True,
    allowed_memory: float | None = None,
    in_memory: bool = True,
    good_bits="~DO_NOT_USE+NON_SCIENCE",
    resample_on_skycell: bool = True,
    include_var_flat: bool = False,
):
    """Drizzle every member of ``container`` onto one output grid.

    Parameters
    ----------
    container : ModelContainer of ImageModel
        L2 images with ``meta.wcs`` (surface brightness after ``flux``).
    skycells_ref : SkycellsRefModel or None
        SKYCELLS reference used to look up a skycell named only by the association
        ``target``.
    pixfrac, kernel, fillval
        Drizzle drop size (0-1], kernel (``square``, ``point``, ``turbo``, ``gaussian``,
        ``lanczos2``, ``lanczos3``) and value of pixels with no input (number,
        ``"NAN"`` or ``"INDEF"``: left NaN).
    pixel_scale_ratio, pixel_scale, rotation, crpix, crval, output_shape
        Output TAN grid when it is computed from the inputs: output/input pixel
        scale, or absolute scale in arcsec; position angle of +y (deg, None =
        that of the first input); reference pixel (x, y, 0-based); reference
        RA, Dec (deg); shape (nx, ny).  ``output_shape`` also sizes an
        ``output_wcs`` without a bounding box.
    output_wcs : str
        ASDF file with a gwcs under ``wcs`` (overrides the grid options).
    weight_type : {"ivm", "exptime"}
        Input weights: good-DQ / var_rnoise, or good-DQ × exposure time.  The
        variance combination uses the same weighting.
    single : bool
        One output per input (returns a ModelContainer of MosaicModels).
    blendheaders : bool
        Record per-input metadata in ``meta.individual_image_meta``.
    allowed_memory : float or None
        Fraction of the available memory the output may use
        (:class:`~romancore.errors.OutputTooLargeError` otherwise; None: the
        ``DMODEL_ALLOWED_MEMORY`` environment variable, unset = no check).
    in_memory : bool
        With ``single=True``: keep every output in memory (False: an on-disk
        container with at most one resident output).
    good_bits : bit specification
        DQ bits that do not exclude a pixel.
    resample_on_skycell : bool
        Use the skycell the association names.
    include_var_flat : bool
        Also resample ``var_flat`` (inputs without it contribute nothing there).

    Returns
    -------
    MosaicModel, or a ModelContainer of them when ``single``.

    Raises
    ------
    RomancoreError
        No input overlaps the output grid, an input has no WCS, or an input is
        spectroscopic.
    """
    from romancore.algorithms.drizzle import Drizzler, build_mask
    from romancore.container import ModelContainer

    if weight_type not in ("ivm", "exptime"):
        raise ParameterError(f"weight_type={weight_type!r}: must be 'ivm' or 'exptime'")
    if len(container) == 0:
        raise RomancoreError("resample: the container holds no images")
    check_imaging(container)
    grid = output_grid(container, skycells_ref, output_wcs=output_wcs,
                       resample_on_skycell=resample_on_skycell, pixel_scale=pixel_scale,
                       pixel_scale_ratio=pixel_scale_ratio, rotation=rotation, crpix=crpix,
                       crval=crval, output_shape=output_shape)
    planes = _variance_planes(container, include_var_flat)
    product = product_name(container)

    def exptime_weighting(dq):
        return build_mask(dq, good_bits).astype(np.float32)

    def new_drizzler(n_inputs):
        return Drizzler(grid.shape, kernel=kernel, pixfrac=pixfrac, fillval=fillval, want_context=True,
                        variance_planes=planes, variance_weight=weight_type, exptime_map=True,
                        pixel_scale_ratio=grid.pixel_scale_ratio, n_inputs=n_inputs,
                        allowed_memory=allowed_memory)

    opts = dict(weight_type=weight_type, good_bits=good_bits, variance_planes=planes,
                exptime_weighting=exptime_weighting)
    if single:
        outputs = ModelContainer(on_disk=not in_memory)
        any_overlap = False
        for i in range(len(container)):
            model = container[i]
            name = member_name(container, i, model)
            driz = new_drizzler(1)
            coll = _MetaCollector(blendheaders)
            coll.add(model, name)
            hit = _drizzle_member(driz, model, name, grid, 0, **opts)
            release_member(model)
            any_overlap |= hit
            result = driz.finalize()
            mosaic = _build_mosaic(result, grid, coll, ModelContainer([model]), pixfrac=pixfrac,
                                   weight_type=weight_type, good_bits=good_bits,
                                   product=_single_name(name))
            outputs.append(mosaic)
            del driz, result, mosaic
        if not any_overlap:
            raise RomancoreError(_no_overlap_message(container, grid))
        return outputs

    driz = new_drizzler(len(container))
    coll = _MetaCollector(blendheaders)
    any_overlap = False
    for i in range(len(container)):
        model = container[i]
        name = member_name(container, i, model)
        coll.add(model, name)
        any_overlap |= _drizzle_member(driz, model, name, grid, i, **opts)
        release_member(model)
    if not any_overlap:
        raise RomancoreError(_no_overlap_message(container, grid))
    result = driz.finalize()
    return _build_mosaic(result, grid, coll, container, pixfrac=pixfrac, weight_type=weight_type,
                         good_bits=good_bits, product=product)


def _single_name(name: str) -> str:
    from romancore.pipeline.naming import remove_suffix, split_name

    return remove_suffix(split_name(os.path.basename(name))[0])


def _no_overlap_message(container, grid) -> str:
    where = {"output_wcs": "the output_wcs grid", "skycell": f"skycell {grid.skycell_name}",
             "inputs": "the output grid"}[grid.source]
    return (f"none of the {len(container)} input images overlaps {where} "
            f"(shape {grid.shape[0]}x{grid.shape[1]}): nothing to resample")
