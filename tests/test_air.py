"""The simulator's lossy channel on its own (sans-IO, seeded): every packet is accounted for."""

from __future__ import annotations

import random

from firmware_sim.air import HOLD_MAX_MS, RadioTruth, Up, Uplink, downlink_survives
from firmware_sim.config import RadioConfig


def _send(cfg: RadioConfig, n: int, seed: int) -> tuple[Uplink, list[Up]]:
    up = Uplink(RadioTruth())
    rng = random.Random(seed)
    got: list[Up] = []
    for i in range(n):
        ups: list[Up] = []
        up.air(Up(1, bytes([i % 256]), key="mic", order=i), ups, rng, cfg)
        up.end_event(ups, cfg, more_coming=i < n - 1)
        got += ups
    for _ in range(int(HOLD_MAX_MS / cfg.interval_ms) + 1):  # the stream pauses: a held packet goes
        ups = []
        up.end_event(ups, cfg, more_coming=False)
        got += ups
    for u in got:
        up.account(u)
    return up, got


def test_a_clean_channel_delivers_everything_in_order() -> None:
    up, got = _send(RadioConfig(), 200, seed=1)
    assert [u.order for u in got] == list(range(200))
    t = up.truth.mic
    assert (t.sent, t.delivered, t.lost, t.duplicated, t.reordered) == (200, 200, 0, 0, 0)


def test_impairments_match_the_ground_truth() -> None:
    cfg = RadioConfig(loss=0.1, duplicate=0.05, reorder=0.1)
    up, got = _send(cfg, 2000, seed=7)
    t = up.truth.mic
    assert up.held is None
    assert t.delivered == len(got) == t.sent - t.lost + t.duplicated
    assert t.duplicated == sum(u.dup for u in got)
    assert len({u.order for u in got}) == t.sent - t.lost
    assert 100 < t.lost < 300 and t.duplicated > 40 and t.reordered > 80


def test_a_held_packet_is_lost_when_the_link_drops() -> None:
    up = Uplink(RadioTruth())
    ups: list[Up] = []
    up.air(
        Up(1, b"x", key="mic", order=0), ups, random.Random(0), RadioConfig(reorder=0.9)
    )  # seed 0 draws 0.84 first
    assert ups == [] and up.held is not None
    up.drop_held()
    assert up.truth.mic.lost == 1 and up.held is None


def test_downlink_loss_counts_each_write() -> None:
    truth = RadioTruth().speaker
    rng = random.Random(3)
    kept = sum(downlink_survives(truth, rng, RadioConfig(downlink_loss=0.2)) for _ in range(1000))
    assert truth.sent == 1000 and truth.delivered == kept and truth.lost == 1000 - kept
    assert 700 < kept < 900
