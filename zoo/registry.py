"""The model registry: one decorated builder per model, keyed by the builder's name.

    @register_model(card=ModelCard(...))
    def bisenetv2(num_classes: int = 19, **kwargs) -> nn.Module: ...

`create_model("bisenetv2")` builds it with random initialisation (nothing is ever downloaded). The per-model
facts evaluation needs are registered with the builder too: the official-checkpoint converter, the
authors' input preprocessing and their training recipe (`zoo.evaluation`).

The functions below also take a library model's spec (`smp:Unet:resnet34`, see zoo.external), so the harness
asks the same questions of any model: check_model, model_group, default_input_hw, find_card (None: no card).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from zoo import external
from zoo.card import EXTERNAL_GROUP, GROUPS, ModelCard
from zoo.errors import MissingLibraryError, UnknownModelError
from zoo.evaluation import DEFAULT_RECIPE, IMAGENET, Preprocess, Recipe
from zoo.layers.pad import PadToMultiple

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_CARDS: dict[str, ModelCard] = {}
# Official checkpoint -> our state_dict, registered with the builder (zoo.weights applies it).
_CONVERTERS: dict[str, Callable[[dict], dict]] = {}
_PREPROCESS: dict[str, Preprocess] = {}
_RECIPES: dict[str, Recipe] = {}


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
    if external.is_external(name):
        external.parse(name)  # an unknown library says so
        raise UnknownModelError(f"{name!r} is a library's model: it has no card")
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


def survey_models(group: str | None = None) -> list[str]:
    """The survey's models (those of zoo.models), sorted: list_models() less any a plugin or a test added."""
    return [n for n in list_models(group) if _BUILDERS[n].__module__.startswith("zoo.models.")]


def check_model(name: str) -> None:
    """Raise UnknownModelError unless `name` is a registered model or a library model spec that can be built
    here (MissingLibraryError, saying what to install, when its library is not installed)."""
    if external.is_external(name):
        external.check(name)
        return
    _load_models()
    if name not in _BUILDERS:
        raise UnknownModelError(
            f"unknown model {name!r} (`segbench list` shows the {len(_BUILDERS)} known ones; "
            f"a library's model is named {external.SPECS})"
        )


def is_known(name: str) -> bool:
    """Whether `create_model(name)` can build it here."""
    try:
        check_model(name)
    except (UnknownModelError, MissingLibraryError):
        return False
    return True


def model_group(name: str) -> str:
    """The model's group: its card's, or "external" for a library's model (nothing imported)."""
    if external.is_external(name):
        external.parse(name)
        return EXTERNAL_GROUP
    return get_card(name).group


def default_input_hw(name: str) -> tuple[int, int]:
    """The input size a sweep uses when none is given: the card's, or the one the library documents."""
    return external.input_hw(name) if external.is_external(name) else tuple(get_card(name).input_hw)


def find_card(name: str) -> ModelCard | None:
    """The model's card, or None for a library's model and an unknown name (no paper claims)."""
    _load_models()
    return _CARDS.get(name)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model with random initialisation; kwargs go to its builder (e.g. num_classes).
    A library model spec is built by its library, also with random initialisation (zoo.external)."""
    if external.is_external(name):
        return external.create_model(name, **kwargs)
    _check_known(name)
    return _BUILDERS[name](**kwargs)


def get_card(name: str) -> ModelCard:
    _check_known(name)
    return _CARDS[name]


def get_converter(name: str) -> Callable[[dict], dict] | None:
    """The official-checkpoint converter registered with `name`'s builder (None: keys load as they are, as
    for a library's model)."""
    if external.is_external(name):
        return None
    _check_known(name)
    return _CONVERTERS.get(name)


def get_preprocess(name: str) -> Preprocess:
    """The input preprocessing registered with `name`'s builder; ImageNet statistics (`IMAGENET`) for a model
    with none, as for a name that is not registered (a caller's own stand-in model)."""
    _load_models()
    return _PREPROCESS.get(name, IMAGENET)


def get_recipe(name: str) -> Recipe:
    """The training recipe registered with `name`'s builder; `DEFAULT_RECIPE` for a model with none, as for a
    name that is not registered."""
    _load_models()
    return _RECIPES.get(name, DEFAULT_RECIPE)


def list_converters() -> list[str]:
    """Model names whose builder has an official-checkpoint converter."""
    _load_models()
    return sorted(_CONVERTERS)


def create_inference_model(name: str, **kwargs) -> nn.Module:
    """`create_model` in eval mode, padded to the card's `input_divisor` (a library model's: the one its
    architecture declares) where the model needs one.

    What the harness measures and the tests check: any input size in, logits at that size out.
    """
    return padded(name, create_model(name, **kwargs).eval())


def padded(name: str, model: nn.Module) -> nn.Module:
    """`model` (a build of `name`) padded to the input divisor its card (a library model: its architecture)
    declares, so that any input size gives logits at that size."""
    divisor = model.input_divisor if external.is_external(name) else get_card(name).input_divisor
    return PadToMultiple(model, divisor).eval() if divisor > 1 else model
