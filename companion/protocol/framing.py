"""Audio packet framing: codec frames <-> GATT-sized packets, with exact loss accounting.

Two header styles share one mechanism:

* ``companion``: ``[seq u16 LE][frag u8: bit 7 = last fragment, bits 0-6 = index][codec u8] + payload``
* ``omi``:       ``[packet id u16 LE][fragment index u8] + payload`` (codec from the codec characteristic)

The sequence number counts packets (notifications or writes), not frames, and is compared modulo 65536.
The :class:`Reassembler` puts packets back in order within a small reorder window, drops and counts
duplicates, counts every packet that never came as lost, drops frames whose fragments are incomplete, and
emits a placeholder (``payload=None``) for every lost frame so the decoder conceals exactly that much audio.
No I/O here: the link feeds bytes in and takes frames out.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field, fields

from .codec_ids import CodecId, codec_spec
from .errors import BadField, TruncatedPacket
from .gatt import ATT_HEADER, Profile

SEQ_MOD = 1 << 16
_HALF = SEQ_MOD // 2
LAST_FRAGMENT = 0x80
MAX_FRAGMENTS = 0x80
COMPANION_HEADER = 4
OMI_HEADER = 3


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b between two 16-bit sequence numbers (in -32768..32767)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= _HALF else d


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """One parsed audio packet. ``last`` is None and ``codec`` None for the omi style (not on the wire)."""

    seq: int
    frag: int
    last: bool | None
    codec: CodecId | None
    payload: bytes


def header_size(profile: Profile) -> int:
    return COMPANION_HEADER if profile is Profile.COMPANION else OMI_HEADER


def max_payload(profile: Profile, mtu: int) -> int:
    """Codec bytes that fit in one notification/write at this ATT MTU."""
    room = mtu - ATT_HEADER - header_size(profile)
    if room < 1:
        raise BadField(f"MTU {mtu} leaves no room for audio in a {profile} packet")
    return room


def parse_packet(data: bytes | bytearray, profile: Profile) -> AudioPacket:
    """Parse and validate one packet; raises a ProtocolError subclass on anything malformed."""
    if profile is Profile.COMPANION:
        if len(data) < COMPANION_HEADER + 1:
            raise TruncatedPacket(f"audio packet of {len(data)} bytes; needs at least {COMPANION_HEADER + 1}")
        seq, frag_byte, codec = struct.unpack_from("<HBB", data)
        spec = codec_spec(codec)  # raises UnknownCodec
        return AudioPacket(
            seq, frag_byte & 0x7F, bool(frag_byte & LAST_FRAGMENT), spec.id, bytes(data[COMPANION_HEADER:])
        )
    if len(data) < OMI_HEADER + 1:
        raise TruncatedPacket(f"omi audio packet of {len(data)} bytes; needs at least {OMI_HEADER + 1}")
    seq, frag = struct.unpack_from("<HB", data)
    return AudioPacket(seq, frag, None, None, bytes(data[OMI_HEADER:]))


class Packetizer:
    """Splits codec frames into packets that fit the MTU, numbering packets modulo 65536."""

    def __init__(self, profile: Profile, mtu: int, codec: CodecId, first_seq: int = 0) -> None:
        self.profile = profile
        self.codec = codec
        self.seq = first_seq % SEQ_MOD
        self.set_mtu(mtu)

    def set_mtu(self, mtu: int) -> None:
        self.mtu = mtu
        self.payload_size = max_payload(self.profile, mtu)

    def packetize(self, frame: bytes) -> list[bytes]:
        if not frame:
            raise BadField("empty codec frame")
        chunks = [frame[i : i + self.payload_size] for i in range(0, len(frame), self.payload_size)]
        if len(chunks) > MAX_FRAGMENTS and self.profile is Profile.COMPANION:
            raise BadField(f"frame of {len(frame)} bytes needs {len(chunks)} fragments at MTU {self.mtu}")
        out = []
        for i, chunk in enumerate(chunks):
            if self.profile is Profile.COMPANION:
                frag = i | (LAST_FRAGMENT if i == len(chunks) - 1 else 0)
                header = struct.pack("<HBB", self.seq, frag, self.codec)
            else:
                header = struct.pack("<HB", self.seq, i & 0xFF)
            out.append(header + chunk)
            self.seq = (self.seq + 1) % SEQ_MOD
        return out


@dataclass(slots=True)
class LinkCounters:
    """What happened to the packets of one stream; every loss is accounted for, none is silent."""

    packets_received: int = 0  # valid, unique packets
    packets_lost: int = 0  # sequence numbers that never arrived
    packets_duplicate: int = 0  # exact repeats, dropped
    packets_reordered: int = 0  # arrived after a packet with a higher sequence number
    packets_late: int = 0  # arrived after the reorder window had closed on them: dropped, concealed
    packets_malformed: int = 0  # failed to parse, dropped
    frames_decoded: int = 0  # complete frames handed on
    frames_concealed: int = 0  # placeholders emitted for lost or incomplete frames
    frames_incomplete: int = 0  # frames dropped because a fragment was missing or inconsistent

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def add(self, other: LinkCounters) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class Frame:
    """A codec frame in stream order; ``payload`` None means lost: the decoder must conceal it."""

    codec: CodecId
    payload: bytes | None

    @property
    def lost(self) -> bool:
        return self.payload is None


@dataclass(slots=True)
class _Partial:
    codec: CodecId
    next_frag: int = 0
    parts: list[bytes] = field(default_factory=list)
    received: int = 0  # fragments that arrived for this frame, usable or not
    broken: bool = False
    hole_after: bool = False  # omi only: packets were lost after this frame's last known fragment


class Reassembler:
    """Packets in (any order, with loss and repeats) -> codec frames out, in order, losses marked.

    ``window`` is how many packets past a hole we wait for the hole to be filled before counting it lost;
    it bounds the added latency to ``window`` packet times. Omi frames end when the next frame's first
    fragment arrives (the omi header has no last-fragment flag); call :meth:`flush` when a stream pauses.
    """

    def __init__(self, profile: Profile, codec: CodecId | None = None, window: int = 8) -> None:
        if profile is Profile.OMI and codec is None:
            raise BadField("the omi profile needs the codec read from its codec characteristic")
        self.profile = profile
        self.codec = codec
        self.window = window
        self.counters = LinkCounters()
        self._next: int | None = None
        self._highest = 0
        self._pending: dict[int, AudioPacket] = {}
        self._lost: deque[int] = deque(maxlen=1024)
        self._seen: deque[int] = deque(maxlen=1024)  # recently accepted, to tell repeats from stragglers
        self._seen_set: set[int] = set()
        self._last_codec: CodecId | None = codec
        self._partial: _Partial | None = None
        self._hole = 0  # packets (lost, or of dropped frames) since the last good frame
        self._frame_frags = 1  # fragments per frame lately seen, to size concealment after a hole
        self._out: list[Frame] = []

    # -- input -------------------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray) -> list[Frame]:
        """Take one raw packet; return the frames that became complete (possibly none)."""
        try:
            pkt = parse_packet(data, self.profile)
        except ValueError:  # every ProtocolError is a ValueError
            self.counters.packets_malformed += 1
            return []
        return self.feed_packet(pkt)

    def feed_packet(self, pkt: AudioPacket) -> list[Frame]:
        s = pkt.seq
        if self._next is None:
            self._next = self._highest = s
        if s in self._pending:
            self.counters.packets_duplicate += 1
            return []
        if seq_diff(s, self._next) < 0:
            if s in self._lost:
                # It came after we had given up on it: too late to play (its audio was concealed), but
                # not lost after all.
                self._lost.remove(s)
                self.counters.packets_lost -= 1
                self.counters.packets_late += 1
                self.counters.packets_reordered += 1
            elif s in self._seen_set:
                self.counters.packets_duplicate += 1
            else:
                # Older than anything we took (e.g. the stream's first packet overtaken by its second):
                # too late to play, and never counted lost.
                self.counters.packets_late += 1
                self.counters.packets_reordered += 1
            return []
        if seq_diff(s, self._highest) < 0:
            self.counters.packets_reordered += 1
        else:
            self._highest = s
        self._pending[s] = pkt
        while self._pending and (
            self._next in self._pending or seq_diff(self._highest, self._next) >= self.window
        ):
            self._step()
        return self._take()

    def flush(self) -> list[Frame]:
        """Count every hole up to the highest packet seen as lost and emit what is complete.

        Omi frames have no end marker, so a trailing omi frame is emitted here too.
        """
        while self._pending:
            self._step()
        if self._partial is not None:
            self._close_partial()
        self._conceal()
        return self._take()

    @property
    def frames_held(self) -> float:
        """Frames' worth of packets received but held back waiting for a hole to fill (or be given up):
        how far the newest packet is ahead of what came out."""
        if not self._pending or self._next is None:
            return 0.0
        return (seq_diff(self._highest, self._next) + 1) / max(self._frame_frags, 1)

    # -- ordering ----------------------------------------------------------------------------------
    def _step(self) -> None:
        s = self._next
        assert s is not None
        pkt = self._pending.pop(s, None)
        if pkt is None:
            self.counters.packets_lost += 1
            self._lost.append(s)
            self._on_lost()
        else:
            self.counters.packets_received += 1
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(s)
            self._seen_set.add(s)
            self._on_packet(pkt)
        self._next = (s + 1) % SEQ_MOD

    # -- frames ------------------------------------------------------------------------------------
    def _on_lost(self) -> None:
        self._hole += 1
        if self._partial is not None:
            if self.profile is Profile.COMPANION:
                self._partial.broken = True
            else:
                self._partial.hole_after = True

    def _on_packet(self, pkt: AudioPacket) -> None:
        codec = pkt.codec if pkt.codec is not None else self.codec
        assert codec is not None
        self._last_codec = codec
        if pkt.frag == 0 and self._partial is not None:
            self._close_partial()
        p = self._partial
        if p is None:
            p = self._partial = _Partial(codec, broken=pkt.frag != 0)
        p.received += 1
        if p.broken or p.hole_after or pkt.frag != p.next_frag or codec != p.codec:
            p.broken = True
        else:
            p.parts.append(pkt.payload)
        p.next_frag = pkt.frag + 1
        if pkt.last:
            self._frame_frags = p.next_frag  # the last fragment tells the frame's size even if broken
            self._close_partial()

    def _close_partial(self) -> None:
        """End the frame in progress: hand it on if whole, else drop it and widen the hole."""
        p = self._partial
        assert p is not None
        self._partial = None
        whole = not p.broken and bool(p.parts)
        if whole and p.hole_after:
            # Omi: a loss right after this frame may have taken its tail or the next frame's head.
            whole = len(p.parts) >= self._frame_frags
        if not whole:
            # Omi has no last flag: the highest fragment index seen is our best size estimate.
            self._frame_frags = max(self._frame_frags, p.next_frag)
            self.counters.frames_incomplete += 1
            self._hole += p.received
            return
        self._conceal()
        self._frame_frags = len(p.parts)
        self._out.append(Frame(p.codec, b"".join(p.parts)))
        self.counters.frames_decoded += 1

    def _conceal(self) -> None:
        """Emit placeholders for the frames a run of lost packets carried."""
        if not self._hole:
            return
        frames = max(1, round(self._hole / self._frame_frags))
        self._hole = 0
        if self._last_codec is None:
            return
        self._out.extend(Frame(self._last_codec, None) for _ in range(frames))
        self.counters.frames_concealed += frames

    def _take(self) -> list[Frame]:
        out, self._out = self._out, []
        return out
