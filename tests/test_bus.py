"""The event bus: every subscriber gets every event in order, each on its
own queue, and a stuck subscriber never blocks publishing."""

from __future__ import annotations

from engine.bus import EventBus
from engine.events import Notice


def notice(seq: int, directive: str = "d1") -> Notice:
    return Notice(directive_id=directive, seq=seq, message=f"n{seq}")


async def test_each_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    one, two = bus.subscribe(), bus.subscribe()
    bus.publish_many([notice(i) for i in range(1, 6)])
    assert [e.seq for e in one.drain()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in two.drain()] == [1, 2, 3, 4, 5]


async def test_subscribers_can_follow_one_directive() -> None:
    bus = EventBus()
    only_d2 = bus.subscribe("d2")
    bus.publish(notice(1, "d1"))
    bus.publish(notice(1, "d2"))
    assert [(e.directive_id, e.seq) for e in only_d2.drain()] == [("d2", 1)]


async def test_a_full_subscriber_is_marked_lagged_instead_of_blocking() -> None:
    bus = EventBus(max_queue=3)
    slow, fast = bus.subscribe(), bus.subscribe()
    for i in range(1, 6):
        bus.publish(notice(i))
        fast.drain()
    assert slow.lagged and slow.dropped > 0  # it knows to reload from the store
    assert not fast.lagged


async def test_closed_subscription_receives_nothing() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    sub.close()
    bus.publish(notice(1))
    assert sub.drain() == [] and bus.subscriber_count == 0
