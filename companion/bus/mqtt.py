"""The MQTT bridge: session events out to a broker, commands in, Home Assistant discovery.

Events from the :class:`~companion.events.EventHub` go into a bounded, ordered outbox. One publisher
sends the outbox head with QoS 1 and removes it only once the broker has acknowledged it (aiomqtt's
``publish`` awaits the PUBACK), so a broker that goes away loses nothing: messages wait, in order, and
go out after the reconnect. When the outbox is full the oldest message is dropped and counted.
Delivery is at-least-once: a message whose PUBACK was lost with the connection is sent again.

The bridge never stops the service: connection failures are logged and retried with capped exponential
backoff. On every (re)connect it subscribes to the commands again and re-publishes what a broker without
persistence may have forgotten: its ``online`` status, the discovery configs and the retained state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from companion.bus.discovery import DeviceInfo, discovery_messages
from companion.bus.topics import (
    OFFLINE,
    ONLINE,
    BadCommand,
    Command,
    Outgoing,
    TopicError,
    Topics,
    check_prefix,
    device_id,
)
from companion.config import MqttConfig
from companion.config_checks import check_mqtt_url
from companion.events import Event, EventHub

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_AUTH_CODES = {4, 5, 134, 135}  # MQTT 3.1.1 CONNACK codes and their MQTT 5 reason codes


class MqttConfigError(ValueError):
    """An MQTT setting that cannot work (bad URL, missing TLS file); the message names the key."""


class CommandHandler(Protocol):
    """What the service does with commands from MQTT; ``device`` is the :func:`device_id`."""

    async def say(self, device: str, text: str) -> None: ...

    async def listen(self, device: str, on: bool) -> None: ...

    async def stop(self, device: str) -> None: ...

    async def set_volume(self, device: str, percent: int) -> None: ...


@dataclass(slots=True)
class BridgeStats:
    published: int = 0  # messages the broker acknowledged
    queued: int = 0  # messages waiting in the outbox now
    dropped: int = 0  # messages dropped because the outbox was full
    reconnects: int = 0  # successful connections after the first one
    connect_failures: int = 0  # connection attempts that failed
    commands: int = 0  # valid commands handed to the CommandHandler
    bad_commands: int = 0  # command messages that were rejected
    command_errors: int = 0  # commands the CommandHandler failed on
    connected: bool = False
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Broker:
    """Where and how to connect, validated from :class:`MqttConfig`."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    @classmethod
    def from_config(cls, cfg: MqttConfig) -> Broker:
        if not cfg.url:
            raise MqttConfigError("mqtt.url is not set (e.g. mqtt://localhost:1883 or mqtts://host:8883)")
        try:
            target = check_mqtt_url(cfg.url)  # the same check as at config load; never shows the password
        except ValueError as exc:
            raise MqttConfigError(f"mqtt.url {exc}") from None
        parts, port, tls = target.parts, target.port, target.tls
        files = {"ca_file": cfg.ca_file, "client_cert": cfg.client_cert, "client_key": cfg.client_key}
        for name, path in files.items():
            key = f"mqtt.{name}"
            if path is None:
                continue
            if not tls:
                raise MqttConfigError(f"{key} is set but mqtt.url is mqtt://: use mqtts:// for TLS")
            if not Path(path).is_file():
                raise MqttConfigError(f"{key}: no such file: {path}")
        if cfg.client_key and not cfg.client_cert:
            raise MqttConfigError("mqtt.client_key is set without mqtt.client_cert")
        return cls(
            host=target.host,
            port=port,
            tls=tls,
            username=cfg.username if cfg.username is not None else _unquote(parts.username),
            password=cfg.password if cfg.password is not None else _unquote(parts.password),
            ca_file=cfg.ca_file,
            client_cert=cfg.client_cert,
            client_key=cfg.client_key,
        )

    def client(
        self,
        *,
        identifier: str | None = None,
        will: aiomqtt.Will | None = None,
        keepalive: int = 30,
        timeout: float = 10.0,
    ) -> aiomqtt.Client:
        """A new, unconnected aiomqtt client (aiomqtt loads the TLS files in its connect thread)."""
        tls = None
        if self.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=self.ca_file, certfile=self.client_cert, keyfile=self.client_key
            )
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            will=will,
            keepalive=keepalive,
            timeout=timeout,
            tls_params=tls,
            clean_session=True,
        )


def _unquote(value: str | None) -> str | None:
    return unquote(value) if value is not None else None


def describe_error(exc: BaseException, broker: Broker, timeout: float = 10.0) -> str:
    """One line that says what went wrong and which setting to look at."""
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in _AUTH_CODES:
            who = f"user {broker.username!r}" if broker.username else "anonymous clients"
            return f"{broker.url} refused the login for {who} ({exc}): check mqtt.username and mqtt.password"
        return f"{broker.url} refused the connection: {exc}"
    text = str(exc) or type(exc).__name__
    if "SSL" in text or "certificate" in text.lower():
        return (
            f"TLS handshake with {broker.url} failed: {text} "
            "(check mqtt.ca_file, mqtt.client_cert/client_key, and that the host name is in the certificate)"
        )
    if "timed out" in text:
        hint = "" if broker.tls else " (is it a TLS port? then use mqtts://)"
        return f"{broker.url} did not answer within {timeout:g} s{hint}"
    return f"cannot talk to the MQTT broker at {broker.url}: {text}"


async def _enter(client: aiomqtt.Client, connect_timeout: float) -> None:
    """``client.__aenter__()`` with its own CONNACK timeout, tidying up when that timeout strikes.

    aiomqtt keeps the socket of an attempt whose CONNACK never came, with a reader and a housekeeping
    task on the loop; its ``__aexit__`` sends DISCONNECT and closes them (nothing waits for an answer).
    """
    timeout, client.timeout = client.timeout, connect_timeout
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        if "timed out" in str(exc):
            client.timeout = 0.1
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        raise
    finally:
        client.timeout = timeout


@contextlib.asynccontextmanager
async def _connected(client: aiomqtt.Client, connect_timeout: float) -> AsyncIterator[aiomqtt.Client]:
    """``async with client``, except that a cancel during the connect lets the attempt settle first.

    aiomqtt connects in a worker thread; abandoning that attempt would leave its socket reader and
    housekeeping task on the loop. So a cancel waits for it, which is quick unless the broker does not
    answer: then paho's TCP connect timeout (5 s) or ``connect_timeout`` bounds it.
    """
    attempt = asyncio.ensure_future(_enter(client, connect_timeout))
    try:
        await asyncio.shield(attempt)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await attempt
            await client.__aexit__(None, None, None)
        raise
    try:
        yield client
    except BaseException as exc:
        with contextlib.suppress(aiomqtt.MqttError):  # keep the original error (or cancel) going
            await client.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await client.__aexit__(None, None, None)


async def probe_broker(cfg: MqttConfig, *, timeout_s: float = 5.0) -> str | None:
    """Connect once and disconnect: None if the broker accepts us, else what is wrong (`companion doctor`)."""
    try:
        broker = Broker.from_config(cfg)
    except MqttConfigError as exc:
        return str(exc)
    try:
        async with _connected(broker.client(identifier=_client_id("doctor")), connect_timeout=timeout_s):
            pass
    except (aiomqtt.MqttError, OSError) as exc:
        return describe_error(exc, broker, timeout_s)
    return None


def _client_id(role: str) -> str:
    return f"companion-{role}-{socket.gethostname()[:20]}-{secrets.token_hex(3)}"


class _Closed(Exception):
    """Raised by the publisher once the outbox is flushed at shutdown; ends the connection cleanly."""


class MqttBridge:
    """Bridges an :class:`EventHub` and a :class:`CommandHandler` to an MQTT broker.

    Use as ``async with MqttBridge(cfg, hub, handler):``; the bridge owns its tasks and ends them on exit,
    after trying for ``close_timeout_s`` to deliver what is still in the outbox.
    """

    def __init__(
        self,
        config: MqttConfig,
        hub: EventHub,
        commands: CommandHandler,
        *,
        client_id: str | None = None,
        outbox_size: int = 1000,
        keepalive_s: int = 30,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        close_timeout_s: float = 5.0,
    ) -> None:
        self._broker = Broker.from_config(config)
        try:
            self._topics = Topics(config.topic_prefix)
            self._discovery_prefix = (
                check_prefix("mqtt.discovery_prefix", config.discovery_prefix) if config.discovery else None
            )
        except TopicError as exc:
            raise MqttConfigError(str(exc)) from None
        if outbox_size < 1:
            raise ValueError(f"outbox_size must be at least 1, got {outbox_size}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff needs 0 < backoff_initial_s <= backoff_max_s")
        self._hub = hub
        self._commands = commands
        self._client_id = client_id or _client_id("bridge")
        self._outbox_size = outbox_size
        self._keepalive_s = keepalive_s
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._close_timeout_s = close_timeout_s

        self._stats = BridgeStats()
        self._outbox: deque[Outgoing] = deque()
        self._inflight: Outgoing | None = None
        self._retained: dict[str, Outgoing] = {}  # topic -> last retained message, re-sent on reconnect
        self._devices: dict[str, DeviceInfo] = {}
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._queue: asyncio.Queue[Event] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._ever_connected = False
        self._unlogged_drops = 0

    # ----- public surface

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def url(self) -> str:
        return self._broker.url

    @property
    def stats(self) -> BridgeStats:
        return replace(self._stats, queued=len(self._outbox))

    @property
    def devices(self) -> dict[str, DeviceInfo]:
        """Headsets seen so far, by device id."""
        return dict(self._devices)

    def set_device_info(self, info: DeviceInfo) -> None:
        """Name/model/firmware of a headset for HA (from its Device Information service); re-announces it."""
        if self._devices.get(info.id) != info:
            self._devices[info.id] = info
            self._announce(info)

    async def wait_connected(self) -> None:
        """Return once the bridge is connected and subscribed to the commands (wrap in a timeout)."""
        await self._subscribed.wait()

    async def __aenter__(self) -> MqttBridge:
        if self._tasks or self._closing.is_set():
            raise RuntimeError("an MqttBridge can be entered only once")
        self._queue = self._hub.subscriber()
        self._tasks = [
            asyncio.create_task(self._pump(self._queue), name="mqtt-pump"),
            asyncio.create_task(self._run(), name="mqtt-connection"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Flush the outbox (for at most ``close_timeout_s``), say ``offline``, disconnect, end all tasks."""
        if not self._tasks or self._closing.is_set():
            return
        pump, runner = self._tasks
        try:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            assert self._queue is not None
            while not self._queue.empty():  # what the hub handed over just before the close
                self._accept(self._queue.get_nowait())
            self._hub.unsubscribe(self._queue)
            self._closing.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(runner), self._close_timeout_s)
            except TimeoutError:
                log.warning("MQTT: broker did not take the last messages in %g s", self._close_timeout_s)
        finally:
            self._closing.set()  # also when this close is itself cancelled: no reconnect after this
            tasks = [*self._tasks, *self._command_tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._outbox:
            log.warning("MQTT: %d messages were not delivered before shutdown", len(self._outbox))

    # ----- events in, outbox

    async def _pump(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            self._accept(await queue.get())

    def _accept(self, event: Event) -> None:
        try:
            message = self._topics.event_message(event)
        except TopicError as exc:
            log.warning("MQTT: %s event not published: %s", event.type, exc)
            return
        dev = device_id(event.device)
        if dev not in self._devices:
            self._devices[dev] = DeviceInfo(event.device)
            self._announce(self._devices[dev])
        if message.retain:
            self._retained[message.topic] = message
        self._enqueue(message)

    def _announce(self, info: DeviceInfo) -> None:
        if self._discovery_prefix is not None:
            for message in discovery_messages(info, self._topics, self._discovery_prefix):
                self._enqueue(message)

    def _enqueue(self, message: Outgoing) -> None:
        self._outbox.append(message)
        while len(self._outbox) > self._outbox_size:
            oldest = 1 if self._outbox[0] is self._inflight else 0  # never the one awaiting its PUBACK
            del self._outbox[oldest]
            self._stats.dropped += 1
            if not self._unlogged_drops:
                log.warning("MQTT: outbox full (%d messages), dropping the oldest", self._outbox_size)
            self._unlogged_drops += 1
        self._wake.set()

    # ----- connection

    async def _run(self) -> None:
        failures = 0
        last_error: str | None = None
        while not self._closing.is_set():
            connected, error = await self._connect_once()
            if self._closing.is_set():
                return
            if connected:
                failures = 0
            delay = min(self._backoff[1], self._backoff[0] * 2 ** min(failures, 30))
            delay *= random.uniform(0.75, 1.0)
            failures += 1
            level = logging.WARNING if error != last_error or failures % 10 == 0 else logging.DEBUG
            log.log(level, "MQTT: %s; retrying in %.2f s (%d waiting)", error, delay, len(self._outbox))
            last_error = error
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _connect_once(self) -> tuple[bool, str | None]:
        """One connection from connect to loss (or clean close): (did it connect, what went wrong)."""
        will = aiomqtt.Will(self._topics.status, OFFLINE, qos=1, retain=True)
        client = self._broker.client(
            identifier=self._client_id, will=will, keepalive=self._keepalive_s, timeout=self._timeout_s
        )
        connected = False
        error: str | None = None
        try:
            async with _connected(client, self._connect_timeout_s):
                connected = True
                self._on_connected()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._receive(client))
                    tasks.create_task(self._send(client))
        except* _Closed:
            pass
        except* (aiomqtt.MqttError, OSError) as group:
            exc = group.exceptions[0]
            if connected:  # aiomqtt's "Disconnected during message iteration" hides the reason
                error = f"lost the connection to {self._broker.url} ({exc.__cause__ or exc})"
            else:
                error = describe_error(exc, self._broker, self._connect_timeout_s)
        except* Exception as group:  # a bug here must not take the service down: log it and reconnect
            log.error("MQTT: unexpected error in the bridge", exc_info=group)
            error = f"unexpected error: {group.exceptions[0]!r}"
        self._stats.connected = False
        self._subscribed.clear()
        if error is not None:
            self._stats.last_error = error
            if not connected:
                self._stats.connect_failures += 1
        return connected, error

    def _on_connected(self) -> None:
        self._stats.connected = True
        self._stats.last_error = None
        if self._ever_connected:
            self._stats.reconnects += 1
        self._ever_connected = True
        log.info("MQTT: connected to %s (%d messages waiting)", self._broker.url, len(self._outbox))
        if self._unlogged_drops:
            log.warning("MQTT: %d messages were dropped while the broker was away", self._unlogged_drops)
            self._unlogged_drops = 0

    def _connect_messages(self) -> list[Outgoing]:
        """What a restarted broker may have forgotten: status, discovery, the retained state."""
        messages = [Outgoing(self._topics.status, ONLINE, retain=True)]
        if self._discovery_prefix is not None:
            for info in self._devices.values():
                messages += discovery_messages(info, self._topics, self._discovery_prefix)
        pending = {m.topic for m in self._outbox}  # newer values are on their way anyway
        messages += [m for topic, m in self._retained.items() if topic not in pending]
        return messages

    async def _send(self, client: aiomqtt.Client) -> None:
        for message in self._connect_messages():
            await self._publish(client, message)
        while True:
            while not self._outbox:
                if self._closing.is_set():
                    await self._publish(client, Outgoing(self._topics.status, OFFLINE, retain=True))
                    raise _Closed
                self._wake.clear()
                await self._wake.wait()
            message = self._inflight = self._outbox[0]
            try:
                await self._publish(client, message)
            except ValueError as exc:  # paho refuses the message itself: retrying cannot help
                log.error("MQTT: cannot publish to %s: %s (dropped)", message.topic, exc)
                self._stats.dropped += 1
            finally:
                self._inflight = None
            if self._outbox and self._outbox[0] is message:
                self._outbox.popleft()

    async def _publish(self, client: aiomqtt.Client, message: Outgoing) -> None:
        await client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        self._stats.published += 1

    # ----- commands in

    async def _receive(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self._topics.command_filter, qos=1)
        if self._discovery_prefix is not None:  # HA's birth message: it restarted, announce again
            await client.subscribe(f"{self._discovery_prefix}/status", qos=1)
        self._subscribed.set()
        async for message in client.messages:
            self._on_message(message)

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        if self._discovery_prefix is not None and topic == f"{self._discovery_prefix}/status":
            if message.payload in (b"online", "online"):
                for info in self._devices.values():
                    self._announce(info)
            return
        if message.retain:
            self._bad(f"{topic}: retained command ignored (publish commands without the retain flag)")
            return
        payload = message.payload if isinstance(message.payload, bytes | str) else str(message.payload)
        try:
            command = self._topics.parse_command(topic, payload)
        except BadCommand as exc:
            self._bad(str(exc))
            return
        self._stats.commands += 1
        task = asyncio.create_task(self._execute(command), name=f"mqtt-command-{command.name}")
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    def _bad(self, reason: str) -> None:
        self._stats.bad_commands += 1
        log.warning("MQTT: bad command: %s", reason)

    async def _execute(self, command: Command) -> None:
        handler = self._commands
        try:
            match command.name:
                case "say":
                    await handler.say(command.device, command.text)
                case "listen":
                    await handler.listen(command.device, command.on)
                case "stop":
                    await handler.stop(command.device)
                case "volume":
                    await handler.set_volume(command.device, command.percent)
        except Exception as exc:
            self._stats.command_errors += 1
            log.warning(
                "MQTT: %s for %s failed: %r", command.name, command.device, exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )  # fmt: skip
