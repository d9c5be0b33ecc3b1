"""What the headset tells a session: buttons (per listening mode and profile), playback progress,
battery, connection changes and link errors."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from companion.events import Availability, BatteryChanged, ButtonPressed, ErrorEvent
from companion.gestures import Act, omi_gesture
from companion.link.base import (
    BatteryEvent,
    ButtonEvent,
    ConnectionEvent,
    HeadsetLink,
    LinkError,
    LinkErrorEvent,
    PlaybackStatus,
)
from companion.protocol import Button, DeviceState, Profile

if TYPE_CHECKING:
    from companion.session.core import Session

log = logging.getLogger(__name__)

_BARGE_BUTTONS = {Button.TAP, Button.PRESS, Button.DOUBLE_TAP}


class HeadsetEvents:
    """Reads a link's events for one session; the session (memory, timers, queue) outlives the link."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._link_was_connected = session.link.connected

    async def run(self, link: HeadsetLink) -> None:
        """Handle ``link``'s events (the headset, or the separate speaker of an omi pendant) until it ends."""
        s = self._s
        async for event in link.events():
            if isinstance(event, ButtonEvent):
                s.hub.publish(ButtonPressed(s.device, event.button.name.lower()))
                await self.pressed(event.button)
            elif isinstance(event, PlaybackStatus):
                s.player.playback(event, from_mic_link=link is s.link)
            elif isinstance(event, BatteryEvent):
                s.hub.publish(BatteryChanged(s.device, event.percent))
            elif isinstance(event, ConnectionEvent):
                s.hub.publish(Availability(s.device, event.connected, event.reason))
                await self._connection(link, event.connected)
            elif isinstance(event, LinkErrorEvent):
                s.hub.publish(ErrorEvent(s.device, event.message))

    async def _connection(self, link: HeadsetLink, connected: bool) -> None:
        """The headset went away or came back."""
        s = self._s
        s.announcements.link_changed()
        if link is not s.link:
            return
        if not connected and s.speaker is s.link:
            await s.barge_in("headset disconnected", clear=False)
            s.set_state(DeviceState.IDLE)
        elif connected and not self._link_was_connected:
            log.info("%s is back: %d announcement(s) waiting", s.device, len(s.announcements))
            s.led.show(s.state)  # a rebooted headset shows its LED afresh
            s.spawn(self._restore_volume(), "set-volume")
        self._link_was_connected = connected

    async def _restore_volume(self) -> None:
        with contextlib.suppress(LinkError):  # gone again already: the next return restores it
            await self._s.link.set_volume(self._s.volume)

    async def pressed(self, button: Button) -> None:
        """Buttons -> barge-in, listen, end of turn."""
        s = self._s
        busy = s.replying
        if s.link.info.profile is Profile.OMI:
            await self._omi(button, busy)
            return
        if busy and button in _BARGE_BUTTONS:
            await s.barge_in(f"button {button.name.lower()}")
            if s.mode != "tap_to_talk" or button is not Button.TAP:
                return
        if s.mode in ("tap_to_talk", "wake") and button is Button.TAP:
            await s.start_listening()
        elif s.mode == "push_to_talk" and button is Button.PRESS:
            await s.start_listening()
        elif s.mode == "push_to_talk" and button is Button.RELEASE:
            s.end_turn()

    async def _omi(self, button: Button, busy: bool) -> None:
        """Omi sends tap, double tap and long press (no press; a release after each): see gestures.py."""
        s = self._s
        listening = s.listening and s.mode != "hands_free"
        for act in omi_gesture(button, s.mode, busy=busy, listening=listening):
            if act is Act.BARGE_IN:
                await s.barge_in(f"button {button.name.lower()}")
            elif act is Act.LISTEN:
                await s.start_listening()
            elif act is Act.END_TURN:
                s.end_turn()
            elif act is Act.CLOSE:
                await s.stop_listening()
