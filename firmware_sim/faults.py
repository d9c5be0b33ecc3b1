"""Read faults a virtual headset can be told to commit: answers the host cannot decode.

A real headset with a firmware bug, a half-flashed update or a flipped bit answers a GATT read with bytes the
host's decoder rejects (an unknown codec id, a truncated record, a flow status with no buffer). The payloads
are built from the real records in ``companion.protocol`` and then damaged in one named way, so a test says
what went wrong rather than handing over random bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from companion.protocol import FlowStatus

#: A codec id no codec table holds.
UNKNOWN_CODEC_ID = 0xEE

FAULTS = ("unknown_codec", "truncated", "zero_capacity")


def damage(key: str, good: bytes, fault: str) -> bytes:
    """The bytes a faulty headset returns for ``key`` instead of ``good``."""
    if fault == "truncated":
        return good[: max(0, len(good) // 2)]
    if fault == "unknown_codec":
        if key == "capabilities":  # [version][fw x3][flags][buffer u16][n mic][mic ids...]...
            out = bytearray(good)
            out[8] = UNKNOWN_CODEC_ID  # the first mic codec
            return bytes(out)
        if key == "codec":  # omi: one byte
            return bytes((UNKNOWN_CODEC_ID,))
        raise ValueError(f"an unknown codec id fault applies to 'capabilities' or 'codec', not {key!r}")
    if fault == "zero_capacity":
        if key != "flow":
            raise ValueError(f"a zero capacity fault applies to 'flow', not {key!r}")
        status = FlowStatus.decode(good)
        return FlowStatus(status.credits, status.buffered_ms, status.underruns, 1).encode()[:-2] + b"\0\0"
    raise ValueError(f"unknown read fault {fault!r}; choose one of {', '.join(FAULTS)}")


class ReadFaults:
    """Pending faults per characteristic key, each for a number of reads."""

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {}
        self.committed = 0

    def add(self, key: str, fault: str, times: int = 1) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown read fault {fault!r}; choose one of {', '.join(FAULTS)}")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        self._pending.setdefault(key, []).extend([fault] * times)

    def clear(self) -> None:
        self._pending.clear()

    def apply(self, key: str, read: Callable[[], bytes]) -> bytes:
        """The answer to one read of ``key``: damaged while a fault is pending, else the real one."""
        faults = self._pending.get(key)
        good = read()
        if not faults:
            return good
        fault = faults.pop(0)
        self.committed += 1
        return damage(key, good, fault)
