"""What Omi firmware does on the wire, in one place, for the simulator to model and the host to expect.

Facts from the Omi firmware (BasedHardware/omi, ``omi/firmware/omi/src/lib/core``: transport.c, button.c,
config.h) for the consumer device (CV1) and the DevKit:

* The device asks for the ATT MTU exchange itself about 1.3 s after connecting (300 ms, then 1000 ms
  before ``update_mtu``) and checks again every 800 ms, up to six times, while the MTU is still 23.
* The audio pusher sends nothing below MTU 100 (``MINIMAL_PACKET_SIZE``).
* Each codec frame goes out as ``[packet id u16 LE][index u8] + frame``. The pusher sizes a notification as
  ``MTU - 3`` codec bytes plus the 3-byte header, which is 3 bytes over what ATT lets a notification carry
  (``MTU - 3`` in all), so a frame only gets through when it fits whole: ``len(frame) <= MTU - 6``. A
  larger frame fails to send and is dropped, and the packet id it took is gone: the host sees a gap.
  The id counter is never reset, so ids continue across reconnects.
* Opus on CV1: codec 21, 20 ms frames, CELT restricted low delay, 32 kbit/s unconstrained VBR,
  complexity 3, no FEC, at most 160 bytes a frame; every frame fits from MTU 166. The DevKit sends
  codec 20 (10 ms frames), and its pusher was fixed to leave room for the ATT header: it splits a frame
  into notifications of ``MTU - 6`` codec bytes, one packet id each, the index counting them from 0.
* Buttons: tap (1), double tap (2) and long press (3), each followed by a release (5) one 40 ms button
  poll later; never press (4). Holding 3 s powers the device off.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

from .codec_ids import CodecId
from .gatt import ATT_HEADER
from .messages import Button

#: Omi's audio header: packet id u16 LE + index u8.
HEADER = 3
#: The pusher sends nothing below this MTU (config.h MINIMAL_PACKET_SIZE).
MIN_STREAM_MTU = 100
#: The largest Opus frame the firmware's encoder may produce (config.h CODEC_OUTPUT_MAX_BYTES).
MAX_FRAME_BYTES = 160
#: The smallest MTU at which every frame fits one notification.
MTU_FOR_EVERY_FRAME = MAX_FRAME_BYTES + HEADER + ATT_HEADER
#: transport.c: 300 ms before the PHY request, 1000 ms more before the MTU exchange.
MTU_REQUEST_DELAY_S = 1.3
MTU_RECHECK_S = 0.8
MTU_RECHECK_ATTEMPTS = 6
#: button.c polls the button every 40 ms; the release follows a gesture one poll later.
BUTTON_POLL_S = 0.04
#: Holding the button this long powers the device off.
POWER_OFF_HOLD_S = 3.0
#: turnoff_all(): 100 ms haptic, 300 ms, then 1000 ms before the radio goes off.
POWER_OFF_DELAY_S = 1.3
#: The gestures the firmware sends; PRESS (4) is defined but never sent.
GESTURES = (Button.TAP, Button.DOUBLE_TAP, Button.LONG_PRESS)


class OmiVariant(StrEnum):
    CV1 = "cv1"
    DEVKIT = "devkit"


@dataclass(frozen=True, slots=True)
class OmiIdentity:
    """What the Device Information service reads, and the codec the build sends."""

    manufacturer: str
    model: str
    firmware: tuple[int, int, int]
    hardware: str
    codec: CodecId
    splits_frames: bool  # the pusher splits frames that do not fit (DevKit) instead of losing them (CV1)


IDENTITY: dict[OmiVariant, OmiIdentity] = {
    OmiVariant.CV1: OmiIdentity(
        "Based Hardware", "Omi CV 1", (3, 0, 21), "5.0", CodecId.OPUS_16K_20MS, False
    ),
    OmiVariant.DEVKIT: OmiIdentity(
        "Based Hardware", "Omi DevKit 2", (2, 0, 10), "2.0", CodecId.OPUS_16K_10MS, True
    ),
}


def frame_fits(frame_bytes: int, mtu: int) -> bool:
    """Whether the firmware gets a frame of this size through at this MTU (one notification, whole)."""
    return frame_bytes + HEADER <= mtu - ATT_HEADER


class OmiPacketizer:
    """Frames -> notifications as the Omi pusher makes them. CV1: one per frame, or none (the id still
    used); ``split=True`` (DevKit): as many ``MTU - 6``-byte pieces as the frame needs.

    ``dropped`` counts frames that did not fit. Keep one instance for the life of the device: ids go on
    across connections.
    """

    def __init__(self, first_id: int = 0, *, split: bool = False) -> None:
        self.next_id = first_id & 0xFFFF
        self.split = split
        self.dropped = 0
        self.sent = 0

    def packetize(self, frame: bytes, mtu: int) -> list[bytes]:
        room = mtu - ATT_HEADER - HEADER
        if self.split and room > 0:
            pieces = [frame[i : i + room] for i in range(0, len(frame), room)]
        else:
            pieces = [frame]
        out = []
        for index, piece in enumerate(pieces):
            packet_id = self.next_id
            self.next_id = (self.next_id + 1) & 0xFFFF
            if not frame_fits(len(piece), mtu):
                self.dropped += 1
                return []
            out.append(struct.pack("<HB", packet_id, index & 0xFF) + piece)
        self.sent += len(out)
        return out
