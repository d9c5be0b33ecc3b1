"""The MQTT bridge against a real mosquitto broker: topics, retained state, commands, HA discovery,
broker restarts without loss, auth and TLS. A separate aiomqtt client plays Home Assistant."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest

from companion.bus.discovery import DeviceInfo
from companion.bus.mqtt import Broker, MqttBridge, MqttConfigError, probe_broker
from companion.bus.topics import BadCommand, TopicError, Topics, device_id
from companion.config import MqttConfig
from companion.events import (
    Availability,
    BatteryChanged,
    ButtonPressed,
    ErrorEvent,
    EventHub,
    ReplyEvent,
    StateChanged,
    TranscriptEvent,
    TurnTimings,
)
from tests.fixtures.conditions import until
from tests.fixtures.mosquitto import Mosquitto, free_port

ADDR = "AA:BB:CC:DD:EE:01"
DEV = "aa_bb_cc_dd_ee_01"
FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.3}


# ----- helpers


class Received:
    """Messages a test client saw, with a way to wait for a condition on them."""

    def __init__(self) -> None:
        self.messages: list[aiomqtt.Message] = []
        self._changed = asyncio.Event()

    async def collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.messages.append(message)
            self._changed.set()

    def on(self, topic: str) -> list[aiomqtt.Message]:
        return [m for m in self.messages if m.topic.value == topic]

    def payloads(self, topic: str) -> list[str]:
        return [_text(m) for m in self.on(topic)]

    async def until(self, predicate: Callable[[Received], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


def _text(message: aiomqtt.Message) -> str:
    assert isinstance(message.payload, bytes)
    return message.payload.decode()


def _client(broker: Mosquitto, **kw: Any) -> aiomqtt.Client:
    tls = aiomqtt.TLSParameters(ca_certs=broker.ca_file) if broker.tls else None
    return aiomqtt.Client(
        "127.0.0.1", broker.port, username=broker.username, password=broker.password, tls_params=tls, **kw
    )


@contextlib.asynccontextmanager
async def listening(broker: Mosquitto, topic: str = "#", **kw: Any) -> AsyncIterator[Received]:
    """A second MQTT client (the "Home Assistant" of the test) subscribed to ``topic``."""
    got = Received()
    async with _client(broker, **kw) as client:
        await client.subscribe(topic, qos=1)
        task = asyncio.create_task(got.collect(client))
        try:
            yield got
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class Handler:
    """Records the commands the bridge hands over; device "broken" fails like an unknown headset."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def _check(self, device: str) -> None:
        if device == "broken":
            raise LookupError(f"no headset {device}")

    async def say(self, device: str, text: str) -> None:
        self._check(device)
        self.calls.append(("say", device, text))

    async def listen(self, device: str, on: bool) -> None:
        self._check(device)
        self.calls.append(("listen", device, on))

    async def stop(self, device: str) -> None:
        self._check(device)
        self.calls.append(("stop", device))

    async def set_volume(self, device: str, percent: int) -> None:
        self._check(device)
        self.calls.append(("set_volume", device, percent))


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    with contextlib.suppress(AssertionError):  # aiomqtt's cancelled housekeeping tasks end soon after
        await until(lambda: not asyncio.all_tasks() - {asyncio.current_task()}, 1.0)
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    assert not leftover, f"tasks left behind: {leftover}"


# ----- pure logic


def test_device_id_is_safe_for_topics_and_ha() -> None:
    assert device_id("AA:BB:CC:DD:EE:FF") == "aa_bb_cc_dd_ee_ff"
    assert device_id("0A1B2C3D-1111-2222-3333-444455556666") == "0a1b2c3d-1111-2222-3333-444455556666"
    assert device_id("sim/head set#1") == "sim_head_set_1"
    with pytest.raises(TopicError):
        device_id(":::")


@pytest.mark.parametrize(
    ("leaf", "payload", "expected"),
    [
        ("say", b"  Hello there ", ("say", "Hello there")),
        ("listen", b"START", ("listen", True)),
        ("listen", b"off", ("listen", False)),
        ("stop", b"PRESS", ("stop", None)),
        ("volume", b"40", ("volume", 40)),
        ("volume", b"55.0", ("volume", 55)),
    ],
)
def test_parse_good_commands(leaf: str, payload: bytes, expected: tuple[str, Any]) -> None:
    command = Topics("home/companion").parse_command(f"home/companion/{DEV}/cmd/{leaf}", payload)
    value = {"say": command.text, "listen": command.on, "volume": command.percent, "stop": None}
    assert (command.device, command.name, value[command.name]) == (DEV, *expected)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"companion/{DEV}/cmd/say", b"   ", "nothing to say"),
        (f"companion/{DEV}/cmd/say", b"\xff\xfe", "UTF-8"),
        (f"companion/{DEV}/cmd/say", b"x" * 5000, "too long"),
        (f"companion/{DEV}/cmd/listen", b"maybe", "start or stop"),
        (f"companion/{DEV}/cmd/volume", b"loud", "0-100"),
        (f"companion/{DEV}/cmd/volume", b"150", "outside 0-100"),
        (f"companion/{DEV}/cmd/volume", b"nan", "outside 0-100"),
        (f"companion/{DEV}/cmd/dance", b"now", "unknown command"),
        (f"other/{DEV}/cmd/say", b"hi", "not a command topic"),
    ],
)
def test_parse_bad_commands(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(BadCommand, match=reason):
        Topics().parse_command(topic, payload)


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        (MqttConfig(), "mqtt.url is not set"),
        (MqttConfig(url="http://localhost"), "mqtt:// or mqtts://"),
        (MqttConfig(url="mqtt://localhost:99999"), "port"),
        (MqttConfig(url="mqtt://localhost/x"), "no path"),
        (MqttConfig(url="mqtts://localhost", ca_file="/nonexistent/ca.crt"), "mqtt.ca_file: no such file"),
        (MqttConfig(url="mqtt://localhost", ca_file="/etc/hostname"), "use mqtts://"),
        (MqttConfig(url="mqtt://localhost", topic_prefix="a/#"), "mqtt.topic_prefix"),
        (MqttConfig(url="mqtt://localhost", discovery_prefix=""), "mqtt.discovery_prefix"),
    ],
)
async def test_bad_config_is_a_clear_error(cfg: MqttConfig, key: str) -> None:
    with pytest.raises(MqttConfigError, match=key):
        MqttBridge(cfg, EventHub(), Handler())


def test_url_credentials_and_default_ports() -> None:
    broker = Broker.from_config(MqttConfig(url="mqtts://me:p%40ss@broker.lan"))
    assert (broker.host, broker.port, broker.tls, broker.username, broker.password) == (
        "broker.lan", 8883, True, "me", "p@ss",
    )  # fmt: skip
    assert broker.url == "mqtts://broker.lan:8883"  # never the password
    assert Broker.from_config(MqttConfig(url="mqtt://h", username="u")).username == "u"


# ----- against mosquitto


async def test_events_appear_on_their_topics(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto()
    hub = EventHub()
    events = [
        Availability(ADDR, online=True, reason="connected"),
        StateChanged(ADDR, "listening"),
        TranscriptEvent(ADDR, "what time is it", audio_s=1.5),
        StateChanged(ADDR, "thinking"),
        ReplyEvent(ADDR, "It is noon.", intent="time"),
        TurnTimings(ADDR, turn=1, stt_done_ms=80.5, first_audio_played_ms=310.0),
        BatteryChanged(ADDR, 87),
        ButtonPressed(ADDR, "main"),
        ErrorEvent(ADDR, "speaker underrun"),
        StateChanged(ADDR, "idle"),
    ]
    expected = [
        ("availability", "online"),
        ("state", "listening"),
        ("transcript", events[2].to_dict()),
        ("state", "thinking"),
        ("reply", events[4].to_dict()),
        ("timings", events[5].to_dict()),
        ("battery", "87"),
        ("button", events[7].to_dict()),
        ("error", events[8].to_dict()),
        ("state", "idle"),
    ]
    prefix = f"companion/{DEV}/"
    async with (
        listening(broker, f"companion/{DEV}/+") as got,
        MqttBridge(broker.mqtt_config(), hub, Handler()),
    ):
        for event in events:
            hub.publish(event)
        await got.until(lambda g: len(g.messages) >= len(expected))
    seen = []
    for message in got.messages:
        leaf = message.topic.value.removeprefix(prefix)
        text = _text(message)
        seen.append((leaf, text if leaf in ("availability", "state", "battery") else json.loads(text)))
    assert seen == expected


async def test_late_subscriber_sees_retained_state(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto()
    hub = EventHub()
    async with MqttBridge(broker.mqtt_config(), hub, Handler()) as bridge:
        hub.publish(Availability(ADDR, online=True))
        hub.publish(StateChanged(ADDR, "speaking"))
        hub.publish(TranscriptEvent(ADDR, "tell me a joke"))
        hub.publish(ReplyEvent(ADDR, "Why did the headset cross the road?", intent="llm"))
        hub.publish(TurnTimings(ADDR, turn=1))
        hub.publish(ButtonPressed(ADDR, "main"))
        hub.publish(BatteryChanged(ADDR, 64))
        hub.publish(StateChanged(ADDR, "idle"))
        await until(lambda: bridge.stats.published >= 8 and bridge.stats.queued == 0)
        async with listening(broker, "companion/#") as got:
            wanted = {"companion/status", *(f"companion/{DEV}/{leaf}" for leaf in
                      ("availability", "state", "battery", "transcript", "reply"))}  # fmt: skip
            await got.until(lambda g: wanted <= {m.topic.value for m in g.messages})
            await asyncio.sleep(0.2)  # a window: anything not retained would have shown up by now too
        stats = bridge.stats
    retained = {m.topic.value: _text(m) for m in got.messages}
    assert set(retained) == wanted
    assert all(m.retain for m in got.messages)
    assert retained["companion/status"] == "online"
    assert retained[f"companion/{DEV}/state"] == "idle"
    assert retained[f"companion/{DEV}/battery"] == "64"
    assert json.loads(retained[f"companion/{DEV}/reply"])["text"] == "Why did the headset cross the road?"
    assert (stats.dropped, stats.connect_failures, stats.reconnects) == (0, 0, 0)
    async with listening(broker, "companion/status") as got:  # a clean close says offline
        await got.until(lambda g: bool(g.messages))
    assert got.payloads("companion/status") == ["offline"]


async def test_commands_reach_the_handler_and_bad_ones_are_counted(
    mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto()
    handler = Handler()
    cmd = f"companion/{DEV}/cmd"
    async with _client(broker) as ha:
        await ha.publish(f"{cmd}/say", "left over", qos=1, retain=True)  # a retained command: ignored
        async with MqttBridge(broker.mqtt_config(), EventHub(), handler) as bridge:
            await asyncio.wait_for(bridge.wait_connected(), 5)
            for leaf, payload in [
                ("say", "Hello there"),
                ("listen", "start"),
                ("volume", "loud"),
                ("listen", "stop"),
                ("volume", "150"),
                ("listen", "maybe"),
                ("say", ""),
                ("dance", "now"),
                ("say", b"\xff\xfe"),
                ("volume", "40"),
                ("stop", "PRESS"),
            ]:
                await ha.publish(f"{cmd}/{leaf}", payload, qos=1)
            await ha.publish("companion/broken/cmd/say", "hi", qos=1)  # the handler raises
            await ha.publish(f"{cmd}/say", "still here", qos=1)
            await until(lambda: len(handler.calls) == 6 and bridge.stats.command_errors == 1)
            stats = bridge.stats
        await ha.publish(f"{cmd}/say", "", qos=1, retain=True)  # clear the retained command
    assert handler.calls == [
        ("say", DEV, "Hello there"),
        ("listen", DEV, True),
        ("listen", DEV, False),
        ("set_volume", DEV, 40),
        ("stop", DEV),
        ("say", DEV, "still here"),
    ]
    assert stats.bad_commands == 7  # retained, loud, 150, maybe, empty, dance, not UTF-8
    assert (stats.commands, stats.command_errors) == (7, 1)


async def test_discovery_configs_are_what_home_assistant_needs(
    mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto()
    hub = EventHub()
    handler = Handler()
    async with MqttBridge(broker.mqtt_config(), hub, handler) as bridge:
        hub.publish(Availability(ADDR, online=True))
        await until(lambda: bridge.stats.queued == 0 and bridge.stats.published > 8)
        async with listening(broker, "homeassistant/#") as got:
            await got.until(lambda g: len(g.messages) >= 8)
        configs = {m.topic.value: json.loads(_text(m)) for m in got.messages}
        assert all(m.retain for m in got.messages)

        node = f"companion_{DEV}"
        assert set(configs) == {
            f"homeassistant/sensor/{node}/battery/config",
            f"homeassistant/sensor/{node}/state/config",
            f"homeassistant/sensor/{node}/transcript/config",
            f"homeassistant/sensor/{node}/reply/config",
            f"homeassistant/text/{node}/say/config",
            f"homeassistant/button/{node}/stop/config",
            f"homeassistant/button/{node}/listen/config",
            f"homeassistant/number/{node}/volume/config",
        }
        unique_ids = [c["unique_id"] for c in configs.values()]
        assert len(set(unique_ids)) == len(unique_ids)
        for topic, config in configs.items():
            component = topic.split("/")[1]
            assert config["name"]
            assert config["device"]["identifiers"] == [node]
            assert config["device"]["connections"] == [["bluetooth", ADDR]]
            assert {"name", "manufacturer", "model"} <= set(config["device"])
            assert config["availability_mode"] == "all"
            assert [a["topic"] for a in config["availability"]] == [
                "companion/status",
                f"companion/{DEV}/availability",
            ]
            assert ("state_topic" if component == "sensor" else "command_topic") in config
        battery = configs[f"homeassistant/sensor/{node}/battery/config"]
        assert battery["device_class"] == "battery"
        assert battery["unit_of_measurement"] == "%"
        assert battery["state_topic"] == f"companion/{DEV}/battery"
        say = configs[f"homeassistant/text/{node}/say/config"]
        stop = configs[f"homeassistant/button/{node}/stop/config"]
        assert stop["name"] == "Stop speaking"

        # What HA does with these entities reaches the headset.
        async with _client(broker) as ha:
            await ha.publish(say["command_topic"], "Dinner is ready", qos=1)
            await ha.publish(stop["command_topic"], stop["payload_press"], qos=1)
        await until(lambda: len(handler.calls) == 2)
        assert handler.calls == [("say", DEV, "Dinner is ready"), ("stop", DEV)]

        # Home Assistant restarted (its birth message): the configs go out again.
        before = bridge.stats.published
        async with _client(broker) as ha:
            await ha.publish("homeassistant/status", "online", qos=1)
        await until(lambda: bridge.stats.published == before + 8)

        # Details from the headset's Device Information update the HA device.
        info = DeviceInfo(ADDR, name="Kitchen headset", manufacturer="Omi", sw_version="2.1")
        bridge.set_device_info(info)
        async with listening(broker, f"homeassistant/sensor/{node}/battery/config") as got:
            await got.until(
                lambda g: (
                    bool(g.messages) and json.loads(_text(g.messages[-1]))["device"]["name"] == info.name
                )
            )
        device = json.loads(_text(got.messages[-1]))["device"]
        assert (device["manufacturer"], device["sw_version"]) == ("Omi", "2.1")


async def test_discovery_can_be_switched_off(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto()
    hub = EventHub()
    async with MqttBridge(broker.mqtt_config(discovery=False), hub, Handler()) as bridge:
        hub.publish(Availability(ADDR, online=True))
        hub.publish(BatteryChanged(ADDR, 50))
        await until(lambda: bridge.stats.published >= 3 and bridge.stats.queued == 0)
        assert bridge.stats.published == 3  # status + two events, no configs
        async with listening(broker, "homeassistant/#") as got:
            await asyncio.sleep(0.2)  # a window in which no config may arrive
    assert got.messages == []


async def _persistent_listener(broker: Mosquitto, topic: str, got: Received) -> None:
    """A subscriber with a persistent session that follows the broker through restarts."""
    while True:
        try:
            async with _client(broker, identifier="test-ha", clean_session=False) as client:
                await client.subscribe(topic, qos=1)
                await got.collect(client)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.05)


async def _wait_subscribed(broker: Mosquitto, topic: str, got: Received) -> None:
    """Publish markers until the persistent subscriber has one, then forget them."""
    async with _client(broker) as probe:
        async with asyncio.timeout(5):
            while not got.messages:
                await probe.publish(topic, '{"turn":"marker"}', qos=1)
                with contextlib.suppress(TimeoutError):
                    await got.until(lambda g: bool(g.messages), timeout=0.2)
    got.messages.clear()


def _turns(got: Received) -> list[int]:
    """The turn numbers received, without any late marker of :func:`_wait_subscribed`."""
    turns = [json.loads(_text(m))["turn"] for m in got.messages]
    return [t for t in turns if t != "marker"]


def _last_turn(got: Received) -> int | None:
    turns = _turns(got)
    return turns[-1] if turns else None


def _dedupe(values: list[int]) -> list[int]:
    """QoS 1 is at-least-once: a message in flight when the broker died may come twice, in a row."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


async def test_broker_restart_loses_nothing_and_keeps_order(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto(persistence=True)  # so the test's subscriber keeps its queue across the restart
    hub = EventHub()
    got = Received()
    sub = asyncio.create_task(_persistent_listener(broker, f"companion/{DEV}/timings", got))
    try:
        await _wait_subscribed(broker, f"companion/{DEV}/timings", got)
        async with MqttBridge(broker.mqtt_config(), hub, Handler(), **FAST) as bridge:
            hub.publish(TurnTimings(ADDR, turn=-1))
            t_start = time.monotonic()
            for turn in range(60):
                if turn == 20:
                    await asyncio.to_thread(broker.stop)
                if turn == 40:
                    assert not bridge.stats.connected
                    assert bridge.stats.queued >= 15
                    await asyncio.to_thread(broker.start)
                hub.publish(TurnTimings(ADDR, turn=turn, stt_ms=float(turn)))
                await asyncio.sleep(0.01)
            await got.until(lambda g: _last_turn(g) == 59, timeout=15)
            elapsed = time.monotonic() - t_start
            stats = bridge.stats
    finally:
        sub.cancel()
        await asyncio.gather(sub, return_exceptions=True)
    assert _dedupe(_turns(got)) == [-1, *range(60)]
    assert stats.reconnects == 1
    assert stats.dropped == 0
    assert stats.connect_failures >= 1
    assert elapsed < 10


async def test_full_outbox_drops_the_oldest_and_counts(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto(persistence=True)
    hub = EventHub()
    got = Received()
    sub = asyncio.create_task(_persistent_listener(broker, f"companion/{DEV}/timings", got))
    try:
        await _wait_subscribed(broker, f"companion/{DEV}/timings", got)
        await asyncio.to_thread(broker.stop)
        cfg = broker.mqtt_config(discovery=False)
        async with MqttBridge(cfg, hub, Handler(), outbox_size=5, **FAST) as bridge:
            for turn in range(8):
                hub.publish(TurnTimings(ADDR, turn=turn))
            await until(lambda: bridge.stats.queued + bridge.stats.dropped == 8)
            assert (bridge.stats.queued, bridge.stats.dropped) == (5, 3)
            await asyncio.to_thread(broker.start)
            await got.until(lambda g: _last_turn(g) == 7, timeout=10)
    finally:
        sub.cancel()
        await asyncio.gather(sub, return_exceptions=True)
    assert _turns(got) == [3, 4, 5, 6, 7]


async def _retained(broker: Mosquitto, topic: str, want: set[str], timeout: float = 5.0) -> dict[str, str]:
    """The retained messages under ``topic`` once all of ``want`` are among them."""
    deadline = time.monotonic() + timeout
    while True:
        async with listening(broker, topic) as got:
            await asyncio.sleep(0.15)
        found = {m.topic.value: _text(m) for m in got.messages if m.retain}
        if want <= set(found) or time.monotonic() > deadline:
            return found


async def test_reconnect_republishes_state_and_discovery(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto()  # no persistence: a restart forgets every retained message
    hub = EventHub()
    async with MqttBridge(broker.mqtt_config(), hub, Handler(), **FAST) as bridge:
        hub.publish(Availability(ADDR, online=True))
        hub.publish(BatteryChanged(ADDR, 42))
        hub.publish(StateChanged(ADDR, "idle"))
        await until(lambda: bridge.stats.queued == 0 and bridge.stats.published >= 12)
        await asyncio.to_thread(broker.stop)
        await until(lambda: not bridge.stats.connected)
        hub.publish(StateChanged(ADDR, "listening"))  # changed while the broker was away
        await asyncio.to_thread(broker.start)
        await until(lambda: bridge.stats.reconnects == 1, timeout=10)
        want = {
            "companion/status",
            f"companion/{DEV}/availability",
            f"companion/{DEV}/battery",
            f"companion/{DEV}/state",
            f"homeassistant/sensor/companion_{DEV}/battery/config",
            f"homeassistant/text/companion_{DEV}/say/config",
        }
        found = await _retained(broker, "#", want)
    assert want <= set(found)
    assert found["companion/status"] == "online"
    assert found[f"companion/{DEV}/battery"] == "42"
    assert found[f"companion/{DEV}/state"] == "listening"


async def test_wrong_password_is_clear_and_the_bridge_keeps_trying(
    mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto(password=True)
    wrong = broker.mqtt_config(password="wrong")
    error = await probe_broker(wrong)
    assert error is not None and "refused the login for user 'companion'" in error
    assert "mqtt.password" in error
    anonymous = await probe_broker(broker.mqtt_config(username=None, password=None))
    assert anonymous is not None and "anonymous" in anonymous
    assert await probe_broker(broker.mqtt_config()) is None

    hub = EventHub()
    async with MqttBridge(wrong, hub, Handler(), **FAST) as bridge:
        await until(lambda: bridge.stats.connect_failures >= 3)
        hub.publish(StateChanged(ADDR, "idle"))  # the service keeps going; events wait
        await until(lambda: bridge.stats.queued >= 1)
        stats = bridge.stats
    assert not stats.connected and stats.last_error and "mqtt.password" in stats.last_error

    async with (
        listening(broker, f"companion/{DEV}/state") as got,
        MqttBridge(broker.mqtt_config(), hub, Handler()),
    ):
        hub.publish(StateChanged(ADDR, "speaking"))
        await got.until(lambda g: bool(g.messages))
    assert got.payloads(f"companion/{DEV}/state") == ["speaking"]


async def test_tls_with_the_generated_ca(mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto(tls=True)
    assert broker.url.startswith("mqtts://")
    assert await probe_broker(broker.mqtt_config()) is None
    untrusted = await probe_broker(broker.mqtt_config(ca_file=None))  # system CAs do not know ours
    assert untrusted is not None and "TLS handshake" in untrusted and "CERTIFICATE_VERIFY_FAILED" in untrusted
    plain = await probe_broker(MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}"), timeout_s=1.0)
    assert plain is not None and "mqtts://" in plain

    hub = EventHub()
    async with (
        listening(broker, f"companion/{DEV}/battery") as got,
        MqttBridge(broker.mqtt_config(), hub, Handler()),
    ):
        hub.publish(BatteryChanged(ADDR, 77))
        await got.until(lambda g: bool(g.messages))
    assert got.payloads(f"companion/{DEV}/battery") == ["77"]


async def test_unreachable_broker_keeps_the_service_running() -> None:
    cfg = MqttConfig(url=f"mqtt://127.0.0.1:{free_port()}")
    error = await probe_broker(cfg)
    assert error is not None and "cannot talk to the MQTT broker" in error and "refused" in error.lower()
    hub = EventHub()
    bridge = MqttBridge(cfg, hub, Handler(), **FAST)
    async with bridge:
        await until(lambda: bridge.stats.connect_failures >= 2)
        hub.publish(BatteryChanged(ADDR, 10))
        await until(lambda: bridge.stats.queued == 1 + 8)  # discovery configs + the event
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.0  # closing does not wait for a broker that is not there


async def test_silent_server_gives_a_clear_error_and_a_prompt_close() -> None:
    """A TCP listener that never speaks MQTT (a firewall, a wrong service): bounded waits, no leftovers."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = MqttConfig(url=f"mqtt://127.0.0.1:{port}")
        error = await probe_broker(cfg, timeout_s=0.3)
        assert error is not None and "did not answer within 0.3 s" in error
        bridge = MqttBridge(cfg, EventHub(), Handler(), connect_timeout_s=0.5, close_timeout_s=0.1, **FAST)
        async with bridge:
            await until(lambda: bridge.stats.connect_failures >= 1)
            await asyncio.sleep(0.1)  # in the middle of the next attempt
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 1.0
        assert bridge.stats.last_error and "did not answer" in bridge.stats.last_error
    finally:
        server.close()
        await server.wait_closed()
