"""What a virtual headset is (:class:`HeadsetConfig`) and how its radio link behaves (:class:`RadioConfig`).

Both are frozen pydantic models validated on construction, so a bad value fails where it is written, with a
:class:`ConfigError` that names the field and the allowed range. Fields left at ``None`` take the profile's
default (an Omi pendant differs from a `companion` headset in name, codec settings, speaker and battery
cadence). Each field's description and flag (declared with :func:`~firmware_sim.config_model.setting`)
are what ``python -m firmware_sim`` builds its options from (:mod:`firmware_sim.options`).

Copies go through :meth:`SimModel.replace`, which validates again (pydantic's ``model_copy`` would not).
Nothing here runs per tick: the models are built once and read by attribute.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Self, cast

from pydantic import BeforeValidator, Field, model_validator

from companion.protocol import CodecId, Profile
from companion.protocol.control import OMI_CODECS
from companion.protocol.omi import IDENTITY, MIN_STREAM_MTU, OmiIdentity, OmiVariant

from .config_model import Codec, Codecs, ConfigError, Float, Int, SimModel, setting, to_strs
from .radio_config import MAX_MTU, MIN_MTU, RadioConfig

__all__ = ["ConfigError", "HeadsetConfig", "OpusSettings", "RadioConfig"]  # and the constants below

SAMPLE_RATE = 16000
TICK_MS = 20
TICK_SAMPLES = SAMPLE_RATE * TICK_MS // 1000


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} = {value} is outside {lo}..{hi}")


class OpusSettings(SimModel):
    """How the headset's Opus encoder runs: ``voip`` (SILK, in-band FEC) or ``lowdelay`` (CELT, Omi)."""

    application: Literal["voip", "lowdelay"] = Field("voip", description="SILK with in-band FEC, or CELT")
    bitrate: Int = Field(24000, ge=6000, le=128000, description="bit/s")
    fec: bool = True
    complexity: Int | None = Field(None, ge=0, le=10, description="None: libopus's default")
    constrained_vbr: bool | None = None
    max_bytes: Int | None = Field(
        None, ge=20, le=1275, description="the largest frame the encoder may produce"
    )

    def encoder_options(self) -> dict[str, Any]:
        return self.fields()


COMPANION_OPUS = OpusSettings(application="voip", bitrate=24000, fec=True)
#: Omi CV1 (config.h): CELT restricted low delay, 32 kbit/s unconstrained VBR, complexity 3, no FEC, <= 160 B
OMI_OPUS = OpusSettings(
    application="lowdelay", bitrate=32000, fec=False, complexity=3, constrained_vbr=False, max_bytes=160
)

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


class HeadsetConfig(SimModel):
    """One virtual headset: profile, identity, codecs, speaker buffer, features, battery and acoustics.

    ``None`` means the profile default (filled in on validation). The speaker codec ``None`` means "auto":
    the headset prefers PCM16 when the link can carry it in real time, else Opus 20 ms.
    """

    profile: Profile | str = setting(
        Profile.COMPANION,
        "GATT profile: our open 'companion' protocol (audio both ways) or Omi/Friend compatibility "
        "(mic only)",
        "--profile",
    )
    variant: OmiVariant | str | None = setting(
        None, "omi build: cv1 (the consumer Omi, Opus 20 ms, default) or devkit (Opus 10 ms)", "--variant"
    )
    name: str | None = setting(
        None,
        "advertised name, 1-29 bytes; with --count > 1 each gets NAME-1, NAME-2 ... "
        "(default 'Companion Sim', or 'Omi' for the omi profile)",
        "--name",
        "PREFIX",
    )
    address: str | None = setting(None, "six hex bytes; each headset gets its own from the world", None)
    mic_codec: Codec = setting(
        None,
        "mic codec: opus (Opus 20 ms), opus10, opus60, pcm16 or mulaw, or a wire codec id (default opus; "
        "the host may change it with SET_CODECS on the companion profile)",
        "--codec",
        "CODEC",
    )
    mic_opus: OpusSettings | None = setting(None, "the mic's Opus encoder (per profile)", None)
    mic_codecs: Codecs = setting(
        None, "the mic codecs the headset offers (default: per profile)", "--mic-codecs", "CODEC"
    )
    speaker_codec: Codec = setting(
        None,
        "speaker codec (default: auto, PCM16 when the link carries it, else Opus 20 ms)",
        "--speaker-codec",
        "CODEC",
    )
    speaker_codecs: Codecs = setting(
        None,
        "the speaker codecs the headset accepts (default: all, none without a speaker)",
        "--speaker-codecs",
        "CODEC",
    )
    speaker_buffer_ms: Int = setting(
        400,
        "speaker playout buffer, which sets the flow-control credits",
        "--speaker-buffer-ms",
        "MS",
        ge=40,
        le=10000,
    )
    playout_start_ms: Int = setting(
        40,
        "speaker audio buffered before playout starts (at most the buffer)",
        "--playout-start-ms",
        "MS",
        ge=0,
    )
    drain_timeout_ms: Int = setting(
        300,
        "silence after which a reply counts as played out (drained)",
        "--drain-timeout-ms",
        "MS",
        ge=20,
        le=10000,
    )
    volume: Int = setting(80, "speaker volume", "--volume", "PCT", ge=0, le=100)
    has_speaker: bool | None = setting(None, "a speech speaker (default: companion yes, omi no)", "--speaker")
    has_aec: bool = setting(False, "the headset cancels its own speaker echo", "--aec")
    has_button: bool = setting(True, "a button (tap, double tap, hold)", "--button")
    has_battery: bool = setting(True, "the battery service", "--battery-service")
    has_haptic: bool | None = setting(None, "a haptic motor (default: omi yes, companion no)", "--haptic")
    has_storage: bool = setting(False, "omi offline storage of audio while no host is connected", "--storage")
    storage_frames: Int = setting(
        3000, "offline storage capacity in frames", "--storage-frames", "N", ge=0, le=10_000_000
    )
    battery_percent: Float = setting(100.0, "battery at start", "--battery", "PCT", ge=0, le=100)
    battery_drain_per_min: Float = setting(
        0.1, "battery percent used per minute", "--battery-drain", "PCT", ge=0, le=6000
    )
    battery_notify_s: Float | None = setting(
        None,
        "seconds between battery notifications (0: on change; default omi 5, companion 0)",
        "--battery-notify-s",
        "S",
        ge=0,
        le=3600,
    )
    firmware_version: tuple[Int, Int, Int] | None = setting(
        None, "firmware version, three numbers 0-255 (default: per profile)", "--firmware-version", "N"
    )
    manufacturer: str | None = setting(None, "device information: manufacturer", "--manufacturer", "TEXT")
    model: str | None = setting(None, "device information: model", "--model", "TEXT")
    hardware_revision: str | None = setting(
        None, "device information: hardware revision", "--hardware-revision", "TEXT"
    )
    serial: str | None = setting(None, "device information: serial (default: from the address)", None)
    requests_mtu: bool | None = setting(
        None,
        "the headset asks for the MTU exchange itself (default: omi does, 1.3 s after connecting)",
        "--device-mtu",
    )
    echo_gain: Float = setting(
        0.0, "how much speaker output leaks into the mic without --aec", "--echo-gain", "G", ge=0.0, le=4.0
    )
    echo_db: Float | None = setting(
        None,
        "the headset's own speaker in its mic, at DB relative to the playback (e.g. -6: an echo return loss "
        "of 6 dB, a loud open-ear leak), through a short synthetic impulse response (off by default)",
        "--echo-db",
        "DB",
        ge=-100.0,
        le=20.0,
    )
    echo_delay_ms: Float = setting(
        4.0, "delay of the --echo-db path", "--echo-delay-ms", "MS", ge=0.0, le=500.0
    )
    echo_rt60_ms: Float = setting(
        150.0, "reverberation time of the --echo-db path", "--echo-rt60-ms", "MS", ge=1.0, le=2000.0
    )
    bystanders: Annotated[tuple[str, ...], BeforeValidator(to_strs)] = setting(
        (),
        "another person talking near the wearer (repeatable): the WAV files play with gaps, "
        "between and over the wearer's turns",
        "--bystander",
        "WAV",
    )
    bystander_db: Float = setting(
        0.0, "bystander speech level relative to the wearer's", "--bystander-db", "DB", ge=-60.0, le=30.0
    )
    bystander_gap_s: tuple[Float, Float] = setting(
        (1.0, 4.0), "the shortest and longest gap between bystander clips, 0-600 s", "--bystander-gap-s", "S"
    )
    bystander_loop: bool = setting(
        True, "bystander clips play in a loop (else each once)", "--bystander-loop"
    )
    noise_snr_db: Float | None = setting(
        None,
        "background noise (Gaussian) this many dB below the wearer's speech level (off by default)",
        "--noise-snr",
        "DB",
        ge=-20.0,
        le=100.0,
    )
    mic_noise_rms: Float = setting(
        0.0,
        "mic self-noise, RMS in int16 units (0: digital silence between words)",
        "--noise",
        "RMS",
        ge=0.0,
        le=10000.0,
    )
    min_stream_mtu: Int | None = setting(
        None,
        "the smallest MTU the headset streams at (default: omi 100, companion 23)",
        "--min-stream-mtu",
        "N",
        ge=MIN_MTU,
        le=MAX_MTU,
    )
    seed: Int | None = setting(
        None, "random seed for the radio and mic noise (reproducible runs)", "--seed", "N"
    )

    @model_validator(mode="after")
    def _profile_defaults(self) -> Self:
        """Fill the profile's defaults in and check what spans fields (codec lists, playout, gaps)."""
        set_ = self._resolve
        try:
            profile = Profile(self.profile)
        except ValueError:
            raise ConfigError(f"profile {self.profile!r}: choose 'companion' or 'omi'") from None
        set_("profile", profile)
        omi = profile is Profile.OMI
        ident: OmiIdentity | None = None
        if omi:
            try:
                variant = OmiVariant(self.variant or OmiVariant.CV1)
            except ValueError:
                raise ConfigError(f"variant {self.variant!r}: choose 'cv1' or 'devkit'") from None
            set_("variant", variant)
            ident = IDENTITY[variant]
        elif self.variant is not None:
            raise ConfigError(f"variant {self.variant!r}: only the omi profile has variants")
        if self.name is None:
            set_("name", "Omi" if omi else "Companion Sim")
        if not self.name or len(self.name.encode()) > 29:
            raise ConfigError(f"name {self.name!r}: must be 1-29 bytes (it must fit an advertisement)")
        if self.address is not None:
            if not _is_address(self.address):
                raise ConfigError(
                    f"address {self.address!r}: expected six hex bytes like 'C0:11:22:33:44:55'"
                )
            set_("address", self.address.upper())
        # the codec fields' validator made any given name or number a CodecId
        mic_codec = cast(CodecId, self.mic_codec) if self.mic_codec is not None else _default_codec(ident)
        set_("mic_codec", mic_codec)
        if self.mic_opus is None:
            set_("mic_opus", OMI_OPUS if omi else COMPANION_OPUS)
        mic_codecs = self.mic_codecs
        if mic_codecs is None:
            mic_codecs = (mic_codec,) if omi else COMPANION_MIC_CODECS
            set_("mic_codecs", mic_codecs)
        if mic_codec not in mic_codecs:
            raise ConfigError(f"mic_codec {mic_codec!r} is not in mic_codecs {mic_codecs}")
        if omi and mic_codec not in OMI_CODECS:
            raise ConfigError(f"mic_codec {mic_codec.name} is not a codec omi devices send")
        if self.has_speaker is None:
            set_("has_speaker", not omi)
        if omi and self.has_speaker:
            raise ConfigError("the omi profile has no speech speaker (omi speakers play chimes only)")
        if self.has_haptic is None:
            set_("has_haptic", omi)
        speaker_codecs = self.speaker_codecs
        if speaker_codecs is None:
            speaker_codecs = COMPANION_SPEAKER_CODECS if self.has_speaker else ()
            set_("speaker_codecs", speaker_codecs)
        if self.speaker_codec is not None and self.speaker_codec not in speaker_codecs:
            raise ConfigError(f"speaker_codec {self.speaker_codec!r} is not in {speaker_codecs}")
        if self.has_speaker and not speaker_codecs:
            raise ConfigError("a headset with a speaker needs at least one speaker codec")
        _check_range("playout_start_ms", self.playout_start_ms, 0, self.speaker_buffer_ms)
        if self.battery_notify_s is None:
            set_("battery_notify_s", 5.0 if omi else 0.0)
        firmware = self.firmware_version
        if firmware is None:
            set_("firmware_version", ident.firmware if ident else (1, 0, 0))
        elif not all(0 <= v <= 255 for v in firmware):
            raise ConfigError(f"firmware_version {firmware}: three numbers 0-255")
        if self.model is None:
            set_("model", ident.model if ident else "companion-sim headset")
        if self.manufacturer is None:
            set_("manufacturer", ident.manufacturer if ident else "companion-sim")
        if self.hardware_revision is None:
            set_("hardware_revision", ident.hardware if ident else "1.0")
        if self.requests_mtu is None:
            set_("requests_mtu", omi)
        for b in self.bystanders:
            if not Path(b).is_file():
                raise ConfigError(f"bystanders: WAV file {b!r} not found")
        lo, hi = self.bystander_gap_s
        _check_range("bystander_gap_s", lo, 0.0, 600.0)
        _check_range("bystander_gap_s", hi, lo, 600.0)
        if self.min_stream_mtu is None:
            set_("min_stream_mtu", MIN_STREAM_MTU if omi else MIN_MTU)
        return self

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (and re-validated). Changing the profile also resets the
        fields that default per profile (name, codecs, speaker, haptic, battery cadence ...) unless given."""
        if "profile" in changes and Profile(changes["profile"]) is not self.profile:
            for name in _PROFILE_DEFAULTS:
                changes.setdefault(name, None)
        if "variant" in changes and changes["variant"] != self.variant:
            for name in _VARIANT_DEFAULTS:
                changes.setdefault(name, None)
        return super().replace(**changes)

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


def _default_codec(ident: OmiIdentity | None) -> CodecId:
    return ident.codec if ident is not None else CodecId.OPUS_16K_20MS


def _is_address(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    )
