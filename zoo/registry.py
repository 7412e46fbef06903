"""The model registry: one decorated builder per model, keyed by the builder's name.

    @register_model(card=ModelCard(...))
    def bisenetv2(num_classes: int = 19, **kwargs) -> nn.Module: ...

`create_model("bisenetv2")` builds it with random initialisation (nothing is ever downloaded). The per-model
facts evaluation needs are registered with the builder too: the official-checkpoint converter, the
authors' input preprocessing and their training recipe (`zoo.evaluation`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from zoo.card import GROUPS, ModelCard
from zoo.evaluation import DEFAULT_RECIPE, IMAGENET, Preprocess, Recipe
from zoo.layers.pad import PadToMultiple

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_CARDS: dict[str, ModelCard] = {}
# Official checkpoint -> our state_dict, registered with the builder (zoo.weights applies it).
_CONVERTERS: dict[str, Callable[[dict], dict]] = {}
_PREPROCESS: dict[str, Preprocess] = {}
_RECIPES: dict[str, Recipe] = {}


class UnknownModelError(KeyError):
    """Raised for a name that no builder is registered under."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def register_model(
    card: ModelCard,
    converter: Callable[[dict], dict] | None = None,
    preprocess: Preprocess | None = None,
    recipe: Recipe | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated builder under its function name, with its card and, where the authors'
    checkpoint names or shapes differ from ours, `converter(official_state_dict) -> our_state_dict`;
    `preprocess` where the authors' input is not `zoo.evaluation.IMAGENET`, `recipe` where the paper or
    official code gives one."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        if card.group not in GROUPS:
            raise ValueError(f"model {name!r}: unknown group {card.group!r} (one of {', '.join(GROUPS)})")
        _BUILDERS[name] = builder
        _CARDS[name] = dataclasses.replace(card, name=name)
        if converter is not None:
            _CONVERTERS[name] = converter
        if preprocess is not None:
            _PREPROCESS[name] = preprocess
        if recipe is not None:
            _RECIPES[name] = recipe
        return builder

    return decorator


_loaded = False


def _load_models() -> None:
    """Import every model module once (each registers its builders), on the registry's first use."""
    global _loaded
    if not _loaded:
        _loaded = True
        import zoo.models  # noqa: F401


def _check_known(name: str) -> None:
    _load_models()
    if name not in _BUILDERS:
        raise UnknownModelError(
            f"unknown model {name!r}; `segbench list` shows the {len(_BUILDERS)} known ones"
        )


def list_models(group: str | None = None) -> list[str]:
    """Registered model names, sorted; only those of `group` when given."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"unknown group {group!r} (one of {', '.join(GROUPS)})")
    _load_models()
    return sorted(n for n, c in _CARDS.items() if group is None or c.group == group)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model with random initialisation; kwargs go to its builder (e.g. num_classes)."""
    _check_known(name)
    return _BUILDERS[name](**kwargs)


def get_card(name: str) -> ModelCard:
    _check_known(name)
    return _CARDS[name]


def get_converter(name: str) -> Callable[[dict], dict] | None:
    """The official-checkpoint converter registered with `name`'s builder (None: keys load as they are)."""
    _check_known(name)
    return _CONVERTERS.get(name)


def get_preprocess(name: str) -> Preprocess:
    """The input preprocessing registered with `name`'s builder; ImageNet statistics (`IMAGENET`) for a model
    with none, as for a name that is not registered (a caller's own stand-in model)."""
    return _PREPROCESS.get(name, IMAGENET)


def get_recipe(name: str) -> Recipe:
    """The training recipe registered with `name`'s builder; `DEFAULT_RECIPE` for a model with none, as for a
    name that is not registered."""
    return _RECIPES.get(name, DEFAULT_RECIPE)


def list_converters() -> list[str]:
    """Model names whose builder has an official-checkpoint converter."""
    _load_models()
    return sorted(_CONVERTERS)


def create_inference_model(name: str, **kwargs) -> nn.Module:
    """`create_model` in eval mode, padded to the card's `input_divisor` where the model needs one.

    What the harness measures and the tests check: any input size in, logits at that size out.
    """
    model = create_model(name, **kwargs).eval()
    divisor = get_card(name).input_divisor
    return PadToMultiple(model, divisor).eval() if divisor > 1 else model
