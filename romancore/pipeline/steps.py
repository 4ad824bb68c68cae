"""The step table: every calibration step, its model method, references and parameters.

This module is the single place where step → method names live.  Model steps call
``model.<method>(*reference_models, **parameters)``; container steps call
``<function>(container, *reference_models, **parameters)``.  Defaults follow the
seeds (DESIGN.md decision table), else ALGORITHMS.md.
"""

from __future__ import annotations

from .params import Param
from .step import RefType, Step, get_meta

F = Param  # short alias for the table below


class DQInitStep(Step):
    """Initialize ramp DQ from the MASK reference; an L1 input becomes a RampModel first."""

    class_alias = "dq_init"
    method = "dq_init"
    input_kind = "ramp"
    reference_types = (RefType("mask"),)
    cal_step = "dq_init"
    spec = (F("expand_gw_flagging", "int", 0, "Pixels by which the guide-window DO_NOT_USE box is grown.", min=0),)


class SaturationStep(Step):
    """Flag saturated resultants (with read-pattern dilution) and the A/D floor."""

    class_alias = "saturation"
    method = "flag_saturation"
    input_kind = "ramp"
    reference_types = (RefType("saturation"),)
    cal_step = "saturation"
    spec = (
        F("n_pix_grow_sat", "int", 0, "Grow SATURATED flags by this many pixels (box).", min=0),
        F("backup", "int", 0, "Passes that copy SATURATED one resultant earlier.", min=0),
    )


class RefPixStep(Step):
    """Reference-pixel correction (offset, trends, amp33 interpolation, FFT correction)."""

    class_alias = "refpix"
    method = "refpix"
    input_kind = "ramp"
    reference_types = (RefType("refpix"),)
    cal_step = "refpix"
    spec = (
        F("remove_offset", "bool", True, "Remove the per-pixel mean over resultants first."),
        F("remove_trends", "bool", True, "Remove linear trends measured in the reference rows."),
        F("cosine_interpolate", "bool", True, "Cosine-interpolate the amp33 pad columns."),
        F("fft_interpolate", "bool", True, "FFT-interpolate the amp33 pad columns."),
    )


class DarkDecayStep(Step):
    """Subtract the dark-decay signal A·exp(-t/tau) per resultant."""

    class_alias = "dark_decay"
    method = "dark_decay"
    input_kind = "ramp"
    reference_types = (RefType("darkdecaysignal", optional=True),)
    cal_step = "dark_decay"


class WFI18TransientStep(Step):
    """Correct (or mask) the first-resultant transient of detector WFI18."""

    class_alias = "wfi18_transient"
    method = "wfi18_transient"
    input_kind = "ramp"
    cal_step = "wfi18_transient"

    def skip_reason(self, model):
        det = str(get_meta(model, "instrument.detector", "")).upper()
        return None if det == "WFI18" else f"only applies to WFI18 (detector is {det or 'unknown'})"


class LinearityStep(Step):
    """Classic or read-level (with inverse linearity and INL) non-linearity correction."""

    class_alias = "linearity"
    method = "linearity"
    input_kind = "ramp"
    reference_types = (RefType("linearity"), RefType("inverselinearity", optional=True),
                       RefType("integralnonlinearity", optional=True))
    cal_step = "linearity"


class RampFitStep(Step):
    """Fit ramps (with integrated jump detection) to count rates: RampModel → ImageModel."""

    class_alias = "ramp_fit"
    aliases = ("rampfit", "ramp_fitting")
    method = "fit_ramps"
    reference_types = (RefType("gain"), RefType("readnoise"))
    cal_step = "ramp_fit"
    default_suffix = "rampfit"
    spec = (
        F("algorithm", "option", "ols_cas22", "Ramp-fitting algorithm (Casertano et al. 2022 with jump detection).",
          choices=("ols_cas22",)),
        F("use_ramp_jump_detection", "bool", True, "Detect jumps inside the ramp fit."),
        F("threshold_intercept", "float", 5.5, "Jump threshold at 1 e/s (ols_cas22), in sigma.", min=0.0),
        F("threshold_constant", "float", 1.0 / 3.0,
          "Decrease of the jump threshold per decade of count rate (ols_cas22).", min=0.0),
        F("jump_refit", "bool", True,
          "Second jump test for segments the Cas22 statistic does not flag: refit both sides of "
          "each candidate with one common slope and test the step with its exact variance "
          "(finds more low-signal jumps; False gives the pure Cas22 result)."),
    )


class DarkCurrentStep(Step):
    """Subtract the dark-current rate (dark_slope) from the rate image."""

    class_alias = "dark_current"
    aliases = ("dark", "darkcurrent")
    method = "subtract_dark"
    reference_types = (RefType("dark"),)
    cal_step = "dark"


class AssignWcsStep(Step):
    """Attach the detector → sky gWCS built from the DISTORTION reference and wcsinfo."""

    class_alias = "assign_wcs"
    aliases = ("assignwcs",)
    method = "assign_wcs"
    reference_types = (RefType("distortion"),)
    cal_step = "assign_wcs"


class PhotomStep(Step):
    """Record the flux conversion and pixel area for the filter (metadata only)."""

    class_alias = "photom"
    method = "photom"
    reference_types = (RefType("photom"),)
    cal_step = "photom"


class FlatFieldStep(Step):
    """Divide by the flat field and propagate the variances."""

    class_alias = "flat_field"
    aliases = ("flatfield",)
    method = "flatfield"
    reference_types = (RefType("flat"),)
    cal_step = "flat_field"
    spec = (F("include_var_flat", "bool", False, "Add the flat-field variance var_flat to err."),)


class SourceCatalogStep(Step):
    """Detect and measure sources: catalog (_cat) and segmentation map (_segm)."""

    class_alias = "source_catalog"
    aliases = ("sourcecatalog",)
    method = "source_catalog"
    reference_types = (RefType("apcorr", optional=True), RefType("epsf", optional=True))
    cal_step = "source_catalog"
    returns = "products"
    product_suffixes = ("cat", "segm")
    spec = (
        F("bkg_boxsize", "int", 1000, "Box size of the 2-D background, in pixels.", min=1),
        F("kernel_fwhm", "float", 2.0, "FWHM of the Gaussian detection kernel, in pixels.",
          min=0.0, exclusive_min=True),
        F("snr_threshold", "float", 3.0, "Detection threshold in units of the background RMS.",
          min=0.0, exclusive_min=True),
        F("npixels", "int", 25, "Minimum number of connected pixels of a source.", min=1),
        F("deblend", "bool", False, "Deblend overlapping sources."),
        F("fit_psf", "bool", True, "Fit the ePSF model to each source."),
        F("forced_segmentation", "path", "", "Segmentation map file for forced photometry ('' for none)."),
    )


class TweakRegStep(Step):
    """Align the WCS of images to each other and to an absolute reference catalog."""

    class_alias = "tweakreg"
    container = True
    function = "romancore.tweakreg.tweakreg"
    cal_step = "tweakreg"
    _geom = ("shift", "rshift", "rscale", "general")
    spec = (
        F("use_custom_catalogs", "bool", False, "Use the catalogs listed in catfile instead of the images'."),
        F("catalog_format", "str", "ascii.ecsv", "astropy Table format of custom catalogs."),
        F("catfile", "path", "", "File listing 'image catalog' pairs, one per line."),
        F("catalog_path", "path", "", "Directory where catalogs are written."),
        F("enforce_user_order", "bool", False, "Align images in the given order."),
        F("expand_refcat", "bool", False, "Add sources of aligned images to the reference catalog."),
        F("minobj", "int", 15, "Minimum number of matched objects.", min=1),
        F("searchrad", "float", 2.0, "Search radius for a match, arcsec.", min=0.0, exclusive_min=True),
        F("use2dhist", "bool", True, "Use a 2-D histogram to find the initial offset."),
        F("separation", "float", 1.0, "Minimum object separation, arcsec.", min=0.0),
        F("tolerance", "float", 0.7, "Matching tolerance, arcsec.", min=0.0, exclusive_min=True),
        F("fitgeometry", "option", "rshift", "Relative fit geometry.", choices=_geom),
        F("nclip", "int", 3, "Clipping iterations of the fit.", min=0),
        F("sigma", "float", 3.0, "Clipping limit, sigma.", min=0.0),
        F("abs_refcat", "str", "",
          "Absolute reference catalog file (ECSV/parquet with ra, dec); '' for relative alignment only."),
        F("save_abs_catalog", "bool", False, "Write the absolute reference catalog used."),
        F("abs_minobj", "int", 15, "Minimum matched objects, absolute fit.", min=1),
        F("abs_searchrad", "float", 6.0, "Search radius, absolute fit, arcsec.", min=0.0, exclusive_min=True),
        F("abs_use2dhist", "bool", True, "Use a 2-D histogram, absolute fit."),
        F("abs_separation", "float", 0.1, "Minimum object separation, absolute fit, arcsec.", min=0.0),
        F("abs_tolerance", "float", 0.7, "Matching tolerance, absolute fit, arcsec.", min=0.0, exclusive_min=True),
        F("abs_fitgeometry", "option", "rshift", "Absolute fit geometry.", choices=_geom),
        F("abs_nclip", "int", 3, "Clipping iterations, absolute fit.", min=0),
        F("abs_sigma", "float", 3.0, "Clipping limit, absolute fit, sigma.", min=0.0),
    )


class FluxStep(Step):
    """Convert L2 images from DN/s to MJy/sr (data, err and variances)."""

    class_alias = "flux"
    container = True
    function = "romancore.flux.flux"
    cal_step = "flux"


class SkyMatchStep(Step):
    """Measure (and optionally subtract or equalize) the sky of overlapping images."""

    class_alias = "skymatch"
    container = True
    function = "romancore.skymatch.skymatch"
    cal_step = "skymatch"
    spec = (
        F("skymethod", "option", "match", "Sky computation method.",
          choices=("local", "global", "match", "global+match")),
        F("match_down", "bool", True, "Match skies down to the lowest one (else up to the highest)."),
        F("subtract", "bool", False, "Subtract the computed sky from the data."),
        F("stepsize", "int", None, "Max vertex separation of the bounding polygon, pixels.",
          nullable=True, min=1),
        F("skystat", "option", "mode", "Sky statistic.", choices=("median", "midpt", "mean", "mode")),
        F("dqbits", "bits", "~DO_NOT_USE+NON_SCIENCE", "DQ bits considered good."),
        F("lower", "float", None, "Lower limit of usable pixel values.", nullable=True),
        F("upper", "float", None, "Upper limit of usable pixel values.", nullable=True),
        F("nclip", "int", 5, "Sky clipping iterations.", min=0),
        F("lsigma", "float", 4.0, "Lower clipping limit, sigma.", min=0.0),
        F("usigma", "float", 4.0, "Upper clipping limit, sigma.", min=0.0),
        F("binwidth", "float", 0.1, "Bin width for mode/midpt, sigma.", min=0.0, exclusive_min=True),
    )


# "tophat" is not offered: the drizzle kernels do not implement it
_KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")


class OutlierDetectionStep(Step):
    """Flag outliers (cosmic rays, bad pixels) against the median of the resampled stack."""

    class_alias = "outlier_detection"
    aliases = ("outlierdetection",)
    container = True
    function = "romancore.outlier_detection.outlier_detection"
    cal_step = "outlier_detection"
    spec = (
        F("weight_type", "option", "exptime", "Weighting of the single-image resamples.",
          choices=("ivm", "exptime")),
        F("pixfrac", "float", 1.0, "Drop size as a fraction of the input pixel.", min=0.0, max=1.0),
        F("kernel", "option", "square", "Drizzle kernel.", choices=_KERNELS),
        F("fillval", "str", "INDEF", "Value of output pixels without input ('INDEF' or a number)."),
        F("nlow", "int", 0, "Low values ignored per pixel stack in the median.", min=0),
        F("nhigh", "int", 0, "High values ignored per pixel stack in the median.", min=0),
        F("maskpt", "float", 0.7, "Fraction of the mean weight below which pixels are rejected.",
          min=0.0, max=1.0),
        F("grow", "int", 1, "Extra pixels rejected around an outlier.", min=0),
        F("snr", "float_list", (4.0, 3.0), "Signal-to-noise cuts (primary, neighbours).",
          length=2, min=0.0),
        F("scale", "float_list", (0.5, 0.4), "Derivative scale factors (primary, neighbours).",
          length=2, min=0.0),
        F("backg", "float", 0.0, "Background subtracted before flagging."),
        F("save_intermediate_results", "bool", False,
          "Write the median (_median) and blotted (_blot) images to output_dir."),
        F("resample_data", "bool", True, "Resample the inputs before the median."),
        F("good_bits", "bits", "0", "DQ bits considered good when building masks."),
        F("allowed_memory", "float", None, "Fraction of free memory a resampled image may use.",
          nullable=True, min=0.0, exclusive_min=True),
        F("in_memory", "bool", False,
          "Keep every resampled exposure group in memory (else memory-mapped temporary files)."),
        F("resample_on_skycell", "bool", True, "Use the skycell WCS named in the association."),
        F("output_dir", "path", None,
          "Directory for output files, including the intermediate products "
          "(default: the association's directory, else the current directory).", nullable=True),
    )


class ResampleStep(Step):
    """Drizzle the images onto one output grid: container → MosaicModel."""

    class_alias = "resample"
    container = True
    function = "romancore.resample.resample"
    reference_types = (RefType("skycells", optional=True),)
    cal_step = "resample"
    default_suffix = "coadd"
    spec = (
        F("pixfrac", "float", 1.0, "Drop size as a fraction of the input pixel.", min=0.0, max=1.0),
        F("kernel", "option", "square", "Drizzle kernel.", choices=_KERNELS),
        F("pixel_scale_ratio", "float", 1.0, "Output / input pixel scale.", min=0.0, exclusive_min=True),
        F("pixel_scale", "float", None, "Output pixel scale, arcsec (overrides the ratio).",
          nullable=True, min=0.0, exclusive_min=True),
        F("rotation", "float", None, "Position angle of the output y axis, degrees.", nullable=True),
        F("crpix", "float_list", None, "Output reference pixel x, y.", nullable=True, length=2),
        F("crval", "float_list", None, "RA, Dec of the reference pixel, degrees.", nullable=True, length=2),
        F("output_shape", "int_list", None, "Output shape nx, ny.", nullable=True, length=2, min=1),
        F("output_wcs", "path", "", "ASDF file holding the output gWCS under 'wcs'."),
        F("fillval", "str", "INDEF", "Value of output pixels without input ('INDEF' or a number)."),
        F("weight_type", "option", "ivm", "Weighting of input images.", choices=("ivm", "exptime")),
        F("single", "bool", False, "Resample each input to its own output."),
        F("blendheaders", "bool", True, "Record per-input metadata in meta.individual_image_meta."),
        F("allowed_memory", "float", None, "Fraction of free memory the output may use.",
          nullable=True, min=0.0, exclusive_min=True),
        F("in_memory", "bool", True,
          "With single=True keep every output in memory (else at most one, the rest in temporary files)."),
        F("good_bits", "bits", "~DO_NOT_USE+NON_SCIENCE", "DQ bits considered good."),
        F("resample_on_skycell", "bool", True, "Use the skycell WCS named in the association."),
        F("include_var_flat", "bool", False, "Also resample var_flat."),
    )


ALL_STEPS = (
    DQInitStep, SaturationStep, RefPixStep, DarkDecayStep, WFI18TransientStep, LinearityStep,
    RampFitStep, DarkCurrentStep, AssignWcsStep, PhotomStep, FlatFieldStep, SourceCatalogStep,
    TweakRegStep, FluxStep, SkyMatchStep, OutlierDetectionStep, ResampleStep,
)
