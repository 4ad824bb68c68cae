"""Detector-level calibration methods of :class:`RampModel` (thin facades).

Each method unpacks arrays from the model and its reference models, calls one
function of :mod:`romancore.algorithms`, stores the results and records
``meta.cal_step``.  Ramps are large, so the methods work in place and return
``self`` (except :meth:`RampCalibration.fit_ramps`, which returns the L2 image).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ReferenceFileError, ValidationError

log = logging.getLogger(__name__)

BORDER = 4


def science(arr: np.ndarray) -> np.ndarray:
    """View of the science area (``[..., 4:-4, 4:-4]``) of a full-frame array."""
    return arr[..., BORDER:-BORDER, BORDER:-BORDER]


def ref_image(ref, name: str, shape: tuple[int, int], *, what: str) -> np.ndarray:
    """Reference array ``name`` matched to a full-frame ``shape`` (ny, nx).

    Raises ReferenceFileError naming the reference, array and shapes when they differ.
    """
    arr = getattr(ref, name)
    if tuple(arr.shape[-2:]) != tuple(shape):
        source = getattr(ref, "_source_path", None) or type(ref).__name__
        raise ReferenceFileError(
            f"{what} reference {source}: '{name}' has shape {tuple(arr.shape)}, "
            f"the exposure needs {tuple(shape)}"
        )
    return arr


def _set_step(model, step: str, status: str = "COMPLETE"):
    model.meta.cal_step[step] = status


class RampCalibration:
    """Mixin with the RampModel calibration methods."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_raw(cls, raw):
        """Convert a ScienceRawModel (L1) to a RampModel (float32 data, uint32 pixeldq, uint8 groupdq).

        ``meta.instrument.data_encoding_offset`` is subtracted and a reference read is
        added back when the L1 holds one.  Border reference pixels are copied before any
        correction.
        """
        from ..algorithms import dq_init as alg

        offset = float(raw.meta.instrument.get("data_encoding_offset", 0) or 0)
        reference_read = raw._tree.get("reference_read")
        reference_amp33 = raw._tree.get("reference_amp33")
        data, amp33 = alg.raw_to_ramp_data(
            raw.data, raw.amp33, data_encoding_offset=offset,
            reference_read=None if reference_read is None else raw.reference_read,
            reference_amp33=None if reference_amp33 is None else raw.reference_amp33,
        )
        resultantdq = raw.resultantdq if "resultantdq" in raw._tree else None
        groupdq = alg.groupdq_from_resultantdq(data.shape, resultantdq)
        pixeldq = np.zeros(data.shape[1:], dtype=np.uint32)
        borders = alg.border_reference_pixels(data, pixeldq)
        meta = raw.meta.to_dict()
        meta["model_type"] = cls.__name__
        tree = {"meta": meta, "data": data, "pixeldq": pixeldq, "groupdq": groupdq, "amp33": amp33}
        tree.update(borders)
        ramp = cls(tree, validate=False)
        ramp._fill_required_non_arrays()
        ramp.validate()
        return ramp

    # ------------------------------------------------------------------ steps
    def dq_init(self, mask_ref=None, *, expand_gw_flagging: int = 0):
        """OR the MASK reference into ``pixeldq``, flag the guide window, refresh border copies."""
        from ..algorithms import dq_init as alg

        ny, nx = self.pixeldq.shape
        if mask_ref is not None:
            mask = ref_image(mask_ref, "dq", (ny, nx), what="MASK")
            alg.apply_mask(self.pixeldq, np.asarray(mask, dtype=np.uint32))
        gs = self.meta.get("guide_star")
        if gs is not None:
            coords = [gs.get(k) for k in ("window_xstart", "window_xstop", "window_ystart", "window_ystop")]
            if all(isinstance(c, (int, np.integer)) for c in coords):
                alg.flag_guide_window(self.pixeldq, *coords, expand_gw_flagging=expand_gw_flagging)
        for name, value in alg.border_reference_pixels(self.data, self.pixeldq).items():
            if name.startswith("dq_"):
                self._tree[name] = value
        _set_step(self, "dq_init")
        return self

    def flag_saturation(self, saturation_ref, *, n_pix_grow_sat: int = 0, backup: int = 0):
        """Flag saturated resultants (threshold, read-pattern dilution, A/D floor) in ``groupdq``.

        Returns self; :meth:`fully_saturated` tells whether every pixel saturated.
        """
        from ..algorithms.saturation import flag_saturation

        shape = self.pixeldq.shape
        threshold = np.asarray(ref_image(saturation_ref, "data", shape, what="SATURATION"), dtype=np.float32)
        thr_dq = np.asarray(ref_image(saturation_ref, "dq", shape, what="SATURATION"), dtype=np.uint32)
        self._all_saturated = flag_saturation(
            self.data, self.groupdq, self.pixeldq, threshold, thr_dq,
            self.meta.exposure.read_pattern, n_pix_grow_sat=n_pix_grow_sat, backup=backup,
        )
        _set_step(self, "saturation")
        return self

    def fully_saturated(self) -> bool:
        """True when every resultant of every pixel is flagged SATURATED."""
        from ..dq import group

        cached = self.__dict__.get("_all_saturated")
        if cached is not None:
            return bool(cached)
        return bool(np.all(self.groupdq & np.uint8(group.SATURATED)))

    def refpix(self, refpix_ref, *, remove_offset: bool = True, remove_trends: bool = True,
               cosine_interpolate: bool = True, fft_interpolate: bool = True, nthreads: int | None = None):
        """Reference-pixel correction (ALGORITHMS.md §4), each stage switchable."""
        from ..algorithms.refpix import correct_refpix

        self.amp33 = correct_refpix(
            self.data, self.amp33, self.pixeldq,
            np.asarray(refpix_ref.alpha), np.asarray(refpix_ref.gamma), np.asarray(refpix_ref.zeta),
            remove_offset=remove_offset, remove_trends=remove_trends,
            cosine_interpolate=cosine_interpolate, fft_interpolate=fft_interpolate,
            workers=nthreads,
        )
        # the left/right reference columns are carried to L2 as corrected values (§4 step 9)
        self.border_ref_pix_left = np.ascontiguousarray(self.data[:, :, :BORDER])
        self.border_ref_pix_right = np.ascontiguousarray(self.data[:, :, -BORDER:])
        _set_step(self, "refpix")
        return self

    def dark_decay(self, darkdecaysignal_ref=None):
        """Subtract the dark-decay signal ``A exp(-t/tau)`` of this detector (ALGORITHMS.md §5.2).

        ``decay_table`` of the DARKDECAYSIGNAL reference maps the detector name to
        ``amplitude`` (DN) and ``time_constant`` (s).  Without a reference (or without a row
        for the detector) the step is recorded as SKIPPED.
        """
        from ..algorithms.dark_decay import subtract_dark_decay

        detector = self.meta.instrument.detector
        row = None
        if darkdecaysignal_ref is not None:
            table = darkdecaysignal_ref.decay_table
            table = table.to_dict() if hasattr(table, "to_dict") else dict(table)
            row = table.get(detector, table.get(detector.lower()))
        if row is None:
            log.info("dark_decay: no decay signal for %s; step skipped", detector)
            _set_step(self, "dark_decay", "SKIPPED")
            return self
        subtract_dark_decay(self.data, self.meta.exposure.read_pattern, float(self.meta.exposure.frame_time),
                            float(row["amplitude"]), float(row["time_constant"]), detector)
        _set_step(self, "dark_decay")
        return self

    def wfi18_transient(self, *, mask_rows: int | None = None):
        """Remove (or mask) the first-resultant transient of WFI18; other detectors: SKIPPED."""
        from ..algorithms.dark_decay import WFI18_MASK_ROWS, correct_wfi18_transient

        detector = self.meta.instrument.detector
        if str(detector).upper() != "WFI18":
            _set_step(self, "wfi18_transient", "SKIPPED")
            return self
        how = correct_wfi18_transient(
            self.data, self.groupdq, self.meta.exposure.read_pattern, float(self.meta.exposure.frame_time),
            detector, mask_rows=WFI18_MASK_ROWS if mask_rows is None else mask_rows)
        log.info("wfi18_transient: %s", how)
        _set_step(self, "wfi18_transient")
        return self

    def linearity(self, linearity_ref, inverselinearity_ref=None, integralnonlinearity_ref=None):
        """Non-linearity correction: read-level when the inverse linearity is given, else classic."""
        from ..algorithms.linearity import correct_linearity

        shape = self.pixeldq.shape
        coeffs = np.asarray(ref_image(linearity_ref, "coeffs", shape, what="LINEARITY"), dtype=np.float32)
        lin_dq = np.asarray(ref_image(linearity_ref, "dq", shape, what="LINEARITY"), dtype=np.uint32)
        kwargs = {}
        if inverselinearity_ref is not None:
            kwargs["read_pattern"] = self.meta.exposure.read_pattern
            kwargs["inverse_coeffs"] = np.asarray(
                ref_image(inverselinearity_ref, "coeffs", shape, what="INVERSELINEARITY"), dtype=np.float32)
            kwargs["inverse_dq"] = np.asarray(
                ref_image(inverselinearity_ref, "dq", shape, what="INVERSELINEARITY"), dtype=np.uint32)
            if integralnonlinearity_ref is not None and "inl_correction" in integralnonlinearity_ref._tree:
                kwargs["inl_value"] = np.asarray(integralnonlinearity_ref.value)
                kwargs["inl_correction"] = np.asarray(integralnonlinearity_ref.inl_correction)
        which = correct_linearity(self.data, self.groupdq, self.pixeldq, coeffs, lin_dq, **kwargs)
        log.info("linearity: %s correction applied", which)
        _set_step(self, "linearity")
        return self

    def fit_ramps(self, gain_ref, readnoise_ref, *, algorithm: str = "ols_cas22",
                  use_ramp_jump_detection: bool = True, threshold_intercept: float = 5.5,
                  threshold_constant: float = 1.0 / 3.0, jump_refit: bool = True,
                  record_jumps: bool = False, nthreads: int | None = None):
        """Fit count rates (Casertano et al. 2022) with integrated jump detection -> ImageModel.

        The science area (border trimmed) is fitted in electrons and stored in DN/s;
        ``err``, ``var_poisson`` and ``var_rnoise`` are float32.  amp33 and the border
        reference arrays are carried over to the image.
        """
        from ..algorithms.ramp_fit import fit_ramps_cas22
        from .models import ImageModel

        if algorithm != "ols_cas22":
            raise ValidationError(f"ramp_fit algorithm {algorithm!r} is not available; use 'ols_cas22'")
        shape = self.pixeldq.shape
        gain = science(np.asarray(ref_image(gain_ref, "data", shape, what="GAIN"), dtype=np.float32))
        rnoise = science(np.asarray(ref_image(readnoise_ref, "data", shape, what="READNOISE"), dtype=np.float32))
        read_pattern = self.meta.exposure.read_pattern
        frame_time = float(self.meta.exposure.frame_time)
        gdq = science(self.groupdq)
        # the kernel writes the updated group DQ straight into the model (no copy back)
        in_place = isinstance(gdq, np.ndarray) and gdq.dtype == np.uint8 and gdq.flags.writeable
        result = fit_ramps_cas22(
            science(self.data), gdq, science(self.pixeldq), rnoise, gain,
            read_pattern, frame_time, use_jump_detection=use_ramp_jump_detection,
            threshold_intercept=threshold_intercept, threshold_constant=threshold_constant,
            jump_refit=jump_refit, nthreads=nthreads, record_jumps=record_jumps,
            groupdq_out=gdq if in_place else None, return_dumo=True,
        )
        if not in_place:
            gdq[...] = result.groupdq
        dumo = result.dumo
        meta = self.meta.to_dict()
        meta["model_type"] = "ImageModel"
        meta.setdefault("photometry", {"conversion_megajanskys": None,
                                       "conversion_megajanskys_uncertainty": None, "pixel_area": None})
        meta.setdefault("wcs", None)
        meta.setdefault("cal_step", {})["ramp_fit"] = "COMPLETE"
        tree = {
            "meta": meta,
            "data": result.slope,
            "dq": result.dq,
            "err": result.err,
            "var_poisson": result.var_poisson,
            "var_rnoise": result.var_rnoise,
            "chisq": np.zeros(result.slope.shape, np.float32),  # calloc: no serial fill
            "dumo": dumo,
        }
        for name in ("amp33", "border_ref_pix_left", "border_ref_pix_right", "border_ref_pix_top",
                     "border_ref_pix_bottom", "dq_border_ref_pix_left", "dq_border_ref_pix_right",
                     "dq_border_ref_pix_top", "dq_border_ref_pix_bottom"):
            tree[name] = getattr(self, name)
        image = ImageModel(tree, validate=False)
        if record_jumps and result.jumps is not None:
            image._tree["jump_indices"] = result.jumps.astype(np.int32)
        image.validate()
        return image

