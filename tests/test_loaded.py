"""The load-once holder (pocketlm.models.loaded): one load per key, however many threads ask, and no key waits
for another.

Loaders here block on events the test sets, so what each thread sees is decided by the test, not by timing;
every wait has a timeout, so a holder that blocks where it must not fails instead of hanging.
"""

from __future__ import annotations

import threading

import pytest

from pocketlm.models.loaded import Loaded

WAIT = 10  # seconds: far longer than any step here takes; reached only when the holder blocks wrongly


class SlowLoader:
    """A loader that counts its calls and finishes only when the test releases it."""

    def __init__(self, value: object):
        self.value, self.calls = value, 0
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the loader"
        return self.value


def in_thread(target) -> tuple[threading.Thread, list]:
    results: list = []
    thread = threading.Thread(target=lambda: results.append(target()), daemon=True)
    thread.start()
    return thread, results


def test_two_threads_asking_for_one_key_load_it_once():
    loaded: Loaded[str, object] = Loaded()
    load = SlowLoader(object())
    first, got_first = in_thread(lambda: loaded.get("m", load))
    assert load.started.wait(WAIT)
    second, got_second = in_thread(lambda: loaded.get("m", load))  # arrives while the first is loading
    load.release.set()
    for thread in (first, second):
        thread.join(WAIT)
    assert load.calls == 1 and got_first == got_second == [load.value]
    assert loaded.keys() == ["m"] and "m" in loaded


def test_loading_one_key_blocks_no_other_key():
    loaded: Loaded[str, str] = Loaded()
    loaded.get("ready", lambda: "ready value")
    slow = SlowLoader("slow value")
    thread, got = in_thread(lambda: loaded.get("slow", slow))
    assert slow.started.wait(WAIT)
    reader, read = in_thread(
        lambda: (loaded.get("ready", lambda: "never called"), loaded.get("other", lambda: "other"))
    )
    reader.join(WAIT)
    assert not reader.is_alive(), "a loaded key, or another key's load, waited for the slow load"
    assert read == [("ready value", "other")]
    assert loaded.keys() == ["ready", "other"]  # the one still loading is not listed yet
    slow.release.set()
    thread.join(WAIT)
    assert got == ["slow value"] and slow.calls == 1 and loaded.keys() == ["ready", "other", "slow"]


def test_a_failed_load_keeps_nothing_and_the_next_caller_tries_again():
    loaded: Loaded[str, str] = Loaded()

    def broken():
        raise OSError("model file missing")

    with pytest.raises(OSError, match="missing"):
        loaded.get("m", broken)
    assert "m" not in loaded and loaded.keys() == []
    assert loaded.get("m", lambda: "fixed") == "fixed"


def test_drop_forgets_a_key_and_returns_its_value():
    loaded: Loaded[str, list] = Loaded()
    first = loaded.get("m", lambda: ["first"])
    assert loaded.drop("m") is first and loaded.keys() == []
    assert loaded.drop("m") is None  # not loaded: nothing to hand back
    assert loaded.get("m", lambda: ["second"]) == ["second"]  # asked again: loaded again


def test_drop_waits_for_a_load_in_progress():
    loaded: Loaded[str, str] = Loaded()
    slow = SlowLoader("value")
    loader, _ = in_thread(lambda: loaded.get("m", slow))
    assert slow.started.wait(WAIT)
    dropper, dropped = in_thread(lambda: loaded.drop("m"))
    dropper.join(0.2)
    assert dropper.is_alive()  # it waits for the load rather than returning None while a value is on its way
    slow.release.set()
    for thread in (loader, dropper):
        thread.join(WAIT)
    assert dropped == ["value"] and loaded.keys() == []


def test_keys_list_the_least_recently_used_first():
    loaded: Loaded[str, str] = Loaded()
    for key in ("a", "b", "c"):
        loaded.get(key, lambda key=key: key)
    loaded.touch("a")
    loaded.touch("missing")  # not loaded: nothing to move, nothing added
    assert loaded.keys() == ["b", "c", "a"]
    loaded.get("b", lambda: "never called")  # reading a value is not using it: the holder's owner says when
    assert loaded.keys() == ["b", "c", "a"]


def test_size_adds_up_what_the_loaded_values_cost():
    loaded: Loaded[str, str] = Loaded()
    loaded.get("small", lambda: "s", size=100)
    loaded.get("large", lambda: "l", size=900)
    loaded.get("free", lambda: "f")
    assert loaded.size() == 1000
    loaded.drop("large")
    assert loaded.size() == 100
