"""The Python worker daemon's garbage collection between tasks (pure: no Spark)."""

from __future__ import annotations

import gc
import weakref

import pytest

from dicomsql import worker_daemon


class Node:
    """An object that can be part of a reference cycle."""

    other: Node | None = None


@pytest.fixture
def tasks(monkeypatch):
    """A fresh task counter; whatever the tests freeze is unfrozen afterwards."""
    monkeypatch.setattr(worker_daemon, "_tasks", iter(range(1, 1000)))
    yield
    gc.unfreeze()


def garbage_cycle() -> weakref.ref:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_a_task_garbage_is_collected_and_its_survivors_frozen(tasks):
    cycle = garbage_cycle()
    survivor = Node()
    worker_daemon.collect_garbage()
    assert cycle() is None
    assert gc.get_freeze_count() > 0
    assert not any(obj is survivor for obj in gc.get_objects())


def test_frozen_objects_are_collected_every_full_collection(tasks):
    kept = [Node()]
    kept[0].other = kept[0]
    worker_daemon.collect_garbage()
    cycle = weakref.ref(kept.pop())
    for _ in range(worker_daemon.FULL_COLLECTION_EVERY - 2):
        worker_daemon.collect_garbage()
    assert cycle() is not None, "a frozen cycle waits for the full collection"
    worker_daemon.collect_garbage()
    assert cycle() is None
