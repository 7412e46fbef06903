"""SegBench's model zoo: registered builders and their cards.

import zoo
zoo.list_models("realtime")
model = zoo.create_model("bisenetv2", num_classes=19)
zoo.get_card("bisenetv2").reported
model = zoo.create_model("smp:Unet:resnet34", num_classes=19)   # a library's model (zoo.external)
"""

from zoo import models as _models  # noqa: F401  (registers every model)
from zoo.card import GROUPS, ModelCard, Paper, Reported
from zoo.errors import MissingLibraryError, UnknownModelError
from zoo.external import EXTERNAL_GROUP
from zoo.plugins import PluginError, load_entry_points
from zoo.registry import (
    check_model,
    create_inference_model,
    create_model,
    default_input_hw,
    find_card,
    get_card,
    is_known,
    list_models,
    model_group,
    register_model,
)

__all__ = [
    "EXTERNAL_GROUP",
    "GROUPS",
    "MissingLibraryError",
    "ModelCard",
    "Paper",
    "PluginError",
    "Reported",
    "UnknownModelError",
    "check_model",
    "create_inference_model",
    "create_model",
    "default_input_hw",
    "find_card",
    "get_card",
    "is_known",
    "list_models",
    "load_entry_points",
    "model_group",
    "register_model",
]
