"""What only Omi firmware does: it raises the MTU itself, packs one frame per notification (or drops it),
reports button gestures with a release after each, powers off on a long press, and serves its settings,
time, diagnostics and storage characteristics.

Each behaviour follows a fact of the Omi firmware collected in :mod:`companion.protocol.omi`; the table in
docs/simulator.md maps them to the code here. Everything runs on the headset's 20 ms tick, on its clock.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from companion.protocol import Button, encode_time_sync
from companion.protocol.control import encode_omi_button
from companion.protocol.gatt import DEFAULT_MTU, MAX_MTU
from companion.protocol.omi import (
    BUTTON_POLL_S,
    GESTURES,
    IDENTITY,
    MTU_RECHECK_ATTEMPTS,
    MTU_RECHECK_S,
    MTU_REQUEST_DELAY_S,
    POWER_OFF_DELAY_S,
    OmiPacketizer,
    OmiVariant,
)

from ..gatt import AttError

if TYPE_CHECKING:
    from .core import Firmware

log = logging.getLogger("firmware_sim.firmware.omi")

#: Characteristics this module answers for.
KEYS = frozenset(
    {"dim_ratio", "mic_gain", "charging", "time_read", "diagnostics", "storage_data", "storage_read"}
)


class OmiFirmware:
    """The Omi-specific half of a :class:`~firmware_sim.firmware.core.Firmware`."""

    def __init__(self, fw: Firmware) -> None:
        self.fw = fw
        variant = fw.config.variant
        # one for the device's life: ids go on across connections
        self.packetizer = OmiPacketizer(
            split=isinstance(variant, OmiVariant) and IDENTITY[variant].splits_frames
        )
        self.dim_ratio = 100
        self.mic_gain = 5
        self.mtu_requests = 0
        self._mtu_due: float | None = None
        self._timeline: list[tuple[float, Callable[[], None]]] = []

    # -- connection --------------------------------------------------------------------------------
    def on_link_up(self, t: float) -> None:
        self.mtu_requests = 0
        self._mtu_due = t + MTU_REQUEST_DELAY_S if self.fw.config.requests_mtu else None

    def tick(self, t: float) -> None:
        """Run what is due: gesture releases, the power-off, MTU requests."""
        if self._timeline:
            due = [a for a in self._timeline if a[0] <= t + 1e-9]
            self._timeline = [a for a in self._timeline if a[0] > t + 1e-9]
            for _, action in due:
                action()
        self._mtu_tick(t)

    def _mtu_tick(self, t: float) -> None:
        link = self.fw.link
        if self._mtu_due is None or t < self._mtu_due - 1e-9 or link is None or not self.fw.powered:
            return
        if link.mtu > DEFAULT_MTU or self.mtu_requests > MTU_RECHECK_ATTEMPTS:
            self._mtu_due = None  # raised, or the host never goes above 23: give up, as the firmware does
            return
        self.mtu_requests += 1
        self.fw._log("mtu_request", self.mtu_requests)
        link.request_mtu(MAX_MTU)
        self._mtu_due = t + MTU_RECHECK_S

    # -- audio -------------------------------------------------------------------------------------
    def send(self, frames: list[bytes]) -> None:
        """The pusher: CV1 sends a frame that fits ``MTU - 6`` bytes in one notification, else loses it;
        the DevKit splits it into ``MTU - 6``-byte pieces."""
        link = self.fw.link
        assert link is not None
        handle = self.fw._mic_handle
        for frame in frames:
            if link.ring_frames >= link.config.tx_ring_frames:
                link.offer_audio("mic", handle, [frame])  # the ring is full: counted there, no id used
                continue
            packets = self.packetizer.packetize(frame, link.mtu)
            if not packets:
                self.fw._log("frame_too_big", len(frame))
                continue
            link.offer_audio("mic", handle, packets)

    # -- buttons and power -------------------------------------------------------------------------
    def gesture(self, button: Button) -> None:
        """A recognised gesture: its code now, a release one button poll later; a long press powers off."""
        if button not in GESTURES:
            raise ValueError(
                f"Omi firmware never sends {button.name}: its gestures are tap, double tap and long press"
            )
        t = self.fw.clock()
        self._button(button)
        self._timeline.append((t + BUTTON_POLL_S, lambda: self._button(Button.RELEASE)))
        if button is Button.LONG_PRESS:
            self.fw.haptics.append(100)
            self.fw._log("haptic", 100)
            self._timeline.append((t + POWER_OFF_DELAY_S, self._power_off))

    def _button(self, button: Button) -> None:
        self.fw._last_button = encode_omi_button(button)
        self.fw._notify("button", self.fw._last_button)

    def _power_off(self) -> None:
        log.info("%s: long press: powering off", self.fw.config.name)
        if self.fw.on_power_off is not None:
            self.fw.on_power_off()
        else:
            self.fw.power_off()

    # -- reads and writes --------------------------------------------------------------------------
    def read(self, key: str) -> bytes:
        fw = self.fw
        if key == "dim_ratio":
            return bytes((self.dim_ratio,))
        if key == "mic_gain":
            return bytes((self.mic_gain,))
        if key == "charging":
            return b"\x00"
        if key == "time_read":
            return encode_time_sync(int(fw.epoch_now() or 0))
        if key == "diagnostics":
            # The simulator's own layout (not the firmware's v1 snapshot): u32 LE packets sent, frames
            # dropped for not fitting the MTU, MTU requests made.
            pk = self.packetizer
            return struct.pack("<III", pk.sent, pk.dropped, self.mtu_requests)
        if key == "storage_read":
            stored = fw.storage.count if fw.storage is not None else 0
            return struct.pack("<II", stored, 0)
        raise AttError(AttError.READ_NOT_PERMITTED, f"{key} is not readable")

    def write(self, key: str, data: bytes) -> None:
        if key in ("dim_ratio", "mic_gain"):
            if len(data) != 1:
                raise AttError(AttError.INVALID_LENGTH, f"{key} takes one byte")
            if key == "dim_ratio":
                self.dim_ratio = min(data[0], 100)  # capped like the firmware
            else:
                self.mic_gain = min(data[0], 8)
            self.fw._log(key, data[0])
            return
        if key == "storage_data":
            raise AttError(0x0E, "offline storage sync is not simulated")
        raise AttError(AttError.WRITE_NOT_PERMITTED, f"{key} is not writable")
