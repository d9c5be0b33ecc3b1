"""How a simulated BLE link behaves (:class:`RadioConfig`): a frozen pydantic model like
:class:`~firmware_sim.config.HeadsetConfig`, whose fields ``python -m firmware_sim`` turns into options."""

from __future__ import annotations

from typing import Any, Self

from pydantic import model_validator

from companion.protocol import ATT_HEADER

from .config_model import Float, Int, SimModel, setting

MIN_MTU = 23
MAX_MTU = 517


class RadioConfig(SimModel):
    """The simulated BLE link between one headset and one central.

    Audio impairments (``loss``, ``duplicate``, ``reorder``) apply to microphone notifications;
    ``downlink_loss`` applies to speaker writes. Control, flow, battery and button traffic is reliable and
    in order, as the link layer makes it on a real radio.
    """

    max_mtu: Int = setting(
        247,
        "largest ATT MTU the headset accepts; the link starts at 23 until the host exchanges the MTU",
        "--mtu",
        "N",
        ge=MIN_MTU,
        le=MAX_MTU,
    )
    auto_mtu: bool = setting(
        False, "the host's stack raises the MTU at connect (as macOS does)", "--auto-mtu"
    )
    interval_ms: Float = setting(15.0, "connection interval", "--interval-ms", "MS", ge=7.5, le=4000)
    packets_per_event: Int = setting(
        6,
        "packets per connection event and direction: the throughput limit",
        "--packets-per-event",
        "N",
        ge=1,
        le=64,
    )
    latency_ms: Float = setting(0.0, "extra one-way latency", "--latency-ms", "MS", ge=0, le=10000)
    loss: Float = setting(0.0, "mic packet loss probability", "--loss", "P", ge=0.0, le=0.9)
    duplicate: Float = setting(0.0, "mic packet duplicate probability", "--dup", "P", ge=0.0, le=0.9)
    reorder: Float = setting(
        0.0, "probability that a mic packet arrives after the next one", "--reorder", "P", ge=0.0, le=0.9
    )
    downlink_loss: Float = setting(
        0.0, "speaker write loss probability", "--downlink-loss", "P", ge=0.0, le=0.9
    )
    seed: Int | None = setting(
        None, "random seed for the radio and mic noise (reproducible runs)", "--seed", "N"
    )
    tx_ring_frames: Int = setting(
        64,
        "mic frames the headset's radio queue holds before it drops the oldest",
        "--tx-ring-frames",
        "N",
        ge=1,
        le=100000,
    )
    host_queue_packets: Int = setting(
        16,
        "writes the host's stack queues; a write without response waits for room",
        "--host-queue-packets",
        "N",
        ge=1,
        le=100000,
    )
    rssi: Int = setting(-60, "signal strength the scanner reports", "--rssi", "DBM", ge=-127, le=20)
    in_range: bool = setting(True, "the headset is in radio range (tests move it out)", None)
    supervision_timeout_ms: Float = setting(
        1000.0,
        "silence after which a link counts as lost",
        "--supervision-timeout-ms",
        "MS",
        ge=100,
        le=32000,
    )
    advertising_interval_ms: Float = setting(
        100.0, "advertising interval", "--advertising-interval-ms", "MS", ge=20, le=10240
    )
    connect_delay_ms: Float | None = setting(
        None,
        "time a connect takes (default: two connection intervals)",
        "--connect-delay-ms",
        "MS",
        ge=0,
        le=60000,
    )

    @model_validator(mode="after")
    def _derived(self) -> Self:
        if self.connect_delay_ms is None:
            self._resolve("connect_delay_ms", 2 * self.interval_ms)
        return self

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (and re-validated); a new interval recomputes the connect delay."""
        if "interval_ms" in changes:
            changes.setdefault("connect_delay_ms", None)
        return super().replace(**changes)

    def payload_rate(self, mtu: int) -> float:
        """ATT payload bytes per second one direction can carry at this MTU."""
        return self.packets_per_event * (1000.0 / self.interval_ms) * (mtu - ATT_HEADER)
