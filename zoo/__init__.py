"""SegBench's model zoo: registered builders and their cards.

import zoo
zoo.list_models("realtime")
model = zoo.create_model("bisenetv2", num_classes=19)
zoo.get_card("bisenetv2").reported

The cards' data classes (`zoo.card`) import without torch; the registry and the models load on first use
of a registry function, so that a reader of card data (the report) never imports torch.
"""

from zoo.card import GROUPS, ModelCard, Paper, Reported

_REGISTRY = (
    "UnknownModelError",
    "create_inference_model",
    "create_model",
    "get_card",
    "get_converter",
    "list_converters",
    "list_models",
    "register_model",
)

__all__ = ["GROUPS", "ModelCard", "Paper", "Reported", *_REGISTRY]


def __getattr__(name: str):
    if name in _REGISTRY:
        from zoo import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
