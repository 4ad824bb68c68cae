"""Steps and pipelines: typed parameters, reference files, cal_step bookkeeping, saving."""

from .params import Param, docs_table
from .pipeline import ExposurePipeline, MosaicPipeline, Pipeline
from .refs import ReferenceProvider
from .registry import resolve_class
from .step import RefType, Step
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

HighLevelPipeline = MosaicPipeline

__all__ = [
    "Param", "docs_table", "Pipeline", "ExposurePipeline", "MosaicPipeline", "HighLevelPipeline",
    "ReferenceProvider", "resolve_class", "RefType", "Step",
    "AssignWcsStep", "DarkCurrentStep", "DarkDecayStep", "DQInitStep", "FlatFieldStep", "FluxStep",
    "LinearityStep", "OutlierDetectionStep", "PhotomStep", "RampFitStep", "RefPixStep",
    "ResampleStep", "SaturationStep", "SkyMatchStep", "SourceCatalogStep", "TweakRegStep",
    "WFI18TransientStep",
]
