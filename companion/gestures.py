"""What an Omi's button gestures do in a conversation.

An Omi reports only tap, double tap and long press, each followed by a release 40 ms later, and never a
press (companion/protocol/omi.py): push-to-talk that waits for PRESS and ends the turn on RELEASE would
never start on an Omi, and a turn opened by a tap would end 40 ms later on its release. So the omi profile
gets gestures it has:

* tap: talk. In tap-to-talk it opens the mic for one turn; in push-to-talk (tap to talk, tap to stop) a
  first tap opens the mic and a second ends the turn at once. A tap during a reply interrupts it.
* double tap: stop. It interrupts a reply and closes the mic (hands-free keeps listening).
* long press: nothing here; holding it 3 s powers the device off.
* release: ignored; it follows every gesture.
"""

from __future__ import annotations

from enum import Enum

from companion.protocol import Button


class Act(Enum):
    BARGE_IN = "barge_in"  # interrupt the reply in progress
    LISTEN = "listen"  # open the mic for a turn
    END_TURN = "end_turn"  # the turn ends now, with what was said
    CLOSE = "close"  # stop listening (tap modes)


def omi_gesture(button: Button, mode: str, *, busy: bool, listening: bool) -> tuple[Act, ...]:
    """The actions, in order, for an Omi gesture in a session ``mode`` (hands_free, tap_to_talk,
    push_to_talk); ``busy``: a reply is in progress; ``listening``: the mic is open for a turn."""
    if button is Button.DOUBLE_TAP:
        return (Act.BARGE_IN, Act.CLOSE) if busy else (Act.CLOSE,)
    if button is not Button.TAP:
        return ()
    if mode == "hands_free":
        return (Act.BARGE_IN,) if busy else ()
    if busy:
        return (Act.BARGE_IN, Act.LISTEN)
    if mode == "push_to_talk" and listening:
        return (Act.END_TURN,)
    return (Act.LISTEN,)
