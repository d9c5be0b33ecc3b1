"""What a headset notifies besides audio (control events, flow status, battery, the omi button), as link
events: sans-IO, the caller passes the arrival time and queues what comes back.

A notification this host cannot read is counted in ``malformed`` and dropped; it never ends the link.
"""

from __future__ import annotations

import logging

from companion.protocol import (
    ButtonReport,
    CodecsReport,
    ErrorReport,
    FlowStatus,
    ProtocolError,
    VolumeReport,
    decode_control,
    parse_battery,
    parse_omi_button,
)
from companion.protocol import PlaybackReport as PlaybackNotice

from .base import BatteryEvent, ButtonEvent, HeadsetInfo, LinkErrorEvent, LinkEvent, PlaybackStatus

log = logging.getLogger(__name__)


class HeadsetNotices:
    """Reads one headset's notifications; what they say about the headset goes into its ``info``."""

    def __init__(self, info: HeadsetInfo) -> None:
        self.info = info
        self.malformed = 0

    def control(self, data: bytes | bytearray, now: float) -> LinkEvent | None:
        """A CONTROL notification: a button, playback progress or an error becomes an event; codec and
        volume reports only update ``info``."""
        try:
            msg = decode_control(data)
        except ProtocolError as exc:
            self.malformed += 1
            log.debug("dropped malformed control message %s: %s", bytes(data).hex(), exc)
            return None
        match msg:
            case ButtonReport(button=button):
                return ButtonEvent(button, now)
            case PlaybackNotice(event=event):
                return PlaybackStatus(event, now)
            case ErrorReport(code=code, text=text):
                log.warning("headset %s reports error %d: %s", self.info.address, code, text)
                return LinkErrorEvent(f"headset error {code}: {text}", now)
            case CodecsReport(mic=mic, speaker=speaker):
                log.debug("headset %s uses mic %s, speaker %s", self.info.address, mic.name, speaker.name)
            case VolumeReport(percent=percent):
                self.info.extra["volume"] = percent
        return None

    def flow(self, data: bytes | bytearray) -> FlowStatus | None:
        """A FLOW notification: the speaker's credits and buffer (the buffer level goes into ``info``)."""
        try:
            status = FlowStatus.decode(data)
        except ProtocolError:
            self.malformed += 1
            return None
        self.info.extra["speaker_buffered_ms"] = status.buffered_ms
        self.info.extra["speaker_underruns"] = status.underruns
        return status

    def battery(self, data: bytes | bytearray, now: float) -> BatteryEvent | None:
        """A Battery Level notification."""
        try:
            level = parse_battery(data)
        except ProtocolError:
            self.malformed += 1
            return None
        return self.level(level, now)

    def level(self, percent: int, now: float) -> BatteryEvent:
        """A battery level from any source (GATT, BlueZ's Battery1)."""
        self.info.battery = percent
        return BatteryEvent(percent, now)

    def omi_button(self, data: bytes | bytearray, now: float) -> ButtonEvent | None:
        """An omi button notification (a gesture, never a press)."""
        try:
            return ButtonEvent(parse_omi_button(data), now)
        except ProtocolError:
            self.malformed += 1
            return None
