"""Audio codecs of the wire: PCM16, G.711 mu-law and Opus, frame by frame, both directions.

Pure computation (no I/O), so the service and the simulator share it. Decoders produce int16 at the
codec's own rate and conceal lost frames: Opus with libopus packet-loss concealment (or the FEC copy of the
lost frame inside the next packet, when the encoder sent one), PCM and mu-law with silence.
Opus comes from ``opuslib-next`` over Debian's ``libopus0``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol, TypedDict, Unpack

import numpy as np

from .codec_ids import CodecId, codec_spec
from .errors import BadField, ProtocolError
from .framing import Frame

DEFAULT_FRAME_MS = 20


class CodecUnavailable(RuntimeError):
    """The codec's library is missing on this machine."""


class FrameEncoder(Protocol):
    codec: CodecId
    frame_samples: int

    def encode(self, pcm: np.ndarray) -> bytes: ...


class FrameDecoder(Protocol):
    codec: CodecId
    frame_samples: int

    def decode(self, payload: bytes) -> np.ndarray: ...

    def conceal(self, next_payload: bytes | None = None) -> np.ndarray: ...


def _check_frame(pcm: np.ndarray, n: int) -> np.ndarray:
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise BadField(f"encoder wants mono int16 samples, got {pcm.dtype} with shape {pcm.shape}")
    if len(pcm) != n:
        raise BadField(f"encoder wants frames of {n} samples, got {len(pcm)}")
    return pcm


class PcmEncoder:
    def __init__(self, codec: CodecId, frame_ms: int = DEFAULT_FRAME_MS) -> None:
        self.codec = codec
        self.frame_samples = codec_spec(codec).sample_rate * frame_ms // 1000

    def encode(self, pcm: np.ndarray) -> bytes:
        return _check_frame(pcm, self.frame_samples).astype("<i2").tobytes()


class PcmDecoder:
    def __init__(self, codec: CodecId, frame_ms: int = DEFAULT_FRAME_MS) -> None:
        self.codec = codec
        self.frame_samples = codec_spec(codec).sample_rate * frame_ms // 1000

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) % 2:
            raise BadField(f"PCM16 frame of odd length {len(payload)}")
        pcm = np.frombuffer(payload, dtype="<i2").astype(np.int16)
        self.frame_samples = len(pcm)  # PCM frames may be any length; conceal with the last one's
        return pcm

    def conceal(self, next_payload: bytes | None = None) -> np.ndarray:
        return np.zeros(self.frame_samples, dtype=np.int16)


# G.711 mu-law, vectorised (the audioop module is gone from Python 3.13).
_BIAS = 0x84


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 mu-law, the classic 14-bit reference algorithm (bit-identical to Sun's g711.c)."""
    v = pcm.astype(np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + (_BIAS >> 2)
    raw = np.floor(np.log2(v)).astype(np.int32) - 5
    seg = np.clip(raw, 0, 7)
    u = np.where(raw > 7, 0x7F, (seg << 4) | ((v >> (seg + 1)) & 0x0F))
    return (u ^ mask).astype(np.uint8).tobytes()


_MULAW_TABLE = np.array(
    [
        (
            lambda u: (
                (-1 if u & 0x80 else 1) * ((((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4))
                - (-1 if u & 0x80 else 1) * _BIAS
            )
        )(~b & 0xFF)
        for b in range(256)
    ],
    dtype=np.int16,
)


def mulaw_decode(data: bytes) -> np.ndarray:
    return _MULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


class MulawEncoder(PcmEncoder):
    def encode(self, pcm: np.ndarray) -> bytes:
        return mulaw_encode(_check_frame(pcm, self.frame_samples))


class MulawDecoder(PcmDecoder):
    def decode(self, payload: bytes) -> np.ndarray:
        pcm = mulaw_decode(payload)
        self.frame_samples = len(pcm)
        return pcm


def _opuslib() -> ModuleType:
    """opuslib-next, imported on first use (it has no type hints: its attributes are Any here)."""
    try:
        opuslib_next = importlib.import_module("opuslib_next")
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise CodecUnavailable("Opus needs `pip install opuslib-next` and Debian's libopus0") from exc
    except Exception as exc:  # opuslib raises plain Exception when libopus itself is missing
        raise CodecUnavailable(f"Opus needs Debian's libopus0 (apt-get install libopus0): {exc}") from exc
    return opuslib_next


class OpusEncoder:
    """Opus at 16 kHz. ``application="voip"`` (SILK, in-band FEC) suits speech over a lossy link;
    ``"lowdelay"`` is CELT-only restricted low delay, what Omi firmware sends (no FEC)."""

    def __init__(
        self,
        codec: CodecId = CodecId.OPUS_16K_20MS,
        *,
        application: str = "voip",
        bitrate: int = 24000,
        fec: bool = True,
        expected_loss_percent: int = 5,
        complexity: int | None = None,
        constrained_vbr: bool | None = None,
        max_bytes: int | None = None,
    ) -> None:
        spec = codec_spec(codec)
        if spec.family != "opus" or spec.frame_ms is None:  # every Opus id fixes its frame length
            raise BadField(f"{spec.name} is not an Opus codec")
        opus = _opuslib()
        app = {"voip": opus.APPLICATION_VOIP, "lowdelay": opus.APPLICATION_RESTRICTED_LOWDELAY}[application]
        self.codec = codec
        self.frame_samples = spec.sample_rate * spec.frame_ms // 1000
        self._enc = opus.Encoder(spec.sample_rate, 1, app)
        self._enc.bitrate = bitrate
        if application == "voip" and fec:
            self._enc.inband_fec = 1
            self._enc.packet_loss_perc = expected_loss_percent
        if complexity is not None:
            self._enc.complexity = complexity
        if constrained_vbr is not None:
            self._enc.vbr_constraint = int(constrained_vbr)
        self._api = opus.api.encoder
        # libopus keeps every frame within this many bytes (Omi firmware: 160); default: no tighter than PCM
        self.max_bytes = max_bytes or 2 * self.frame_samples

    def encode(self, pcm: np.ndarray) -> bytes:
        data = _check_frame(pcm, self.frame_samples).tobytes()
        return bytes(self._api.encode(self._enc.encoder_state, data, self.frame_samples, self.max_bytes))


class OpusDecoder:
    """Opus at 16 kHz through opuslib-next's decoder and its libopus binding.

    libopus writes straight into a NumPy buffer: opuslib-next's ``Decoder.decode`` would build a ctypes
    array, a Python list of every sample and a bytes copy per 20 ms frame, which is most of the cost of
    decoding an idle stream.
    """

    def __init__(self, codec: CodecId = CodecId.OPUS_16K_20MS) -> None:
        spec = codec_spec(codec)
        if spec.family != "opus" or spec.frame_ms is None:
            raise BadField(f"{spec.name} is not an Opus codec")
        opus = _opuslib()
        self._error = opus.OpusError
        self._opus_decode = opus.api.decoder.libopus_decode
        self.codec = codec
        self.frame_samples = spec.sample_rate * spec.frame_ms // 1000
        self._dec = opus.Decoder(spec.sample_rate, 1)
        self._out = np.zeros(self.frame_samples, dtype=np.int16)
        self._out_ptr = self._out.ctypes.data_as(opus.api.c_int16_pointer)

    def _decode(self, payload: bytes, fec: bool = False) -> np.ndarray:
        """One frame of int16 samples; an empty payload asks libopus for loss concealment."""
        n = self._opus_decode(
            self._dec.decoder_state, payload, len(payload), self._out_ptr, self.frame_samples, int(fec)
        )
        if n < 0:
            raise self._error(n)
        return self._out[:n].copy()

    def decode(self, payload: bytes) -> np.ndarray:
        try:
            return self._decode(payload)
        except self._error as exc:
            raise ProtocolError(f"Opus frame rejected by libopus: {exc}") from None

    def conceal(self, next_payload: bytes | None = None) -> np.ndarray:
        """Fill one lost frame: from the FEC data in the next packet when we have it, else libopus PLC."""
        try:
            return self._decode(next_payload, fec=True) if next_payload else self._decode(b"")
        except self._error:
            return np.zeros(self.frame_samples, dtype=np.int16)


class OpusOptions(TypedDict, total=False):
    """OpusEncoder's settings, as :func:`make_encoder` passes them on."""

    application: str
    bitrate: int
    fec: bool
    expected_loss_percent: int
    complexity: int | None
    constrained_vbr: bool | None
    max_bytes: int | None


def make_encoder(
    codec: CodecId, frame_ms: int = DEFAULT_FRAME_MS, **opus_options: Unpack[OpusOptions]
) -> FrameEncoder:
    """An encoder for ``codec``; ``frame_ms`` applies to PCM and mu-law (Opus ids fix their own)."""
    family = codec_spec(codec).family
    if family == "opus":
        return OpusEncoder(codec, **opus_options)
    if family == "mulaw":
        return MulawEncoder(codec, frame_ms)
    return PcmEncoder(codec, frame_ms)


def make_decoder(codec: CodecId, frame_ms: int = DEFAULT_FRAME_MS) -> FrameDecoder:
    family = codec_spec(codec).family
    if family == "opus":
        return OpusDecoder(codec)
    if family == "mulaw":
        return MulawDecoder(codec, frame_ms)
    return PcmDecoder(codec, frame_ms)


class StreamDecoder:
    """Decodes the reassembler's frames in order, concealing each lost one, following codec changes.

    A lost frame followed by a received one in the same batch is rebuilt from that packet's FEC data.
    Undecodable payloads are counted in ``errors`` and concealed, never dropped silently.
    """

    def __init__(self, codec: CodecId, frame_ms: int = DEFAULT_FRAME_MS) -> None:
        self.frame_ms = frame_ms
        self.errors = 0
        self._decoder = make_decoder(codec, frame_ms)

    @property
    def codec(self) -> CodecId:
        return self._decoder.codec

    @property
    def sample_rate(self) -> int:
        return codec_spec(self._decoder.codec).sample_rate

    def decode(self, frames: list[Frame]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i, frame in enumerate(frames):
            if frame.codec != self._decoder.codec:
                self._decoder = make_decoder(frame.codec, self.frame_ms)
            if frame.payload is None:
                nxt = frames[i + 1] if i + 1 < len(frames) else None
                fec = nxt.payload if nxt is not None and nxt.codec == frame.codec else None
                out.append(self._decoder.conceal(fec))
                continue
            try:
                out.append(self._decoder.decode(frame.payload))
            except ProtocolError:
                self.errors += 1
                out.append(self._decoder.conceal(None))
        return out
