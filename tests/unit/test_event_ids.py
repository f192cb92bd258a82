"""Event ids: version 7 UUIDs, unique, in the order they were made across milliseconds."""

from __future__ import annotations

import time
import uuid

from servicekit.events import NewEvent, new_event_id


def test_an_event_id_is_a_version_7_uuid_carrying_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_event_id()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_event_ids_are_unique_and_sort_in_the_order_of_the_milliseconds_they_were_made_in() -> None:
    many = [new_event_id() for _ in range(20_000)]
    assert len(set(many)) == len(many)
    earlier = new_event_id()
    time.sleep(0.002)
    later = new_event_id()
    assert earlier < later
    assert str(earlier) < str(later), "the text form sorts the same way"


def test_a_new_event_gets_a_version_7_id_of_its_own() -> None:
    first, second = NewEvent(type="T", data={}), NewEvent(type="T", data={})
    assert first.event_id != second.event_id
    assert first.event_id.version == second.event_id.version == 7
