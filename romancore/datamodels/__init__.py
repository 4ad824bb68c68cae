"""Schema-validated data models of Roman WFI products and reference files."""

from .base import DataModel, Node
from .models import *  # noqa: F403
from .models import __all__ as _model_names
from .registry import class_for_reftype, class_for_schema, open

__all__ = ["DataModel", "Node", "open", "class_for_schema", "class_for_reftype", *_model_names]
