"""Pipelines: ordered step lists run through the one Step run path.

:class:`ExposurePipeline` (``roman_elp``): L1 ``_uncal`` exposures → L2 ``_cal`` images
(+ ``_cat``, ``_segm``); :class:`MosaicPipeline` (``roman_mos``): an association of L2
images → one L3 ``_coadd`` mosaic (+ ``_cat``, ``_segm``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from romancore.errors import NoScienceDataError, ParameterError

from . import config as _config
from .params import Param
from .refs import ReferenceProvider
from .step import SKIPPED, Step, get_meta, is_model, peak_rss_mb, save_model, set_meta
from .steps import (
    AssignWcsStep,
    DarkCurrentStep,
    DarkDecayStep,
    DQInitStep,
    FlatFieldStep,
    FluxStep,
    LinearityStep,
    OutlierDetectionStep,
    PhotomStep,
    RampFitStep,
    RefPixStep,
    ResampleStep,
    SaturationStep,
    SkyMatchStep,
    SourceCatalogStep,
    TweakRegStep,
    WFI18TransientStep,
)


class Pipeline(Step):
    """A step made of sub-steps (``step_defs``: ordered ``(name, StepClass)`` pairs)."""

    step_defs: ClassVar[tuple[tuple[str, type[Step]], ...]] = ()
    #: pipeline parameter -> sub-steps that receive it unless they set it themselves
    passdown: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, name: str | None = None, parent: Step | None = None,
                 config_file=None, steps: dict | None = None, **params):
        object.__setattr__(self, "steps", {})
        super().__init__(name=name, parent=parent, config_file=None, **{})
        for sname, scls in self.step_defs:
            self.steps[sname] = scls(name=sname, parent=self)
        if config_file is not None:
            cfg = _config.load_config(config_file)
            _config.check_class(cfg, type(self))
            self._params.update(_config.filter_compat(cfg["parameters"], self.log))
            self._apply_step_params(cfg["steps"], source=str(config_file))
            object.__setattr__(self, "config_file", config_file)
        self._params.update(params)
        if steps:
            self._apply_step_params(steps, source="steps=")
        self._pass_down()

    def _step_by_name(self, name: str) -> Step:
        if name in self.steps:
            return self.steps[name]
        for sname, scls in self.step_defs:
            if name == scls.__name__ or name in scls.aliases or name == scls.class_alias:
                return self.steps[sname]
        raise ParameterError(
            f"{type(self).__name__}: unknown step {name!r}; steps are: {', '.join(self.steps)}"
        )

    def _apply_step_params(self, mapping: dict, source: str) -> None:
        if not isinstance(mapping, dict):
            raise ParameterError(f"{type(self).__name__}: {source} must map step names to parameters")
        for sname, params in mapping.items():
            step = self._step_by_name(str(sname))
            if params is None:
                continue
            if not isinstance(params, dict):
                raise ParameterError(
                    f"{type(self).__name__}: parameters of step {sname!r} must be a mapping, got {params!r}"
                )
            step._params.update(_config.filter_compat(params, step.log))

    def _pass_down(self) -> None:
        for pname, targets in self.passdown.items():
            for t in targets:
                step = self.steps[t]
                if pname not in step._params.explicit:
                    step._params.set(pname, self._params.values[pname], explicit=False)

    def __getattr__(self, key):
        steps = self.__dict__.get("steps")
        if steps and key in steps:
            return steps[key]
        return super().__getattr__(key)

    def __setattr__(self, key, value):
        super().__setattr__(key, value)
        if key in self.passdown:
            self._pass_down()

    def get_parameters(self) -> dict:
        return self._params.plain()

    def to_config(self) -> dict:
        tree = super().to_config()
        tree["steps"] = [s.to_config() for s in self.steps.values()]
        return tree

    @classmethod
    def help_text(cls) -> str:
        from .step import step_help

        parts = [step_help(cls)]
        for sname, scls in cls.step_defs:
            parts.append(step_help(scls, prefix=f"--steps.{sname}."))
        return "\n\n".join(parts)

    # -------------------------------------------------------------- running
    def run(self, input):
        params = dict(self._params.values)
        object.__setattr__(self, "_running", True)
        provider = ReferenceProvider()
        t0 = time.perf_counter()
        try:
            if params["skip"]:
                self.log.info("%s skipped (skip=True)", self.name)
                from romancore.container import open_input

                return open_input(input)
            input = self._run_hooks(params["pre_hooks"], input, "pre")
            result = self.process(input, params, provider)
            result = self._run_hooks(params["post_hooks"], result, "post")
        finally:
            provider.close()
            object.__setattr__(self, "_running", False)
        self.log.info("%s done in %.3f s (peak RSS %.0f MB)", self.name,
                      time.perf_counter() - t0, peak_rss_mb())
        return result

    __call__ = run

    def process(self, input, params, provider):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} defines no process(): a Pipeline subclass must implement it")

    def run_step(self, sname: str, data, provider, params):
        """Run sub-step *sname* through the common path (intermediate saves honour its params)."""
        return self.steps[sname].execute(data, provider, output_dir=params["output_dir"])

    def save_products(self, model, products: dict, params, *, input_name=None) -> list[Path]:
        """Write the primary product (suffix ``params['suffix']``) and its extra products."""
        suffix = params["suffix"] or self.suffix_default()
        name = input_name or get_meta(model, "filename")
        out = [save_model(model, suffix, output_dir=params["output_dir"],
                          output_file=params["output_file"], input_name=name)]
        for psuffix, product in products.items():
            if product is not None:
                out.append(save_model(product, psuffix, output_dir=params["output_dir"],
                                      output_file=params["output_file"], primary=False,
                                      input_name=name))
        for p in out:
            self.log.info("Saved %s", p)
        return out


# ============================================================================ ELP
#: exposure type -> last step that applies (later steps are SKIPPED); others: 'photom'
ELP_LAST_STEP = {"WFI_IMAGE": None, "WFI_LOLO": None, "WFI_WFSC": "flat_field"}
ELP_DEFAULT_LAST = "photom"


class ExposurePipeline(Pipeline):
    """Exposure Level Pipeline: L1 ramps → calibrated L2 count-rate images (``_cal``)."""

    class_alias = "roman_elp"
    aliases = ("exposure_pipeline",)
    default_suffix = "cal"
    step_defs = (
        ("dq_init", DQInitStep), ("saturation", SaturationStep), ("refpix", RefPixStep),
        ("dark_decay", DarkDecayStep), ("wfi18_transient", WFI18TransientStep),
        ("linearity", LinearityStep), ("ramp_fit", RampFitStep), ("dark_current", DarkCurrentStep),
        ("assign_wcs", AssignWcsStep), ("photom", PhotomStep), ("flat_field", FlatFieldStep),
        ("source_catalog", SourceCatalogStep), ("tweakreg", TweakRegStep),
    )
    spec = (
        Param("save_calibrated_ramp", "bool", False, "Save the corrected ramp (before ramp_fit) as _ramp.",
              to_method=False),
        Param("on_disk", "bool", False, "Keep at most one exposure in memory (others in temporary files).",
              to_method=False),
    )

    def _applicable(self, exptype: str) -> list[str]:
        names = [n for n, _ in self.step_defs]
        last = ELP_LAST_STEP.get(exptype, ELP_DEFAULT_LAST)
        return names if last is None else names[: names.index(last) + 1]

    def process(self, input, params, provider):
        from romancore.container import ModelContainer, open_input

        data = open_input(input, on_disk=params["on_disk"])
        single = is_model(data)
        exposures = [data] if single else data
        if not single and len(data) == 0:
            raise NoScienceDataError("the ELP input holds no exposures")
        images = ModelContainer(on_disk=params["on_disk"])
        products: list[dict] = []
        align: list[int] = []
        from romancore.progress import Progress

        progress = Progress(len(exposures), "exposures")
        for idx, model in enumerate(exposures):
            image, prods, can_align = self._process_exposure(model, provider, params)
            progress.advance()
            images.append(image)
            products.append(prods)
            if can_align:
                align.append(idx)
        self._tweakreg(images, align, provider, params)
        for image, prods in zip(images, products, strict=True):
            if get_meta(image, "wcs") is not None:
                prods["wcs"] = image.wcs_product()  # after tweakreg: the final WCS
        if params["save_results"] or params["output_file"]:
            for image, prods in zip(images, products, strict=True):
                self.save_products(image, prods, params)
        return images[0] if single else images

    def _process_exposure(self, model, provider, params):
        from .step import _to_ramp

        raw = model
        model = _to_ramp(model)
        if model is not raw and hasattr(raw, "release_arrays"):
            raw.release_arrays()  # the L1 arrays were converted: do not keep them resident
        exptype = str(get_meta(model, "exposure.type", "") or "")
        applicable = set(self._applicable(exptype))
        prods: dict = {}
        saturated = False
        for sname, _ in self.step_defs:
            if sname == "tweakreg":
                continue
            step = self.steps[sname]
            if saturated or sname not in applicable:
                why = "exposure fully saturated" if saturated else f"not applied to exposure type {exptype!r}"
                self.log.info("Step %s skipped: %s", sname, why)
                step._mark(model, SKIPPED)
                continue
            model = self.run_step(sname, model, provider, params)
            if sname == "saturation" and _fully_saturated(model):
                self.log.warning("All pixels are saturated: the image is all zeros; later steps skipped")
                model = _zeroed_image(model)
                saturated = True
            elif sname == "linearity" and params["save_calibrated_ramp"]:
                save_model(model, "ramp", output_dir=params["output_dir"], keep_filename=True)
            elif sname == "source_catalog":
                prods = dict(step.products)
        can_align = not saturated and "tweakreg" in applicable
        if not can_align:
            self.steps["tweakreg"]._mark(model, SKIPPED)
        return model, prods, can_align

    def _tweakreg(self, images, align, provider, params):
        from romancore.container import ModelContainer

        if not align:
            return
        if len(align) == len(images):
            self.run_step("tweakreg", images, provider, params)
            return
        sub = ModelContainer([images[i] for i in align])
        self.run_step("tweakreg", sub, provider, params)
        for i, model in zip(align, sub, strict=True):
            images[i] = model


def _fully_saturated(ramp) -> bool:
    import numpy as np

    from romancore.dq import group

    gdq = getattr(ramp, "groupdq", None)
    if gdq is None:
        return False
    gdq = np.asarray(gdq)
    return bool(gdq.size) and bool(np.all(gdq & np.uint8(group.SATURATED)))


def _zeroed_image(ramp):
    """L2 image of zeros (data, err, variances) for a fully saturated exposure."""
    import numpy as np

    from romancore.datamodels import ImageModel
    from romancore.dq import pixel

    nres, ny, nx = np.shape(ramp.data)
    image = ImageModel.create_minimal(shape=(ny - 8, nx - 8))
    for key in list(ramp.meta):
        value = getattr(ramp.meta, key)
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        set_meta(image, key, value)
    image.dq = (np.asarray(ramp.pixeldq)[4:-4, 4:-4] | np.uint32(pixel.SATURATED | pixel.DO_NOT_USE)).astype(np.uint32)
    return image


# ============================================================================ MLP
class MosaicPipeline(Pipeline):
    """Mosaic Level Pipeline: an association of L2 images → one L3 mosaic (``_coadd``)."""

    class_alias = "roman_mos"
    aliases = ("mosaic_pipeline", "roman_hlp", "highlevel_pipeline", "HighLevelPipeline")
    default_suffix = "coadd"
    step_defs = (
        ("flux", FluxStep), ("skymatch", SkyMatchStep), ("outlier_detection", OutlierDetectionStep),
        ("resample", ResampleStep), ("source_catalog", SourceCatalogStep),
    )
    spec = (
        Param("on_disk", "bool", False, "Keep at most one input image in memory.", to_method=False),
        Param("resample_on_skycell", "bool", True,
              "Resample onto the skycell named in the association (outlier_detection and resample).",
              to_method=False),
    )
    passdown = {"resample_on_skycell": ("outlier_detection", "resample"),
                "output_dir": ("outlier_detection",)}

    def process(self, input, params, provider):
        from romancore.container import ModelContainer, open_input

        data = open_input(input, on_disk=params["on_disk"])
        container = data if isinstance(data, ModelContainer) else ModelContainer([data])
        if len(container) == 0:
            raise NoScienceDataError("the mosaic input holds no images")
        from romancore.resample import check_imaging

        check_imaging(container)  # refuse spectroscopic inputs before any work
        for sname in ("flux", "skymatch", "outlier_detection"):
            container = self.run_step(sname, container, provider, params)
        mosaic = self.run_step("resample", container, provider, params)
        mosaic = self.run_step("source_catalog", mosaic, provider, params)
        prods = dict(self.steps["source_catalog"].products)
        if params["save_results"] or params["output_file"]:
            self.save_products(mosaic, prods, params, input_name=_product_name(container))
        return mosaic


def _product_name(container) -> str | None:
    asn = getattr(container, "asn_table", None)
    if asn:
        name = asn["products"][0].get("name")
        if name:
            return str(name)
    return None


ALL_PIPELINES = (ExposurePipeline, MosaicPipeline)
