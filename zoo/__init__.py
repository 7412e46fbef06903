"""SegBench's model zoo: registered builders and their cards.

import zoo
zoo.list_models("realtime")
model = zoo.create_model("bisenetv2", num_classes=19)
zoo.get_card("bisenetv2").reported
"""

from zoo import models as _models  # noqa: F401  (registers every model)
from zoo.card import GROUPS, ModelCard, Paper, Reported
from zoo.registry import (
    UnknownModelError,
    create_inference_model,
    create_model,
    get_card,
    list_models,
    register_model,
)

__all__ = [
    "GROUPS",
    "ModelCard",
    "Paper",
    "Reported",
    "UnknownModelError",
    "create_inference_model",
    "create_model",
    "get_card",
    "list_models",
    "register_model",
]
