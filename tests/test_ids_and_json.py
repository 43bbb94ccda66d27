"""Identifiers and stored JSON, both made or read on every step."""

from __future__ import annotations

import json
import time

import pytest

from durably_reflex._ids import new_id
from durably_reflex._json import decode_json

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def test_ids_made_in_one_process_increase_strictly_even_within_a_millisecond():
    ids = [new_id() for _ in range(20_000)]  # far more than one millisecond's worth

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_an_id_is_a_ulid_whose_first_ten_characters_are_its_millisecond():
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000

    assert len(made) == 26 and set(made) <= set(CROCKFORD)
    millisecond = 0
    for character in made[:10]:
        millisecond = millisecond * 32 + CROCKFORD.index(character)
    assert before <= millisecond <= after + 1  # +1: a millisecond's ids may borrow the next one


@pytest.mark.parametrize(
    "text",
    ['2', 'null', '"x"', '{"a": [1, 2.5, "z"], "b": {"c": null}}', "123456789012345678901234567890", "1e400",
     '"\\ud800"', '{"a": 1, "a": 2}', "-0.0", '"caf\\u00e9"'],
)  # fmt: skip
def test_stored_json_decodes_as_json_loads_does(text):
    assert decode_json(text) == json.loads(text)


def test_text_that_is_not_json_is_refused_as_json_loads_refuses_it():
    with pytest.raises(ValueError):
        decode_json("{not json")
