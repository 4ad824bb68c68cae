"""Every calibration step class, for embedding (``romancore.steps.FlatFieldStep.call(...)``)."""

from .pipeline.steps import *  # noqa: F403
from .pipeline.steps import ALL_STEPS

__all__ = [cls.__name__ for cls in ALL_STEPS]
