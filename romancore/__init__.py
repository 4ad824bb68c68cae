"""romancore: calibration pipeline for the Roman Wide Field Instrument.

Importing romancore configures nothing globally (no logging handlers, no
warnings filters, no environment changes).
"""

__version__ = "0.1.0"

from . import dq, errors  # noqa: E402
from .datamodels import (  # noqa: E402
    DataModel,
    ImageModel,
    MosaicModel,
    RampModel,
    ScienceRawModel,
    open,
)

from . import steps  # noqa: E402
from .pipeline import ExposurePipeline, MosaicPipeline  # noqa: E402

__all__ = [
    "__version__", "dq", "errors", "open", "steps", "DataModel", "ScienceRawModel", "RampModel",
    "ImageModel", "MosaicModel", "ExposurePipeline", "MosaicPipeline",
]
