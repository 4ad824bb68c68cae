"""Image-level calibration methods of :class:`ImageModel` (thin facades).

Each method unpacks arrays from the image and a reference model, calls one
function of :mod:`romancore.algorithms` or :mod:`romancore.wcs`, stores the
result, records ``meta.cal_step`` and returns ``self`` (``source_catalog``
returns the catalog and segmentation models instead).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ReferenceFileError
from .ramp import BORDER

log = logging.getLogger(__name__)


def _science_ref(ref, name: str, shape, *, what: str) -> np.ndarray:
    """Reference array matched to the image: the same shape, or a detector frame trimmed by the border."""
    arr = getattr(ref, name)
    ny, nx = shape
    if tuple(arr.shape[-2:]) == (ny, nx):
        return np.asarray(arr)
    if tuple(arr.shape[-2:]) == (ny + 2 * BORDER, nx + 2 * BORDER):
        return np.asarray(arr)[..., BORDER:-BORDER, BORDER:-BORDER]
    source = getattr(ref, "_source_path", None) or type(ref).__name__
    raise ReferenceFileError(
        f"{what} reference {source}: '{name}' has shape {tuple(arr.shape)}, the image needs "
        f"{(ny, nx)} or {(ny + 2 * BORDER, nx + 2 * BORDER)}"
    )


def _is_placeholder(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and value == -999999)


class ImageCalibration:
    """Mixin with the ImageModel calibration methods."""

    def subtract_dark(self, dark_ref, *, dark_output: str | None = None):
        """Subtract the dark rate ``dark_slope`` (DN/s) and OR the dark DQ (ALGORITHMS.md §5.4)."""
        from ..algorithms.dark_current import subtract_dark_slope

        used = subtract_dark_slope(
            self.data, self.dq, np.asarray(dark_ref.dark_slope), np.asarray(dark_ref.dq),
            dark_slope_error=np.asarray(dark_ref.dark_slope_error) if "dark_slope_error" in dark_ref._tree else None,
        )
        self._dark_used = used
        self.meta.cal_step.dark = "COMPLETE"
        return self

    def assign_wcs(self, distortion_ref):
        """Attach the ``detector → v2v3 → v2v3vacorr → world`` gwcs and ``meta.wcsinfo.s_region``."""
        from ..wcs import build_wfi_wcs, compute_s_region

        transform = distortion_ref.coordinate_distortion_transform
        if isinstance(transform, dict):
            source = getattr(distortion_ref, "_source_path", None) or "DISTORTION reference"
            raise ReferenceFileError(
                f"{source}: coordinate_distortion_transform holds no transform (an empty mapping)"
            )
        va = self.meta.get("velocity_aberration")
        wcs = build_wfi_wcs(
            transform, self.meta.wcsinfo.to_dict(),
            velocity_aberration=None if va is None else va.to_dict(),
            shape=self.data.shape,
        )
        self.meta.wcs = wcs
        region = compute_s_region(wcs, self.data.shape)
        if region:
            self.meta.wcsinfo.s_region = region
        self.meta.cal_step.assign_wcs = "COMPLETE"
        return self

    def photom(self, photom_ref):
        """Record the filter's flux conversion and pixel area in ``meta.photometry`` (§5.6)."""
        from ..algorithms.photom import photometry_for_filter

        element = self.meta.instrument.optical_element
        values = photometry_for_filter(photom_ref.phot_table, element)
        if values is None:
            log.warning("photom: the PHOTOM table has no row for %s; meta.photometry not set", element)
            self.meta.cal_step.photom = "SKIPPED"
            return self
        for key, value in values.items():
            self.meta.photometry[key] = value
        self.meta.cal_step.photom = "COMPLETE"
        return self

    def flatfield(self, flat_ref, *, include_var_flat: bool = False):
        """Divide by the flat, propagate variances, create ``var_flat`` (§5.5)."""
        from ..algorithms.flatfield import apply_flat

        shape = self.data.shape
        flat = _science_ref(flat_ref, "data", shape, what="FLAT")
        flat_dq = _science_ref(flat_ref, "dq", shape, what="FLAT") if "dq" in flat_ref._tree else None
        flat_err = _science_ref(flat_ref, "err", shape, what="FLAT") if "err" in flat_ref._tree else None
        self._ensure_float32("err", "var_poisson", "var_rnoise", "dumo")
        var_rnoise = self.var_rnoise if "var_rnoise" in self._tree else None
        dumo = self.dumo if "dumo" in self._tree else None
        self.var_flat = apply_flat(
            self.data, self.dq, self.err, self.var_poisson, var_rnoise, dumo,
            flat=flat, flat_dq=flat_dq, flat_err=flat_err, include_var_flat=include_var_flat,
        )
        self.meta.cal_step.flat_field = "COMPLETE"
        return self

    def to_surface_brightness(self):
        """DN/s → MJy/sr on data, err and variances (the mosaic ``flux`` step); idempotent."""
        from ..algorithms.flux import scale_to_surface_brightness

        if self.meta.get("cal_step") is not None and self.meta.cal_step.get("flux") == "COMPLETE":
            return self
        self._ensure_float32("err", "var_poisson", "var_rnoise", "var_flat")
        variances = [getattr(self, n) for n in ("var_poisson", "var_rnoise", "var_flat") if n in self._tree]
        scale_to_surface_brightness(self.meta.photometry.conversion_megajanskys,
                                    self.data, self.err, variances)
        self.meta.cal_step.flux = "COMPLETE"
        return self

    def source_catalog(self, apcorr_ref=None, epsf_ref=None, *, bkg_boxsize: int = 1000,
                       kernel_fwhm: float = 2.0, snr_threshold: float = 3.0, npixels: int = 25,
                       deblend: bool = False, **_unused):
        """Detect and measure sources -> (ImageSourceCatalogModel, SegmentationMapModel)."""
        from ..algorithms.source_catalog import make_source_catalog
        from .models import ImageSourceCatalogModel, SegmentationMapModel

        unit = "MJy/sr" if self.meta.get("cal_step") is not None and self.meta.cal_step.get("flux") == "COMPLETE" else "DN/s"
        phot = self.meta.get("photometry")
        photmjsr = None if phot is None else phot.get("conversion_megajanskys")
        area = None if phot is None else phot.get("pixel_area")
        wcs = self.meta.get("wcs")
        result = make_source_catalog(
            self.data, self.err, dq=self.dq, wcs=wcs, data_unit=unit,
            photmjsr=None if _is_placeholder(photmjsr) else photmjsr,
            pixel_area=None if _is_placeholder(area) else area,
            bkg_boxsize=bkg_boxsize, kernel_fwhm=kernel_fwhm, snr_threshold=snr_threshold,
            npixels=npixels, deblend=deblend,
        )
        basic = {k: v for k, v in self.meta.to_dict().items() if not isinstance(v, dict) and k != "wcs"}
        for key in ("instrument", "exposure", "observation", "photometry"):
            if key in self.meta:
                basic[key] = getattr(self.meta, key).to_dict()
        catalog = ImageSourceCatalogModel.create_minimal(meta=dict(basic, model_type="ImageSourceCatalogModel"))
        catalog.source_catalog = result.catalog
        segm = SegmentationMapModel.create_minimal(
            meta=dict(basic, model_type="SegmentationMapModel"),
            data=result.segmentation.astype(np.uint32, copy=False),
            detection_image=np.asarray(result.detection_image, dtype=np.float32))
        self.meta.source_catalog.tweakreg_catalog_name = "?"
        self._catalog = catalog
        self.meta.cal_step.source_catalog = "COMPLETE"
        return catalog, segm

    def wcs_product(self):
        """The ``_wcs`` product: the final L2 gwcs and the L1 gwcs (with the 4-pixel border)."""
        from ..errors import RomancoreError
        from ..wcs import l1_wcs_from_l2
        from .models import WfiWcsModel

        wcs = self.meta.get("wcs")
        if wcs is None:
            raise RomancoreError("this image has no WCS (run assign_wcs first): no _wcs product")
        meta = {k: v for k, v in self.meta.to_dict().items() if k != "wcs"}
        meta["model_type"] = "WfiWcsModel"
        product = WfiWcsModel.create_minimal(meta=meta)
        product.wcs_l2 = wcs
        product.wcs_l1 = l1_wcs_from_l2(wcs)
        return product

    # ---------------------------------------------------------------- helpers
    def _ensure_float32(self, *names):
        """Products of other tools store err/variances as float16: work on float32 copies."""
        for name in names:
            if name in self._tree:
                arr = getattr(self, name)
                if arr.dtype != np.float32:
                    self._tree[name] = arr.astype(np.float32)
