"""The garbage collector's settings for the kit's processes (servicekit.collector)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from servicekit import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_a_started_process_sets_aside_what_it_made_and_collects_less_often(restored_collector: None) -> None:
    made_at_start = [[n] for n in range(1_000)]
    collector.settle_after_start()
    assert gc.get_threshold()[0] == collector.YOUNG_COLLECTION_AFTER
    assert gc.get_freeze_count() >= len(made_at_start)


def test_bulk_work_sets_aside_survivors_only_while_it_runs_and_restores_the_settings(restored_collector: None
                                                                                   ) -> None:
    gc.set_threshold(700, 10, 10)
    frozen_before = gc.get_freeze_count()
    with collector.bulk_work() as set_aside_survivors:
        assert gc.get_threshold()[0] == collector.YOUNG_COLLECTION_AFTER
        survivors = [{"member": n} for n in range(5_000)]
        set_aside_survivors()
        assert gc.get_freeze_count() >= frozen_before + len(survivors)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_cyclic_garbage_set_aside_during_bulk_work_is_collected_once_it_ends() -> None:
    class Node:
        other: object = None

    with collector.bulk_work() as set_aside_survivors:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        set_aside_survivors()
        del a, b
        gc.collect()
        assert gone() is not None
    gc.collect()
    assert gone() is None
