"""The machine's sound devices through PortAudio (``sounddevice``): list them, pick one, say what is missing.

``companion doctor`` and the CLI list devices with :func:`list_devices`; the local audio link resolves the
user's ``--input``/``--output`` (a name substring or an index) with :func:`resolve_device`. Every failure is
an :class:`AudioDeviceError` whose message says what to do: install PortAudio, start PulseAudio, plug a
device in, or pick one of the devices it lists.

``sounddevice`` is imported lazily: PortAudio is an optional system library, and importing it scans devices.
PortAudio takes its device list once, at initialisation; call :func:`refresh` after a sound server starts or
a device is plugged in (never while a stream is open).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Literal

Kind = Literal["input", "output"]

_INSTALL_PORTAUDIO = (
    "install PortAudio: apt-get install libportaudio2 (Debian/Ubuntu), brew install portaudio (macOS)"
)
_INSTALL_SOUNDDEVICE = "pip install 'companion[audio]' (the sounddevice package)"
_NO_DEVICE = (
    "start a sound server (as root: pulseaudio -D --exit-idle-time=-1) or plug a device in, "
    "then check with `companion devices`"
)
_refresh_lock = threading.Lock()


class AudioDeviceError(RuntimeError):
    """A sound device could not be used; the message says what to do about it."""


class PortAudioMissing(AudioDeviceError):
    """sounddevice or the PortAudio library it wraps is not installed."""


class NoAudioDevices(AudioDeviceError):
    """PortAudio works but sees no device of the kind asked for."""


class DeviceNotFound(AudioDeviceError):
    """The device the user named does not exist, is ambiguous, or cannot record/play."""


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """One PortAudio device as ``companion devices`` and ``doctor`` show it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    low_input_latency: float
    low_output_latency: float
    is_default_input: bool = False
    is_default_output: bool = False

    def has(self, kind: Kind) -> bool:
        return (self.max_input_channels if kind == "input" else self.max_output_channels) > 0

    def describe(self) -> str:
        marks = [
            m
            for m, on in (
                ("default input", self.is_default_input),
                ("default output", self.is_default_output),
            )
            if on
        ]
        return (
            f"[{self.index}] {self.name} ({self.hostapi}, {self.max_input_channels} in / "
            f"{self.max_output_channels} out, {self.default_samplerate:.0f} Hz)"
            + (f" [{', '.join(marks)}]" if marks else "")
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def sounddevice_module() -> ModuleType:
    """``sounddevice``, or :class:`PortAudioMissing` saying which of the two pieces to install."""
    try:
        import sounddevice
    except ImportError as exc:
        raise PortAudioMissing(f"sounddevice is not installed ({exc}): {_INSTALL_SOUNDDEVICE}") from exc
    except OSError as exc:  # sounddevice raises OSError when it cannot load libportaudio
        raise PortAudioMissing(f"PortAudio is not available ({exc}): {_INSTALL_PORTAUDIO}") from exc
    return sounddevice


def refresh() -> None:
    """Re-initialise PortAudio so it sees devices that appeared since it started (a sound server, a USB
    headset). Must not run while any stream of this process is open."""
    sd = sounddevice_module()
    with _refresh_lock:
        sd._terminate()
        sd._initialize()


def list_devices(kind: Kind | None = None) -> list[AudioDevice]:
    """Every device PortAudio sees (or only those that can record / play), in PortAudio's order."""
    sd = sounddevice_module()
    try:
        raw = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"PortAudio cannot list devices: {exc}") from exc
    default_in, default_out = _defaults(sd, hostapis)
    devices = [
        AudioDevice(
            index=int(d["index"]),
            name=str(d["name"]),
            hostapi=str(hostapis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            low_input_latency=float(d["default_low_input_latency"]),
            low_output_latency=float(d["default_low_output_latency"]),
            is_default_input=int(d["index"]) == default_in,
            is_default_output=int(d["index"]) == default_out,
        )
        for d in raw
    ]
    return [d for d in devices if kind is None or d.has(kind)]


def _defaults(sd: ModuleType, hostapis: tuple[dict, ...]) -> tuple[int, int]:
    """PortAudio's default input and output indices (-1 when there is none)."""
    default_in, default_out = (i if isinstance(i, int) else -1 for i in sd.default.device)
    if default_in < 0 or default_out < 0:
        for api in hostapis:  # sounddevice reports -1 until set; fall back to the host APIs' defaults
            if default_in < 0 and api["default_input_device"] >= 0:
                default_in = int(api["default_input_device"])
            if default_out < 0 and api["default_output_device"] >= 0:
                default_out = int(api["default_output_device"])
    return default_in, default_out


def format_devices(devices: list[AudioDevice]) -> str:
    """One device per line, for error messages and ``companion devices``."""
    return "\n".join(f"  {d.describe()}" for d in devices) if devices else "  (none)"


def resolve_device(spec: str | int | None, kind: Kind) -> AudioDevice:
    """The device ``spec`` names: ``None`` for the default, an index, or a case-insensitive name or substring.

    An exact name wins over substrings (``pulse`` and ``default`` are both PulseAudio's); a substring must
    match one device only. Errors list the devices that exist.
    """
    everything = list_devices()
    usable = [d for d in everything if d.has(kind)]
    if not usable:
        raise NoAudioDevices(
            f"no {kind} sound device found (PortAudio sees {len(everything)} device(s)"
            f"{': ' + ', '.join(d.name for d in everything) if everything else ''}); {_NO_DEVICE}"
        )
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        for d in usable:
            if d.is_default_input if kind == "input" else d.is_default_output:
                return d
        return usable[0]
    listing = f"{kind} devices:\n{format_devices(usable)}"
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        for d in everything:
            if d.index == index:
                if not d.has(kind):
                    raise DeviceNotFound(f"sound device {index} ({d.name}) has no {kind} channels; {listing}")
                return d
        raise DeviceNotFound(f"no sound device with index {index}; {listing}")
    wanted = spec.strip().lower()
    exact = [d for d in usable if d.name.lower() == wanted]
    if exact:
        return exact[0]
    partial = [d for d in usable if wanted in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        raise DeviceNotFound(
            f"{spec!r} matches {len(partial)} {kind} devices; name one exactly or by index:\n"
            f"{format_devices(partial)}"
        )
    raise DeviceNotFound(f"no {kind} device named like {spec!r}; {listing}")
