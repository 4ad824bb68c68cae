"""The concrete model classes: exposure, mosaic, catalog, segmentation, WCS and reference models.

Each class names its schema; array shapes for :meth:`create_minimal` follow
the Roman products (4-pixel reference border, 128-column amp33, context planes).
"""

from __future__ import annotations

from .base import DataModel
from .image import ImageCalibration
from .mosaic import MosaicCalibration
from .ramp import RampCalibration

BORDER = 4
AMP33_COLUMNS = 128

__all__ = [
    "ScienceRawModel", "RampModel", "ImageModel", "MosaicModel",
    "ImageSourceCatalogModel", "MosaicSourceCatalogModel",
    "SegmentationMapModel", "MosaicSegmentationMapModel", "WfiWcsModel",
    "ReferenceFileModel", "MaskRefModel", "SaturationRefModel", "RefpixRefModel",
    "LinearityRefModel", "InverseLinearityRefModel", "IntegralNonlinearityRefModel",
    "DarkRefModel", "DarkDecaySignalRefModel", "GainRefModel", "ReadnoiseRefModel",
    "DistortionRefModel", "FlatRefModel", "WfiImgPhotomRefModel", "SkycellsRefModel",
    "ApcorrRefModel", "EpsfRefModel", "PixelareaRefModel", "MATableRefModel",
]


def _exposure_array_shape(name: str, nres: int, ny: int, nx: int):
    """Shapes of the reference-pixel arrays of an exposure whose full frame is ny x nx."""
    if name == "amp33":
        return (nres, ny, AMP33_COLUMNS)
    if name in ("border_ref_pix_left", "border_ref_pix_right"):
        return (nres, ny, BORDER)
    if name in ("border_ref_pix_top", "border_ref_pix_bottom"):
        return (nres, BORDER, nx)
    if name in ("dq_border_ref_pix_left", "dq_border_ref_pix_right"):
        return (ny, BORDER)
    if name in ("dq_border_ref_pix_top", "dq_border_ref_pix_bottom"):
        return (BORDER, nx)
    return None


class ScienceRawModel(DataModel):
    """Level 1 exposure: uint16 resultants ``data[nres, ny, nx]`` and ``amp33``."""

    schema_name = "wfi_science_raw"

    @classmethod
    def _array_shape(cls, name, sub, shape):
        nres, ny, nx = shape
        return _exposure_array_shape(name, nres, ny, nx) or super()._array_shape(name, sub, shape)


class RampModel(RampCalibration, DataModel):
    """A ramp of resultants in float32 DN with pixel and group DQ (full frame incl. border)."""

    schema_name = "ramp"

    @classmethod
    def _array_shape(cls, name, sub, shape):
        nres, ny, nx = shape
        return _exposure_array_shape(name, nres, ny, nx) or super()._array_shape(name, sub, shape)


class ImageModel(ImageCalibration, DataModel):
    """Level 2 calibrated image (science area only: the 4088 x 4088 of a full detector)."""

    schema_name = "wfi_image"

    @classmethod
    def _array_shape(cls, name, sub, shape):
        ny, nx = shape
        special = _exposure_array_shape(name, 1, ny + 2 * BORDER, nx + 2 * BORDER)
        return special or super()._array_shape(name, sub, shape)


class MosaicModel(MosaicCalibration, DataModel):
    """Level 3 drizzled mosaic."""

    schema_name = "wfi_mosaic"


class _CatalogExport:
    """Export of the catalog table to the formats other tools read."""

    def export(self, path, *, overwrite: bool = False):
        """Write ``source_catalog`` to ``path`` as ECSV (``.ecsv``) or parquet (``.parquet``).

        Units and column metadata are kept; the file is written atomically.
        """
        import os
        import tempfile
        from pathlib import Path

        from ..errors import FileFormatError

        path = Path(path)
        formats = {".ecsv": "ascii.ecsv", ".parquet": "parquet"}
        if path.suffix not in formats:
            raise FileFormatError(f"{path}: catalog export needs a .ecsv or .parquet file name")
        if path.exists() and not overwrite:
            raise FileFormatError(f"{path}: exists (pass overwrite=True to replace it)")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent or ".")
        os.close(fd)
        try:
            self.source_catalog.write(tmp, format=formats[path.suffix], overwrite=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


class ImageSourceCatalogModel(_CatalogExport, DataModel):
    """Level 2 source catalog: ``source_catalog`` is an astropy Table."""

    schema_name = "image_source_catalog"


class MosaicSourceCatalogModel(_CatalogExport, DataModel):
    """Level 3 source catalog."""

    schema_name = "mosaic_source_catalog"


class SegmentationMapModel(DataModel):
    """Level 2 segmentation map (uint32 source ids, 0 = background)."""

    schema_name = "segmentation_map"


class MosaicSegmentationMapModel(DataModel):
    """Level 3 segmentation map."""

    schema_name = "mosaic_segmentation_map"


class WfiWcsModel(DataModel):
    """The WCS product of an exposure: final L2 gwcs and the L1 gwcs (with the border)."""

    schema_name = "wfi_wcs"


class ReferenceFileModel(DataModel):
    """Base of the reference-file models; ``reftype`` is the CRDS reference type."""

    reftype = ""


def _ref(name: str, schema: str, reftype: str, doc: str):
    cls = type(name, (ReferenceFileModel,), {"schema_name": schema, "reftype": reftype, "__doc__": doc})
    cls.__module__ = __name__
    return cls


MaskRefModel = _ref("MaskRefModel", "ref_mask", "mask", "Bad-pixel mask (``dq``).")
SaturationRefModel = _ref("SaturationRefModel", "ref_saturation", "saturation", "Saturation thresholds in DN.")
RefpixRefModel = _ref("RefpixRefModel", "ref_refpix", "refpix", "Reference-pixel FFT coefficients.")
LinearityRefModel = _ref("LinearityRefModel", "ref_linearity", "linearity", "Classic linearity polynomial coefficients.")
InverseLinearityRefModel = _ref("InverseLinearityRefModel", "ref_inverselinearity", "inverselinearity", "Inverse linearity coefficients.")
IntegralNonlinearityRefModel = _ref("IntegralNonlinearityRefModel", "ref_integralnonlinearity", "integralnonlinearity", "Integral non-linearity.")
DarkRefModel = _ref("DarkRefModel", "ref_dark", "dark", "Dark current (``dark_slope`` in DN/s).")
DarkDecaySignalRefModel = _ref("DarkDecaySignalRefModel", "ref_darkdecaysignal", "darkdecaysignal", "Dark decay signal table.")
GainRefModel = _ref("GainRefModel", "ref_gain", "gain", "Gain in electrons per DN.")
ReadnoiseRefModel = _ref("ReadnoiseRefModel", "ref_readnoise", "readnoise", "Read noise of one read in DN.")
DistortionRefModel = _ref("DistortionRefModel", "ref_distortion", "distortion", "Detector to V2/V3 transform.")
FlatRefModel = _ref("FlatRefModel", "ref_flat", "flat", "Flat field.")
WfiImgPhotomRefModel = _ref("WfiImgPhotomRefModel", "ref_wfi_img_photom", "photom", "Imaging photometry table.")
SkycellsRefModel = _ref("SkycellsRefModel", "ref_skycells", "skycells", "Sky tessellation.")
ApcorrRefModel = _ref("ApcorrRefModel", "ref_apcorr", "apcorr", "Aperture corrections.")
EpsfRefModel = _ref("EpsfRefModel", "ref_epsf", "epsf", "Empirical PSF.")
PixelareaRefModel = _ref("PixelareaRefModel", "ref_pixelarea", "area", "Pixel area map.")
MATableRefModel = _ref("MATableRefModel", "ref_matable", "matable", "Multi-accumulation tables.")
