"""The firmware model: what the headset does with its GATT table, mic, speaker, buttons and battery.

It implements the radio's :class:`~firmware_sim.radio.GattServer` (reads, writes, subscriptions, link up
and down, MTU changes) and runs one step per 20 ms clock tick. It knows nothing about bleak or sockets.

Mic streaming: ``companion`` streams once the host has subscribed to MIC *and* sent LISTEN start; ``omi``
streams as soon as the host subscribes to the audio characteristic (and, like Omi firmware, not below MTU
100). Each 20 ms of mic signal (voice + the headset's noise + speaker echo unless it has AEC) is encoded,
packetised and handed to the radio's transmit ring. A ``companion`` headset splits frames at the current MTU
and numbers the packets of a frame the ring drops, so the host sees the gap. Omi firmware (``omi.py``) sends
one notification per frame, drops a frame that does not fit (its packet id used up: the host sees a gap),
and numbers packets only as it sends them, so a ring overflow leaves no trace on the wire (the radio's
ground truth still counts it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from companion.protocol import (
    Abort,
    Button,
    ButtonReport,
    Capabilities,
    CodecId,
    CodecsReport,
    ControlMsg,
    DeviceState,
    ErrorCode,
    ErrorReport,
    FlowStatus,
    Listen,
    Packetizer,
    PlaybackEvent,
    PlaybackReport,
    Profile,
    ProtocolError,
    SetCodecs,
    SetState,
    SetVolume,
    StateReport,
    TimeSync,
    Tts,
    VolumeReport,
    decode_control,
    encode_battery,
    encode_omi_features,
    parse_time_sync,
)
from companion.protocol.control import encode_omi_codec
from companion.protocol.messages import error_text_room
from companion.protocol.omi import GESTURES

from ..config import TICK_SAMPLES, HeadsetConfig, OpusSettings
from ..faults import ReadFaults
from ..gatt import AttError, Characteristic, build_table
from ..radio import Link
from .acoustics import Acoustics, MicParts, load_bystanders
from .battery import Battery
from .descriptors import capabilities, omi_features, preferred_speaker_codec
from .encoder import MicEncoder
from .mic import Mic
from .omi import KEYS as OMI_KEYS
from .omi import OmiFirmware
from .speaker import Speaker
from .storage import Storage
from .voice import load_wav

log = logging.getLogger("firmware_sim.firmware")


# The ERROR codes live in the shared protocol.


@dataclass(frozen=True, slots=True)
class LogEntry:
    """Something the firmware did, on the headset clock: for tests and benchmarks."""

    t: float
    kind: str
    value: object = None


class Firmware:
    """One headset's firmware; the radio calls the ``on_*`` handlers, the clock calls :meth:`tick`."""

    def __init__(self, config: HeadsetConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.profile = Profile(config.profile)
        self.table = build_table(config)
        self.clock = clock
        self.mic = Mic(config.name or "headset")
        self.acoustics = Acoustics(config, load_bystanders(config.bystanders, load_wav))
        self.last_parts: MicParts | None = None
        self.speaker = (
            Speaker(config, clock, self._playback_event, self._speaker_error) if config.has_speaker else None
        )
        self.storage = Storage(config.storage_frames) if config.has_storage else None
        self.log: list[LogEntry] = []
        self.powered = True
        self.state = DeviceState.IDLE
        self.battery_model = Battery(config)
        # HeadsetConfig resolves names and profile defaults on construction: the codecs are CodecIds here
        assert isinstance(config.mic_codec, CodecId) and not isinstance(config.speaker_codec, str)
        self.mic_codec = config.mic_codec
        self._speaker_codec: CodecId | None = config.speaker_codec
        self.listening = False
        self.link: Link | None = None
        self.epoch: tuple[int, float] | None = None
        self.haptics: list[int] = []
        self.errors_sent = 0
        self.on_battery_empty: Callable[[], None] | None = None
        self.on_power_off: Callable[[], None] | None = None  # the headset turns itself off (omi long press)
        self.omi = OmiFirmware(self) if self.profile is Profile.OMI else None
        self._rng = np.random.default_rng(config.seed)
        self._packetizer: Packetizer | None = None
        self._encoder: MicEncoder | None = None
        self._streaming = False
        self.streaming_changed = asyncio.Event()  # set (and replaced) whenever streaming starts or stops
        self._last_flow: bytes | None = None
        self._mic_sent = 0
        self._last_button = bytes(8)
        self._mic_handle = self.table.handle_of("mic")
        self.read_faults = ReadFaults()  # answers the host cannot decode, on request (firmware_sim.faults)

    # -- small helpers -----------------------------------------------------------------------------
    def _log(self, kind: str, value: object = None) -> None:
        self.log.append(LogEntry(self.clock(), kind, value))

    def _notify(self, key: str, data: bytes) -> None:
        char = self.table.by_key(key)
        if char is not None and self.link is not None:
            self.link.notify(char.handle, data)

    def _control(self, msg: ControlMsg) -> None:
        self._notify("control", msg.encode())

    def _error(self, code: ErrorCode, text: str) -> None:
        self.errors_sent += 1
        self._log("error", (int(code), text))
        log.info("%s: ERROR %s: %s", self.config.name, code.name, text)
        if self.link is not None:  # the whole message must fit one notification: shorten the text
            text = text.encode()[: error_text_room(self.link.mtu)].decode("utf-8", "ignore")
        self._control(ErrorReport(int(code), text))

    def _playback_event(self, event: PlaybackEvent) -> None:
        self._log("playback", event)
        self._control(PlaybackReport(event))

    def _speaker_error(self, text: str) -> None:
        self._error(ErrorCode.BAD_AUDIO, text)

    @property
    def streaming(self) -> bool:
        """True while the mic streams to a host."""
        return self._streaming

    @property
    def battery(self) -> int:
        return self.battery_model.percent

    @property
    def volume(self) -> int:
        return self.speaker.volume if self.speaker is not None else self.config.volume

    @property
    def speaker_codec(self) -> CodecId | None:
        """What the headset wants to receive: the host's choice, else what the link carries best."""
        return (
            self._speaker_codec
            if self._speaker_codec is not None
            else preferred_speaker_codec(self.config, self.link)
        )

    def capabilities(self) -> Capabilities:
        """Capabilities as read over GATT; the current mic codec and preferred speaker codec come first."""
        return capabilities(self.config, self.mic_codec, self.speaker_codec)

    def features(self) -> int:
        return omi_features(self.config, is_omi=self.omi is not None)

    # -- GattServer: link lifecycle ----------------------------------------------------------------
    def on_link_up(self, link: Link) -> None:
        self.link = link
        self.listening = False
        self._streaming = False
        if self.omi is None:
            self._packetizer = Packetizer(self.profile, link.mtu, self.mic_codec)
        else:
            self.omi.on_link_up(self.clock())
        self._last_flow = None
        self._mic_sent = 0  # 16 kHz samples of mic frames queued on this connection (FLOW's mic position)
        self.battery_model.renotify()
        if self.speaker is not None:
            self.speaker.reset()
        self._log("connected", link.central)

    def on_link_down(self, reason: str) -> None:
        self.link = None
        self.listening = False
        self._streaming = False
        self._packetizer = None
        self._encoder = None
        if self.speaker is not None:
            self.speaker.reset()
        self._log("disconnected", reason)

    def on_mtu(self, mtu: int) -> None:
        if self._packetizer is not None:
            self._packetizer.set_mtu(mtu)
        self._log("mtu", mtu)

    def on_subscribe(self, char: Characteristic, enabled: bool) -> None:
        self._log("subscribe" if enabled else "unsubscribe", char.key)
        if char.key == "flow":
            self._last_flow = None  # send the current status on the next tick
        if char.key == "battery":
            self.battery_model.renotify()

    # -- GattServer: reads and writes --------------------------------------------------------------
    def on_read(self, char: Characteristic) -> bytes:
        return self.read_faults.apply(char.key, lambda: self._read(char))

    def _read(self, char: Characteristic) -> bytes:
        key = char.key
        cfg = self.config
        if key == "capabilities":
            return self.capabilities().encode()
        if key == "flow" and self.speaker is not None:
            return self._with_mic(self.speaker.flow_status()).encode()
        if key == "battery":
            return encode_battery(self.battery)
        if key == "codec":
            return encode_omi_codec(self.mic_codec)
        if key == "features":
            return encode_omi_features(self.features())
        if key == "button":
            return self._last_button
        if key == "mic":
            return b""  # Omi: the audio characteristic is readable, and reads empty
        if self.omi is not None and key in OMI_KEYS:
            return self.omi.read(key)
        strings = {
            "manufacturer": cfg.manufacturer,
            "model": cfg.model,
            "serial": cfg.serial or "",
            "firmware_revision": ".".join(map(str, cfg.firmware_version or ())),
            "hardware_revision": cfg.hardware_revision or "",
        }
        if key in strings:
            return str(strings[key]).encode()
        raise AttError(AttError.READ_NOT_PERMITTED, f"{key} is not readable")

    def on_write(self, char: Characteristic, data: bytes, response: bool) -> None:
        key = char.key
        if not self.powered:
            return
        if key == "speaker" and self.speaker is not None:
            self.speaker.on_packet(data)
        elif key == "control":
            self._on_control(data)
        elif key == "time_sync":
            try:
                self._set_time(parse_time_sync(data))
            except ProtocolError:
                raise AttError(AttError.INVALID_LENGTH, "time sync takes a u32 LE epoch") from None
        elif key == "haptic":
            if len(data) != 1 or data[0] not in (1, 2, 3):
                raise AttError(AttError.VALUE_NOT_ALLOWED, "haptic takes one byte: 1, 2 or 3")
            self.haptics.append({1: 100, 2: 300, 3: 500}[data[0]])
            self._log("haptic", self.haptics[-1])
        elif self.omi is not None and key in OMI_KEYS:
            self.omi.write(key, data)
        else:
            raise AttError(AttError.WRITE_NOT_PERMITTED, f"{key} is not writable")

    def _set_time(self, epoch: int) -> None:
        self.epoch = (epoch, self.clock())
        self._log("time_sync", epoch)

    def epoch_now(self) -> float | None:
        """Wall-clock seconds as the host set them, advanced by the headset clock (None: never set)."""
        if self.epoch is None:
            return None
        epoch, at = self.epoch
        return epoch + (self.clock() - at)

    def _on_control(self, data: bytes) -> None:
        try:
            msg = decode_control(data)
        except ProtocolError as exc:
            self._error(ErrorCode.BAD_MESSAGE, str(exc))
            return
        self._log("control", msg)
        match msg:
            case SetState(state=state):
                self.state = state
                log.debug("%s: state %s", self.config.name, self.state.name)
                self._control(StateReport(self.state))
            case SetVolume(percent=percent):
                if self.speaker is not None:
                    self.speaker.volume = percent
                self._control(VolumeReport(self.volume))
            case Abort():
                if self.speaker is None:
                    self._error(ErrorCode.UNSUPPORTED, "this headset has no speaker")
                else:
                    self.speaker.abort()
            case SetCodecs(mic=mic, speaker=spk):
                self._set_codecs(mic, spk)
            case Listen(on=on):
                self.listening = on
                log.info("%s: host %s listening", self.config.name, "started" if on else "stopped")
            case Tts(phase=phase):
                if self.speaker is None:
                    self._error(ErrorCode.UNSUPPORTED, "this headset has no speaker")
                else:
                    self.speaker.on_tts(phase)
            case TimeSync(epoch_s=epoch_s):
                self._set_time(epoch_s)
            case _:
                self._error(ErrorCode.BAD_MESSAGE, f"{msg.TYPE.name} is an event, not a command")

    def _set_codecs(self, mic: CodecId, spk: CodecId) -> None:
        cfg = self.config
        if mic not in (cfg.mic_codecs or ()):
            self._error(ErrorCode.UNSUPPORTED_CODEC, f"mic codec {mic.name} not supported")
            return
        if cfg.has_speaker and spk not in (cfg.speaker_codecs or ()):
            self._error(ErrorCode.UNSUPPORTED_CODEC, f"speaker codec {spk.name} not supported")
            return
        if mic != self.mic_codec:
            self.mic_codec = mic
            self._encoder = None
            if self._packetizer is not None:
                self._packetizer.codec = mic
        if cfg.has_speaker:
            self._speaker_codec = spk
        self._control(CodecsReport(self.mic_codec, self.speaker_codec or spk))

    # -- buttons -----------------------------------------------------------------------------------
    def press(self, button: Button) -> None:
        if not self.config.has_button:
            raise ValueError(f"{self.config.name} has no button")
        button = Button(button)
        if self.omi is not None and button not in GESTURES:
            raise ValueError(
                f"Omi firmware never sends {button.name}: its gestures are tap, double tap and long press"
            )
        self._log("button", button)
        log.info("%s: button %s", self.config.name, button.name)
        if not self.powered:
            return
        if self.omi is not None:
            self.omi.gesture(button)
        else:
            self._control(ButtonReport(button))

    # -- power -------------------------------------------------------------------------------------
    def power_off(self) -> None:
        self.powered = False
        self.state = DeviceState.IDLE
        self.listening = False
        if self.speaker is not None:
            self.speaker.reset()
        self._log("power", False)

    def power_on(self) -> None:
        self.powered = True
        self._encoder = None
        self._log("power", True)

    # -- the 20 ms step ----------------------------------------------------------------------------
    def _should_stream(self) -> bool:
        link = self.link
        if not self.powered or link is None or not link.connected or not link.subscribed(self._mic_handle):
            return False
        if link.mtu < (self.config.min_stream_mtu or 0):
            return False
        return self.listening or self.profile is Profile.OMI

    def tick(self) -> tuple[np.ndarray, np.ndarray]:
        """One 20 ms step; returns (the wearer's voice, what the speaker played) for the recording."""
        t = self.clock()
        if self.omi is not None:
            self.omi.tick(t)
        voice = self.mic.next_block(t)
        if self.powered and self.speaker is not None:
            played = self.speaker.tick()
        else:
            played = np.zeros(TICK_SAMPLES, dtype=np.int16)
        if not self.powered:
            return voice, played
        streaming = self._should_stream()
        if streaming != self._streaming:
            self._streaming = streaming
            self._encoder = None
            self._log("streaming", streaming)
            event, self.streaming_changed = self.streaming_changed, asyncio.Event()
            event.set()
        store = self.storage is not None and self.link is None
        # The world goes on whether or not the mic streams (echo tails, bystanders keep their schedule).
        mic = self._mic_signal(voice, played) if self.acoustics.active else voice
        if streaming or store:
            frames = self._encode(mic)
            if streaming:
                self._send(frames)
            elif self.storage is not None:
                for f in frames:
                    self.storage.add(f)
        self._battery_tick()
        self._flow_tick()
        return voice, played

    def _mic_signal(self, voice: np.ndarray, played: np.ndarray) -> np.ndarray:
        """Voice + echo + bystanders + noise (see :mod:`.acoustics`); the parts go to the recording."""
        mic, self.last_parts = self.acoustics.mix(voice, played, self.clock(), self.mic.block_label)
        return mic

    def _encode(self, pcm: np.ndarray) -> list[bytes]:
        if self._encoder is None or self._encoder.codec != self.mic_codec:
            self._encoder = MicEncoder(self.mic_codec, self.config.mic_opus or OpusSettings())
        return self._encoder.push(pcm)

    def _send(self, frames: list[bytes]) -> None:
        if self.omi is not None:
            self.omi.send(frames)
            return
        link, pk = self.link, self._packetizer
        assert link is not None and pk is not None
        assert self._encoder is not None
        for frame in frames:
            if link.offer_audio("mic", self._mic_handle, pk.packetize(frame)):
                self._mic_sent += self._encoder.frame_samples_16k

    def _battery_tick(self) -> None:
        if not self.config.has_battery:
            return
        empty, due = self.battery_model.tick()
        if empty:
            log.warning("%s: battery empty, powering off", self.config.name)
            if self.on_battery_empty is not None:
                self.on_battery_empty()
        elif due:
            self._notify("battery", encode_battery(self.battery))

    def _flow_tick(self) -> None:
        if self.speaker is None or self.link is None:
            return
        status = self.speaker.flow_status()
        # Sent when the speaker's side changes; the mic position rides along, so it alone sends nothing.
        key = status.encode()
        if key != self._last_flow:
            self._last_flow = key
            self._notify("flow", self._with_mic(status).encode())

    def _with_mic(self, status: FlowStatus) -> FlowStatus:
        """The status with the mic stream's position: frames queued for sending + what the encoder holds."""
        if not self._streaming:
            return status
        pending = self._encoder.pending_16k if self._encoder is not None else 0
        return replace(status, mic_samples=self._mic_sent + pending)
