"""SegBench's model zoo: registered builders and their cards.

import zoo
zoo.list_models("realtime")
model = zoo.create_model("bisenetv2", num_classes=19)
zoo.get_card("bisenetv2").reported
model = zoo.create_model("smp:Unet:resnet34", num_classes=19)   # a library's model (zoo.external)

The cards' data classes (`zoo.card`) import without torch; the registry and the models load on first use
of a registry function, so that a reader of card data (the report) never imports torch.
"""

from zoo.card import EXTERNAL_GROUP, GROUPS, ModelCard, Paper, Reported
from zoo.errors import MissingLibraryError, UnknownModelError
from zoo.plugins import PluginError, load_entry_points

_REGISTRY = (
    "check_model",
    "create_inference_model",
    "create_model",
    "default_input_hw",
    "find_card",
    "get_card",
    "get_converter",
    "get_preprocess",
    "get_recipe",
    "is_known",
    "list_converters",
    "list_models",
    "model_group",
    "register_model",
    "survey_models",
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
    "load_entry_points",
    *_REGISTRY,
]


def __getattr__(name: str):
    if name in _REGISTRY:
        from zoo import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
