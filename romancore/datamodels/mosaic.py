"""Mosaic-level calibration methods of :class:`MosaicModel` (thin facades).

``source_catalog`` detects and measures the sources of an L3 mosaic with
:func:`romancore.algorithms.source_catalog.make_source_catalog`: the data are
surface brightness (MJy/sr), zero-weight pixels are masked, the pixel solid
angle comes from the mosaic WCS at the image centre.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: metadata sections copied into the catalog and segmentation products
_CATALOG_SECTIONS = ("instrument", "observation", "program", "coadd_info", "association")


class MosaicCalibration:
    """Mixin with the MosaicModel calibration methods."""

    def source_catalog(self, apcorr_ref=None, epsf_ref=None, *, bkg_boxsize: int = 1000,
                       kernel_fwhm: float = 2.0, snr_threshold: float = 3.0, npixels: int = 25,
                       deblend: bool = False, **_unused):
        """Detect and measure sources -> (MosaicSourceCatalogModel, MosaicSegmentationMapModel).

        Parameters are those of :func:`make_source_catalog` (pixels of the mosaic grid).
        ``apcorr_ref`` / ``epsf_ref`` are accepted for the step interface; no aperture
        correction or PSF fit is applied (as for :meth:`ImageModel.source_catalog`).
        Flux columns are in nJy.  Sets ``meta.cal_step.source_catalog``.
        """
        from ..algorithms.source_catalog import make_source_catalog
        from .models import MosaicSegmentationMapModel, MosaicSourceCatalogModel

        wcs = self.meta.get("wcs")
        weight = self.weight if "weight" in self._tree else None
        result = make_source_catalog(
            self.data, self.err, weight=weight, wcs=wcs, data_unit="MJy/sr",
            bkg_boxsize=bkg_boxsize, kernel_fwhm=kernel_fwhm, snr_threshold=snr_threshold,
            npixels=npixels, deblend=deblend,
        )
        basic = {k: v for k, v in self.meta.to_dict().items() if not isinstance(v, dict) and k != "wcs"}
        for key in _CATALOG_SECTIONS:
            if key in self.meta:
                basic[key] = getattr(self.meta, key).to_dict()
        catalog = MosaicSourceCatalogModel.create_minimal(
            meta=dict(basic, model_type="MosaicSourceCatalogModel"))
        catalog.source_catalog = result.catalog
        segm = MosaicSegmentationMapModel.create_minimal(
            meta=dict(basic, model_type="MosaicSegmentationMapModel"),
            data=result.segmentation.astype(np.uint32, copy=False),
            detection_image=np.asarray(result.detection_image, dtype=np.float32))
        log.info("mosaic source catalog: %d sources", len(result.catalog))
        self.meta.cal_step.source_catalog = "COMPLETE"
        return catalog, segm
