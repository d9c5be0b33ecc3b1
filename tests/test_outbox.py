"""The MQTT outbox on its own (sans-IO): order, drop-oldest that spares the in-flight message, resend set."""

from __future__ import annotations

import pytest

from companion.bus.outbox import Outbox
from companion.bus.topics import Outgoing


def _m(topic: str, payload: str = "x", retain: bool = False) -> Outgoing:
    return Outgoing(topic, payload, retain=retain)


def test_messages_leave_in_order_and_only_when_acknowledged() -> None:
    box = Outbox(10)
    a, b = _m("a"), _m("b")
    box.add(a)
    box.add(b)
    assert box.next() is a
    box.failed()  # the connection went before the PUBACK
    assert box.next() is a and len(box) == 2
    box.done(a)
    assert box.next() is b
    box.done(b)
    assert box.next() is None and len(box) == 0


def test_full_outbox_drops_the_oldest_but_not_the_one_in_flight() -> None:
    box = Outbox(2)
    first, second, third = _m("1"), _m("2"), _m("3")
    box.add(first)
    assert box.next() is first
    box.add(second)
    assert box.add(third) == 1  # "2" goes: "1" is awaiting its PUBACK
    assert list(box) == [first, third] and box.dropped == 1
    box.done(first)
    assert box.add(_m("4")) == 0 and box.add(_m("5")) == 1
    assert [m.topic for m in box] == ["4", "5"]
    with pytest.raises(ValueError):
        Outbox(0)


def test_retained_states_are_resent_unless_a_newer_one_is_queued() -> None:
    box = Outbox(10)
    old_state, battery = _m("dev/state", "idle", True), _m("dev/battery", "80", True)
    box.remember(old_state)
    box.remember(battery)
    box.add(_m("dev/state", "listening", True))
    assert box.retained_to_resend() == [battery]
