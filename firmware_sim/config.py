"""What a virtual headset is (:class:`HeadsetConfig`) and how its radio link behaves (:class:`RadioConfig`).

Both are frozen dataclasses validated on construction, so a bad value fails where it is written, with a
message that names the field and the allowed range. Fields left at ``None`` take the profile's default
(an Omi pendant differs from a `companion` headset in name, codec settings, speaker and battery cadence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, SupportsInt

from companion.protocol import ATT_HEADER, CodecId, Profile, codec_spec
from companion.protocol.control import OMI_CODECS
from companion.protocol.omi import IDENTITY, MIN_STREAM_MTU, OmiIdentity, OmiVariant

SAMPLE_RATE = 16000
TICK_MS = 20
TICK_SAMPLES = SAMPLE_RATE * TICK_MS // 1000
MIN_MTU = 23
MAX_MTU = 517


class ConfigError(ValueError):
    """A simulator setting is out of range or inconsistent; the message says which and why."""


@dataclass(frozen=True, slots=True)
class OpusSettings:
    """How the headset's Opus encoder runs: ``voip`` (SILK, in-band FEC) or ``lowdelay`` (CELT, Omi)."""

    application: str = "voip"
    bitrate: int = 24000
    fec: bool = True
    complexity: int | None = None  # None: libopus's default
    constrained_vbr: bool | None = None
    max_bytes: int | None = None  # the largest frame the encoder may produce

    def __post_init__(self) -> None:
        if self.application not in ("voip", "lowdelay"):
            raise ConfigError(f"opus application {self.application!r}: choose 'voip' or 'lowdelay'")
        if not 6000 <= self.bitrate <= 128000:
            raise ConfigError(f"opus bitrate {self.bitrate}: must be 6000-128000 bit/s")
        if self.complexity is not None and self.complexity not in range(11):
            raise ConfigError(f"opus complexity {self.complexity}: must be 0-10")
        if self.max_bytes is not None and self.max_bytes not in range(20, 1276):
            raise ConfigError(f"opus max_bytes {self.max_bytes}: must be 20-1275")

    def encoder_options(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "bitrate": self.bitrate,
            "fec": self.fec,
            "complexity": self.complexity,
            "constrained_vbr": self.constrained_vbr,
            "max_bytes": self.max_bytes,
        }


COMPANION_OPUS = OpusSettings("voip", 24000, True)
#: Omi CV1 (config.h): CELT restricted low delay, 32 kbit/s unconstrained VBR, complexity 3, no FEC, <= 160 B
OMI_OPUS = OpusSettings("lowdelay", 32000, False, complexity=3, constrained_vbr=False, max_bytes=160)

COMPANION_MIC_CODECS: tuple[CodecId, ...] = (
    CodecId.OPUS_16K_20MS,
    CodecId.OPUS_16K_10MS,
    CodecId.OPUS_16K_60MS,
    CodecId.PCM16_16K,
    CodecId.MULAW_16K,
    CodecId.PCM16_8K,
    CodecId.MULAW_8K,
)
COMPANION_SPEAKER_CODECS: tuple[CodecId, ...] = (
    CodecId.PCM16_16K,
    CodecId.OPUS_16K_20MS,
    CodecId.OPUS_16K_10MS,
    CodecId.OPUS_16K_60MS,
    CodecId.MULAW_16K,
    CodecId.PCM16_8K,
    CodecId.MULAW_8K,
)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} = {value} is outside {lo}..{hi}")


def _codec(name: str, value: object) -> CodecId:
    if isinstance(value, str):
        from companion.protocol import codec_by_name

        try:
            return codec_by_name(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    if not isinstance(value, SupportsInt):
        raise ConfigError(f"{name}: {value!r} is not a codec name or number")
    try:
        return codec_spec(int(value)).id
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class HeadsetConfig:
    """One virtual headset: profile, identity, codecs, speaker buffer, features, battery and acoustics.

    ``None`` means the profile default (see :meth:`resolved`). The speaker codec ``None`` means "auto": the
    headset prefers PCM16 when the link can carry it in real time, else Opus 20 ms.
    """

    profile: Profile | str = Profile.COMPANION
    variant: OmiVariant | str | None = None  # omi: "cv1" (the consumer Omi, default) or "devkit"
    name: str | None = None
    address: str | None = None
    mic_codec: CodecId | str | None = None
    mic_opus: OpusSettings | None = None
    mic_codecs: tuple[CodecId, ...] | None = None
    speaker_codec: CodecId | str | None = None
    speaker_codecs: tuple[CodecId, ...] | None = None
    speaker_buffer_ms: int = 400
    playout_start_ms: int = 40
    drain_timeout_ms: int = 300
    volume: int = 80
    has_speaker: bool | None = None
    has_aec: bool = False
    has_button: bool = True
    has_battery: bool = True
    has_haptic: bool | None = None
    has_storage: bool = False
    storage_frames: int = 3000
    battery_percent: float = 100.0
    battery_drain_per_min: float = 0.1
    battery_notify_s: float | None = None
    firmware_version: tuple[int, int, int] | None = None
    manufacturer: str | None = None
    model: str | None = None
    hardware_revision: str | None = None
    serial: str | None = None
    requests_mtu: bool | None = None  # the device asks for the MTU exchange itself (omi: 1.3 s after connect)
    echo_gain: float = 0.0
    echo_db: float | None = None
    echo_delay_ms: float = 4.0
    echo_rt60_ms: float = 150.0
    bystanders: tuple[str, ...] = ()
    bystander_db: float = 0.0
    bystander_gap_s: tuple[float, float] = (1.0, 4.0)
    bystander_loop: bool = True  # False: each bystander clip plays once
    noise_snr_db: float | None = None
    mic_noise_rms: float = 0.0
    min_stream_mtu: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            set_(self, "profile", Profile(self.profile))
        except ValueError:
            raise ConfigError(f"profile {self.profile!r}: choose 'companion' or 'omi'") from None
        omi = self.profile is Profile.OMI
        ident: OmiIdentity | None = None
        if omi:
            try:
                variant = OmiVariant(self.variant or OmiVariant.CV1)
            except ValueError:
                raise ConfigError(f"variant {self.variant!r}: choose 'cv1' or 'devkit'") from None
            set_(self, "variant", variant)
            ident = IDENTITY[variant]
        elif self.variant is not None:
            raise ConfigError(f"variant {self.variant!r}: only the omi profile has variants")
        if self.name is None:
            set_(self, "name", "Omi" if omi else "Companion Sim")
        if not self.name or len(self.name.encode()) > 29:
            raise ConfigError(f"name {self.name!r}: must be 1-29 bytes (it must fit an advertisement)")
        if self.address is not None and not _is_address(self.address):
            raise ConfigError(f"address {self.address!r}: expected six hex bytes like 'C0:11:22:33:44:55'")
        if self.address is not None:
            set_(self, "address", self.address.upper())
        mic_codec = _codec(
            "mic_codec", self.mic_codec if self.mic_codec is not None else _default_codec(ident)
        )
        set_(self, "mic_codec", mic_codec)
        if self.mic_opus is None:
            set_(self, "mic_opus", OMI_OPUS if omi else COMPANION_OPUS)
        given_mic = (
            self.mic_codecs if self.mic_codecs is not None else (mic_codec,) if omi else COMPANION_MIC_CODECS
        )
        mic_codecs = tuple(_codec("mic_codecs", c) for c in given_mic)
        set_(self, "mic_codecs", mic_codecs)
        if mic_codec not in mic_codecs:
            raise ConfigError(f"mic_codec {mic_codec!r} is not in mic_codecs {mic_codecs}")
        if omi and mic_codec not in OMI_CODECS:
            raise ConfigError(f"mic_codec {mic_codec.name} is not a codec omi devices send")
        if self.has_speaker is None:
            set_(self, "has_speaker", not omi)
        if omi and self.has_speaker:
            raise ConfigError("the omi profile has no speech speaker (omi speakers play chimes only)")
        if self.has_haptic is None:
            set_(self, "has_haptic", omi)
        given_spk = self.speaker_codecs
        if given_spk is None:
            given_spk = COMPANION_SPEAKER_CODECS if self.has_speaker else ()
        speaker_codecs = tuple(_codec("speaker_codecs", c) for c in given_spk)
        set_(self, "speaker_codecs", speaker_codecs)
        if self.speaker_codec is not None:
            speaker_codec = _codec("speaker_codec", self.speaker_codec)
            set_(self, "speaker_codec", speaker_codec)
            if speaker_codec not in speaker_codecs:
                raise ConfigError(f"speaker_codec {speaker_codec!r} is not in {speaker_codecs}")
        if self.has_speaker and not speaker_codecs:
            raise ConfigError("a headset with a speaker needs at least one speaker codec")
        _check_range("speaker_buffer_ms", self.speaker_buffer_ms, 40, 10000)
        _check_range("playout_start_ms", self.playout_start_ms, 0, self.speaker_buffer_ms)
        _check_range("drain_timeout_ms", self.drain_timeout_ms, 20, 10000)
        _check_range("volume", self.volume, 0, 100)
        _check_range("storage_frames", self.storage_frames, 0, 10_000_000)
        _check_range("battery_percent", self.battery_percent, 0, 100)
        _check_range("battery_drain_per_min", self.battery_drain_per_min, 0, 6000)
        battery_notify_s = self.battery_notify_s
        if battery_notify_s is None:
            battery_notify_s = 5.0 if omi else 0.0
            set_(self, "battery_notify_s", battery_notify_s)
        _check_range("battery_notify_s", battery_notify_s, 0, 3600)
        firmware = self.firmware_version
        if firmware is None:
            firmware = ident.firmware if ident else (1, 0, 0)
            set_(self, "firmware_version", firmware)
        if len(firmware) != 3 or not all(0 <= int(v) <= 255 for v in firmware):
            raise ConfigError(f"firmware_version {firmware}: three numbers 0-255")
        if self.model is None:
            set_(self, "model", ident.model if ident else "companion-sim headset")
        if self.manufacturer is None:
            set_(self, "manufacturer", ident.manufacturer if ident else "companion-sim")
        if self.hardware_revision is None:
            set_(self, "hardware_revision", ident.hardware if ident else "1.0")
        if self.requests_mtu is None:
            set_(self, "requests_mtu", omi)
        _check_range("echo_gain", self.echo_gain, 0.0, 4.0)
        _check_range("mic_noise_rms", self.mic_noise_rms, 0.0, 10000.0)
        if self.echo_db is not None:
            _check_range("echo_db", self.echo_db, -100.0, 20.0)
        _check_range("echo_delay_ms", self.echo_delay_ms, 0.0, 500.0)
        _check_range("echo_rt60_ms", self.echo_rt60_ms, 1.0, 2000.0)
        set_(self, "bystanders", tuple(str(b) for b in self.bystanders))
        for b in self.bystanders:
            if not Path(b).is_file():
                raise ConfigError(f"bystanders: WAV file {b!r} not found")
        _check_range("bystander_db", self.bystander_db, -60.0, 30.0)
        lo, hi = self.bystander_gap_s
        _check_range("bystander_gap_s", lo, 0.0, 600.0)
        _check_range("bystander_gap_s", hi, lo, 600.0)
        if self.noise_snr_db is not None:
            _check_range("noise_snr_db", self.noise_snr_db, -20.0, 100.0)
        min_stream_mtu = self.min_stream_mtu
        if min_stream_mtu is None:
            min_stream_mtu = MIN_STREAM_MTU if omi else MIN_MTU
            set_(self, "min_stream_mtu", min_stream_mtu)
        _check_range("min_stream_mtu", min_stream_mtu, MIN_MTU, MAX_MTU)

    def with_(self, **changes: Any) -> HeadsetConfig:
        """A copy with some fields changed (and re-validated). Changing the profile also resets the
        fields that default per profile (name, codecs, speaker, haptic, battery cadence ...) unless given."""
        if "profile" in changes and Profile(changes["profile"]) is not self.profile:
            for name in _PROFILE_DEFAULTS:
                changes.setdefault(name, None)
        if "variant" in changes and changes["variant"] != self.variant:
            for name in _VARIANT_DEFAULTS:
                changes.setdefault(name, None)
        return replace(self, **changes)

    @property
    def speaker_capacity_frames(self) -> int:
        """The speaker buffer in 20 ms frames: what flow-control credits are counted in."""
        return max(1, self.speaker_buffer_ms // TICK_MS)


_VARIANT_DEFAULTS = (
    "mic_codec",
    "mic_codecs",
    "model",
    "manufacturer",
    "firmware_version",
    "hardware_revision",
)
_PROFILE_DEFAULTS = (
    "variant",
    "manufacturer",
    "hardware_revision",
    "requests_mtu",
    "name",
    "mic_opus",
    "mic_codecs",
    "has_speaker",
    "has_haptic",
    "speaker_codecs",
    "battery_notify_s",
    "firmware_version",
    "model",
    "min_stream_mtu",
)


@dataclass(frozen=True)
class RadioConfig:
    """The simulated BLE link between one headset and one central.

    Audio impairments (``loss``, ``duplicate``, ``reorder``) apply to microphone notifications;
    ``downlink_loss`` applies to speaker writes. Control, flow, battery and button traffic is reliable and
    in order, as the link layer makes it on a real radio.
    """

    max_mtu: int = 247
    auto_mtu: bool = False
    interval_ms: float = 15.0
    packets_per_event: int = 6
    latency_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    downlink_loss: float = 0.0
    seed: int | None = None
    tx_ring_frames: int = 64
    host_queue_packets: int = 16
    rssi: int = -60
    in_range: bool = True
    supervision_timeout_ms: float = 1000.0
    advertising_interval_ms: float = 100.0
    connect_delay_ms: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_mtu, bool) or not isinstance(self.max_mtu, int):
            raise ConfigError(f"max_mtu must be an integer, got {self.max_mtu!r}")
        _check_range("max_mtu", self.max_mtu, MIN_MTU, MAX_MTU)
        _check_range("interval_ms", self.interval_ms, 7.5, 4000)
        _check_range("packets_per_event", self.packets_per_event, 1, 64)
        _check_range("latency_ms", self.latency_ms, 0, 10000)
        for name in ("loss", "duplicate", "reorder", "downlink_loss"):
            _check_range(name, getattr(self, name), 0.0, 0.9)
        _check_range("tx_ring_frames", self.tx_ring_frames, 1, 100000)
        _check_range("host_queue_packets", self.host_queue_packets, 1, 100000)
        _check_range("rssi", self.rssi, -127, 20)
        _check_range("supervision_timeout_ms", self.supervision_timeout_ms, 100, 32000)
        _check_range("advertising_interval_ms", self.advertising_interval_ms, 20, 10240)
        connect_delay_ms = self.connect_delay_ms
        if connect_delay_ms is None:
            connect_delay_ms = 2 * self.interval_ms
            object.__setattr__(self, "connect_delay_ms", connect_delay_ms)
        _check_range("connect_delay_ms", connect_delay_ms, 0, 60000)

    def with_(self, **changes: Any) -> RadioConfig:
        if "interval_ms" in changes:
            changes.setdefault("connect_delay_ms", None)  # recomputed from the new interval
        return replace(self, **changes)

    def payload_rate(self, mtu: int) -> float:
        """ATT payload bytes per second one direction can carry at this MTU."""
        return self.packets_per_event * (1000.0 / self.interval_ms) * (mtu - ATT_HEADER)


def _default_codec(ident: OmiIdentity | None) -> CodecId:
    return ident.codec if ident is not None else CodecId.OPUS_16K_20MS


def _is_address(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    )
