"""The cards the report reads (reports/cards.json) are the registry's cards: never stale."""

import json

import zoo
from bench import cards


def test_committed_cards_equal_the_registry():
    committed = json.loads(cards.CARDS_PATH.read_text(encoding="utf-8"))
    assert committed == json.loads(cards.text(cards.export())), (
        f"{cards.CARDS_PATH.name} is stale: run `{cards.UPDATE_COMMAND}` and commit it"
    )


def test_cards_round_trip_through_data():
    read = cards.read()
    assert sorted(read) == zoo.survey_models()
    for name, card in read.items():
        assert card == zoo.get_card(name) and card.name == name
