"""A virtual headset: firmware + radio + clock + recording behind one small API for tests and demos."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion.protocol import ADVERTISED_SERVICE, Button, DeviceState, Profile

from .config import HeadsetConfig, RadioConfig
from .firmware import Firmware, LogEntry, Mic, Speaker, Storage, TickClock
from .radio import Radio, RadioTruth
from .recording import Recording
from .tasks import TaskOwner

if TYPE_CHECKING:
    from .world import SimWorld

log = logging.getLogger("firmware_sim")


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What a scanner hears from an advertising headset (JSON-friendly for the socket)."""

    address: str
    name: str
    service_uuids: list[str]
    rssi: int
    profile: str
    tx_power: int | None = None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "service_uuids": self.service_uuids,
            "rssi": self.rssi,
            "profile": self.profile,
            "tx_power": self.tx_power,
            "manufacturer_data": {str(k): v.hex() for k, v in self.manufacturer_data.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Advertisement:
        return cls(
            address=str(d["address"]),
            name=str(d["name"]),
            service_uuids=[str(u) for u in d["service_uuids"]],
            rssi=int(d["rssi"]),
            profile=str(d["profile"]),
            tx_power=d.get("tx_power"),
            manufacturer_data={int(k): bytes.fromhex(v) for k, v in d.get("manufacturer_data", {}).items()},
        )


class VirtualHeadset:
    """One simulated headset. Create it with :meth:`SimWorld.add_headset`; it runs until the world closes."""

    def __init__(self, world: SimWorld, config: HeadsetConfig, radio: RadioConfig, address: str) -> None:
        self.world = world
        self.config = config
        self.address = address
        self._owner = TaskOwner(f"headset {config.name}")
        self._clock = TickClock(self._tick)
        self.firmware = Firmware(config, self._clock.now)
        self.radio = Radio(radio, self.firmware, config.name or "headset", address, self._owner)
        self.firmware.on_battery_empty = self.power_off
        self.firmware.on_power_off = self.power_off
        self._recording: Recording | None = None
        self.last_recording: Recording | None = None
        self._owner.spawn(self._clock.run(), "clock")

    # -- identity and state ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name or ""

    @property
    def profile(self) -> Profile:
        return Profile(self.config.profile)

    @property
    def state(self) -> DeviceState:
        """What the state LED shows (set by the host with SET_STATE)."""
        return self.firmware.state

    @property
    def volume(self) -> int:
        return self.firmware.volume

    @property
    def battery(self) -> int:
        return self.firmware.battery

    @property
    def connected(self) -> bool:
        return self.radio.connected

    @property
    def advertising(self) -> bool:
        return self.radio.advertising

    @property
    def mtu(self) -> int:
        return self.radio.mtu

    @property
    def mic(self) -> Mic:
        return self.firmware.mic

    @property
    def speaker(self) -> Speaker:
        if self.firmware.speaker is None:
            raise AttributeError(f"{self.name} has no speaker")
        return self.firmware.speaker

    @property
    def storage(self) -> Storage | None:
        return self.firmware.storage

    @property
    def streaming(self) -> bool:
        """True while the mic is streaming to a host."""
        return self.firmware.streaming

    async def wait_streaming(self, streaming: bool = True) -> None:
        """Wait until the mic is (or, with False, is no longer) streaming to a host."""
        while self.firmware.streaming != streaming:
            await self.firmware.streaming_changed.wait()

    @property
    def truth(self) -> RadioTruth:
        return self.radio.truth

    @property
    def log(self) -> list[LogEntry]:
        return self.firmware.log

    @property
    def haptics(self) -> list[int]:
        return self.firmware.haptics

    def clock(self) -> float:
        """The headset's sample clock in seconds (the recording's time base)."""
        return self._clock.now()

    def clock_to_loop_time(self, t: float) -> float:
        """Event-loop time at which the headset clock read ``t``."""
        return self._clock.to_loop_time(t)

    def epoch_time(self) -> float | None:
        """Wall-clock seconds as the host set them with TIME_SYNC, advanced by the headset clock."""
        return self.firmware.epoch_now()

    # -- actions -----------------------------------------------------------------------------------
    def press(self, button: Button = Button.TAP) -> None:
        """A button gesture: a CONTROL BUTTON event. Omi: the 8-byte button notification, a RELEASE 40 ms
        later, and (LONG_PRESS, a 3 s hold) the device powers off 1.3 s later; PRESS raises ValueError."""
        self.firmware.press(button)

    def power_off(self) -> None:
        log.info("%s: power off", self.name)
        self.radio.power_off()
        self.firmware.power_off()

    def power_on(self) -> None:
        log.info("%s: power on", self.name)
        self.firmware.power_on()
        self.radio.power_on()

    async def power_cycle(self, off_s: float = 1.0) -> None:
        """Drop the link, stay off (not advertising) for ``off_s`` seconds, then boot and advertise again."""
        if off_s < 0:
            raise ValueError(f"off_s must be >= 0, got {off_s}")
        self.power_off()
        try:
            await asyncio.sleep(off_s)
        finally:
            if not self._owner.closed:
                self.power_on()

    def go_out_of_range(self) -> None:
        """Walk away: nothing gets through; the link drops after the supervision timeout."""
        log.info("%s: out of range", self.name)
        self.radio.go_out_of_range()

    def come_back(self) -> None:
        log.info("%s: back in range", self.name)
        self.radio.come_back()

    def fault_reads(self, key: str, fault: str, times: int = 1) -> None:
        """Answer the next ``times`` reads of characteristic ``key`` ("capabilities", "flow", "codec") with a
        damaged record: "unknown_codec", "truncated" or "zero_capacity" (see firmware_sim.faults)."""
        self.firmware.read_faults.add(key, fault, times)

    def disconnect(self, reason: str = "headset disconnected") -> None:
        """The headset ends the connection itself."""
        self.radio.disconnect(reason)

    # -- recording ---------------------------------------------------------------------------------
    def start_recording(self, path: str | Path | None = None) -> Recording:
        """Record the conversation from the next tick (stereo WAV at ``path``; in memory either way)."""
        self.stop_recording()
        acoustics = self.firmware.acoustics
        self._recording = Recording(path, self.clock(), acoustics if acoustics.active else None)
        return self._recording

    def stop_recording(self) -> Recording | None:
        rec, self._recording = self._recording, None
        if rec is not None:
            rec.close()
            self.last_recording = rec
        return rec

    @property
    def recording(self) -> Recording | None:
        """The recording in progress, else the last one."""
        return self._recording or self.last_recording

    # -- plumbing ----------------------------------------------------------------------------------
    def _tick(self) -> None:
        voice, played = self.firmware.tick()
        if self._recording is not None:
            if self._recording.seconds == 0:
                self._recording.t0 = self.clock()
            self._recording.write(voice, played, self.firmware.last_parts)

    def advertisement(self) -> Advertisement | None:
        if not self.radio.advertising:
            return None
        return Advertisement(
            address=self.address,
            name=self.name,
            service_uuids=[ADVERTISED_SERVICE[self.profile]],
            rssi=self.radio.config.rssi,
            profile=self.profile.value,
        )

    async def aclose(self) -> None:
        self.radio.close()
        self.mic.close()
        self.stop_recording()
        await self._owner.aclose()

    def __repr__(self) -> str:
        return f"<VirtualHeadset {self.name} {self.address} {self.profile.value}>"
