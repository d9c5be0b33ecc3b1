"""Soak and fault suite: hundreds of headset drops against one live session, with the real engines.

    PYTHONPATH=. .venv/bin/python scripts/soak.py --drops 200 [--mqtt] [--json out.json]

One virtual headset (the simulator, in this process, loopback only), the real BLE link code through bleak,
one session with Whisper tiny.en and piper. The script cycles through three kinds of drop — power cycles,
walking out of range past the supervision timeout, and the simulator's headset being killed and started
afresh under the same address — in three situations: idle, while the wearer speaks, and mid-reply. Before
some drops it sets a timer due while the headset is away (or just after it returns), and every few drops it
asks a question and expects an answer. With ``--mqtt`` a real mosquitto (loopback) carries the session's
events and is restarted now and then; the bridge must come back.

It prints, and writes as JSON: reconnect time after the headset's return (p50/p95/max), turns asked and
lost, replies cut by a drop, timers set and lost (must be 0), whether the session survived (one session
object throughout), RSS and open files before and after, and the MQTT restarts survived. Bounded: every
wait has a timeout; the whole run takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from companion.config import Config
from companion.engines import Engines
from companion.events import EventHub, ReplyEvent, StateChanged, TranscriptEvent
from companion.link.ble import BleHeadsetLink
from companion.session import Session
from firmware_sim import HeadsetConfig, RadioConfig, SimClient, SimScanner, SimWorld

log = logging.getLogger("soak")

KINDS = ("power", "range", "kill")
SITUATIONS = ("idle", "listening", "mid-reply")
SUPERVISION_MS = 400


@dataclass
class Results:
    drops: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_situation: dict[str, int] = field(default_factory=dict)
    reconnect_s: list[float] = field(default_factory=list)
    reconnect_failures: int = 0
    turns_asked: int = 0
    turns_lost: int = 0
    lost_heard: list[str] = field(default_factory=list)  # what the session transcribed for each lost turn
    replies_cut: int = 0
    timers_set: int = 0
    timers_rang: int = 0
    session_survived: bool = True
    rss_mb_before: float = 0.0
    rss_mb_after: float = 0.0
    open_files_before: int = 0
    open_files_after: int = 0
    mqtt_restarts: int = 0
    mqtt_recovered: int = 0
    mqtt_recover_s: list[float] = field(default_factory=list)
    link_counters: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict[str, object]:
        d = asdict(self)
        r = sorted(self.reconnect_s)
        d["reconnect_s"] = {
            "n": len(r),
            "p50": round(statistics.median(r), 3) if r else None,
            "p95": round(r[min(len(r) - 1, int(0.95 * len(r)))], 3) if r else None,
            "max": round(r[-1], 3) if r else None,
        }
        m = sorted(self.mqtt_recover_s)
        d["mqtt_recover_s"] = {
            "p50": round(statistics.median(m), 2) if m else None,
            "max": max(m, default=None),
        }
        d["timers_lost"] = self.timers_set - self.timers_rang
        return d


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


class Events:
    """Every event the session publishes, with the loop time it arrived."""

    def __init__(self, hub: EventHub) -> None:
        self.queue = hub.subscriber()
        self.seen: list[tuple[float, object]] = []
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        while True:
            event = await self.queue.get()
            self.seen.append((time.monotonic(), event))

    async def wait(self, predicate, since: float, timeout: float) -> object | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, event in self.seen:
                if t >= since and predicate(event):
                    return event
            await asyncio.sleep(0.02)
        return None


class Mosquitto:
    """A loopback mosquitto the script can stop and start (--mqtt)."""

    def __init__(self, workdir: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        import socket

        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


class Soak:
    def __init__(self, args: argparse.Namespace, engines: Engines, speech: dict[str, np.ndarray]) -> None:
        self.args = args
        self.engines = engines
        self.speech = speech
        self.rng = random.Random(args.seed)
        self.results = Results()
        self.hub = EventHub()
        self.timer_messages: set[str] = set()

    async def run(self) -> Results:
        config = Config()
        config.session.earcons = False
        async with SimWorld() as world:
            radio = RadioConfig(supervision_timeout_ms=SUPERVISION_MS)
            self.world, self.radio = world, radio
            self.hs = world.add_headset(HeadsetConfig(name="Soak"), radio)
            self.address = self.hs.address
            link = BleHeadsetLink(self.address, backend=SimClient, scanner_backend=SimScanner)
            self.link = link
            async with link:
                self.session = Session(
                    link, stt=self.engines.stt, tts=self.engines.tts, config=config, hub=self.hub
                )
                self.events = Events(self.hub)
                session_task = asyncio.create_task(self.session.run(), name="soak-session")
                try:
                    async with self._mqtt() as mqtt:
                        await asyncio.sleep(0.5)
                        await self._warm_up()
                        self.results.rss_mb_before = rss_mb()
                        self.results.open_files_before = open_files()
                        t0 = time.monotonic()
                        for i in range(self.args.drops):
                            if session_task.done():
                                self.results.session_survived = False
                                break
                            await self._one_drop(i)
                            if mqtt is not None and (i + 1) % self.args.mqtt_every == 0:
                                await self._restart_broker(mqtt)
                        await self._drain_timers()
                        self.results.wall_s = round(time.monotonic() - t0, 1)
                        self.results.rss_mb_after = rss_mb()
                        self.results.open_files_after = open_files()
                        self.results.session_survived &= not session_task.done()
                        self.results.link_counters = link.counters()
                finally:
                    session_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await session_task
                    self.events.task.cancel()
        return self.results

    @contextlib.asynccontextmanager
    async def _mqtt(self):
        if not self.args.mqtt:
            yield None
            return
        from companion.bus.mqtt import MqttBridge
        from companion.config import MqttConfig

        with tempfile.TemporaryDirectory() as tmp:
            broker = Mosquitto(Path(tmp))
            broker.start()
            try:
                cfg = MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}")
                async with MqttBridge(cfg, self.hub, None) as bridge:
                    self.bridge = bridge
                    yield broker
            finally:
                broker.stop()

    async def _restart_broker(self, broker: Mosquitto) -> None:
        import aiomqtt

        self.results.mqtt_restarts += 1
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.start)
        t_back = time.monotonic()
        try:
            async with asyncio.timeout(15):
                async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
                    await watcher.subscribe("companion/#")
                    async for _message in watcher.messages:  # the bridge republishes retained state
                        break
            self.results.mqtt_recovered += 1
            self.results.mqtt_recover_s.append(round(time.monotonic() - t_back, 2))
        except (TimeoutError, aiomqtt.MqttError) as exc:
            log.warning("MQTT did not come back after a broker restart: %r", exc)

    async def _warm_up(self) -> None:
        await self._ask("What time is it?", count=False)

    async def _idle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is playing or queued (a wearer does not talk over a timer ring either)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.session.reply_task
            if not len(self.session.announcements) and (reply is None or reply.done()):
                return
            await asyncio.sleep(0.05)

    async def _ask(self, text: str, count: bool = True, timeout: float = 30.0) -> ReplyEvent | None:
        await self._idle()
        since = time.monotonic()
        if count:
            self.results.turns_asked += 1
        await self.hs.mic.say(self.speech[text])
        reply = await self.events.wait(
            lambda e: isinstance(e, ReplyEvent) and e.intent not in ("announcement", "say"), since, timeout
        )
        if reply is None and count:
            self._lost(since, f"asked {text!r}")
        return reply

    def _lost(self, since: float, what: str) -> None:
        heard = [e.text for t, e in self.events.seen if t >= since and isinstance(e, TranscriptEvent)]
        self.results.turns_lost += 1
        self.results.lost_heard.append(f"{what}: heard {heard or 'nothing'}")
        log.warning("turn lost: %s, heard %s", what, heard or "nothing")

    def _maybe_set_timer(self, i: int, off_s: float) -> None:
        if i % self.args.timer_every:
            return
        delay = max(0.1, off_s * self.rng.uniform(0.3, 1.5))  # due while away, or just after the return
        message = f"Timer {i} is done."
        self.session.skills_context.timers.add(delay, f"soak {i}", message)
        self.timer_messages.add(message)
        self.results.timers_set += 1

    async def _one_drop(self, i: int) -> None:
        kind = KINDS[i % len(KINDS)]
        situation = SITUATIONS[(i // len(KINDS)) % len(SITUATIONS)]
        r = self.results
        r.drops += 1
        r.by_kind[kind] = r.by_kind.get(kind, 0) + 1
        r.by_situation[situation] = r.by_situation.get(situation, 0) + 1
        off_s = self.rng.uniform(0.2, 1.0)
        speaking: asyncio.Task | None = None
        await self._idle()  # a timer ring from the last drop may still be playing
        since = time.monotonic()
        if situation == "listening":
            speaking = asyncio.create_task(self.hs.mic.say(self.speech["What can you do?"]))
            await asyncio.sleep(self.rng.uniform(0.2, 0.8))
        elif situation == "mid-reply":
            self.results.turns_asked += 1
            await self.hs.mic.say(self.speech["What can you do?"])
            state = await self.events.wait(
                lambda e: isinstance(e, StateChanged) and e.state == "speaking", since, 20
            )
            if state is None:
                self._lost(since, f"drop {i} ({kind}, mid-reply)")
            await asyncio.sleep(self.rng.uniform(0.1, 1.0))
        self._maybe_set_timer(i, off_s)
        t_return = await self._drop(kind, off_s)
        if speaking is not None:
            speaking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaking
        t_back = await self._wait_connected(20)
        if t_back is None:
            r.reconnect_failures += 1
            log.warning("drop %d (%s, %s): the link did not come back", i, kind, situation)
        else:
            r.reconnect_s.append(t_back - t_return)
        if situation == "mid-reply":
            cut = await self.events.wait(lambda e: isinstance(e, ReplyEvent) and e.intent == "help", since, 5)
            if cut is not None and cut.interrupted:
                r.replies_cut += 1
        if i % self.args.ask_every == self.args.ask_every - 1:
            await asyncio.sleep(0.3)
            await self._ask("What time is it?")
        if (i + 1) % 20 == 0:
            self._progress(i + 1)

    async def _drop(self, kind: str, off_s: float) -> float:
        """Take the headset away; return the loop time at which it is back (advertising again)."""
        if kind == "power":
            await self.hs.power_cycle(off_s)
        elif kind == "range":
            self.hs.go_out_of_range()
            await asyncio.sleep(SUPERVISION_MS / 1000 + off_s)
            self.hs.come_back()
        else:  # the simulator's headset dies; a fresh one (new firmware state) appears at the same address
            config = self.hs.config
            await self.world.remove_headset(self.hs)
            await asyncio.sleep(off_s)
            self.hs = self.world.add_headset(config, self.radio)
        return time.monotonic()

    async def _wait_connected(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0)
        while time.monotonic() < deadline:
            if self.link.connected and self.hs.connected:
                return time.monotonic()
            await asyncio.sleep(0.01)
        return None

    async def _drain_timers(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rang = {
                e.text
                for _, e in self.events.seen
                if isinstance(e, ReplyEvent) and e.intent == "announcement" and not e.interrupted
            }
            self.results.timers_rang = len(rang & self.timer_messages)
            if self.results.timers_rang >= self.results.timers_set:
                return
            await asyncio.sleep(0.2)

    def _progress(self, n: int) -> None:
        r = self.results.reconnect_s
        print(
            f"  {n} drops: reconnect p50 {statistics.median(r):.2f} s, max {max(r):.2f} s; "
            f"turns lost {self.results.turns_lost}/{self.results.turns_asked}; RSS {rss_mb():.0f} MB",
            flush=True,
        )


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    config = Config()
    engines = await Engines.load(config, lambda m: print(m, flush=True))
    try:
        speech = {}
        for text in ("What time is it?", "What can you do?"):
            chunks = [c async for c in engines.tts.stream(text)]
            speech[text] = np.concatenate(chunks)
        results = await Soak(args, engines, speech).run()
    finally:
        await engines.aclose()
    return results.summary()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drops", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ask-every", type=int, default=10, help="ask a question after every Nth drop")
    parser.add_argument("--timer-every", type=int, default=4, help="set a timer before every Nth drop")
    parser.add_argument("--mqtt", action="store_true", help="carry events over a real mosquitto, restarted")
    parser.add_argument("--mqtt-every", type=int, default=50, help="restart the broker after every N drops")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    summary = asyncio.run(main_async(args))
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    ok = summary["timers_lost"] == 0 and summary["session_survived"] and summary["reconnect_failures"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
