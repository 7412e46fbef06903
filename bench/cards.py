"""Cards as data: the zoo's model cards exported to one JSON file, which is how they reach the report.

The report never imports the models (nor torch): it reads `reports/cards.json`, written by `segbench cards`
from the registry. A test keeps the committed file equal to the registry's cards, so it cannot go stale;
after editing a card, run `segbench cards` and commit the file with the change.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import UsageError
from zoo.card import ModelCard

CARDS_VERSION = 1
CARDS_PATH = Path(__file__).resolve().parent.parent / "reports" / "cards.json"
UPDATE_COMMAND = "segbench cards"


def export(names: list[str] | None = None) -> dict:
    """{cards_version, cards: {name: card as data}} for the given (default: every registered) model."""
    import zoo  # the registry, and with it torch: only the writer needs them

    names = sorted(names or zoo.survey_models())
    return {"cards_version": CARDS_VERSION, "cards": {name: zoo.get_card(name).to_dict() for name in names}}


def text(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def read(path: Path = CARDS_PATH) -> dict[str, ModelCard]:
    """name -> card, from an exported file; a missing file means no cards (a report without claims)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("cards_version") != CARDS_VERSION:
            raise ValueError(f"cards_version {document.get('cards_version')!r} is not {CARDS_VERSION}")
        return {name: ModelCard.from_dict(card) for name, card in document["cards"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read cards file {path}: {exc}") from None
