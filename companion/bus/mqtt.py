"""The MQTT bridge: session events out to a broker, commands in, Home Assistant discovery.

Events from the :class:`~companion.events.EventHub` go into a bounded, ordered outbox. One publisher
sends the outbox head with QoS 1 and removes it only once the broker has acknowledged it (aiomqtt's
``publish`` awaits the PUBACK), so a broker that goes away loses nothing: messages wait, in order, and
go out after the reconnect. When the outbox is full the oldest message is dropped and counted.
Delivery is at-least-once: a message whose PUBACK was lost with the connection is sent again.

The bridge never stops the service: connection failures are logged and retried with capped exponential
backoff. On every (re)connect it subscribes to the commands again and re-publishes what a broker without
persistence may have forgotten: its ``online`` status, the discovery configs and the retained state.

The broker settings, error text and connect shims live in ``broker.py``, the outbox in ``outbox.py``; their
public names stay importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Protocol

import aiomqtt

from companion.aio import Backoff, TaskSet, wait_backoff
from companion.bus.broker import (
    DEFAULT_PORTS,
    Broker,
    MqttConfigError,
    connection,
    describe_error,
    make_client_id,
    probe_broker,
)
from companion.bus.discovery import DeviceInfo, discovery_messages
from companion.bus.outbox import Outbox
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
from companion.events import Event, EventHub

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PORTS",
    "BridgeStats",
    "Broker",
    "CommandHandler",
    "MqttBridge",
    "MqttConfigError",
    "describe_error",
    "probe_broker",
]


class CommandHandler(Protocol):
    """What the service does with commands from MQTT; ``device`` is the :func:`device_id`.

    The service passes its `companion.commands.DeviceCommands`, the dispatcher the control socket uses
    too, so a command does the same whichever way it arrives."""

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
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff needs 0 < backoff_initial_s <= backoff_max_s")
        self._hub = hub
        self._commands = commands
        self._client_id = client_id or make_client_id("bridge")
        self._keepalive_s = keepalive_s
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = Backoff(wait_backoff(backoff_initial_s, backoff_max_s))
        self._close_timeout_s = close_timeout_s

        self._stats = BridgeStats()
        self._outbox = Outbox(outbox_size)
        self._devices: dict[str, DeviceInfo] = {}
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._queue: asyncio.Queue[Event] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._command_tasks = TaskSet("mqtt-command")
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
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, self._command_tasks.aclose(), return_exceptions=True)
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
            self._outbox.remember(message)
        self._enqueue(message)

    def _announce(self, info: DeviceInfo) -> None:
        if self._discovery_prefix is not None:
            for message in discovery_messages(info, self._topics, self._discovery_prefix):
                self._enqueue(message)

    def _enqueue(self, message: Outgoing) -> None:
        dropped = self._outbox.add(message)
        if dropped:
            self._stats.dropped += dropped
            if not self._unlogged_drops:
                log.warning("MQTT: outbox full (%d messages), dropping the oldest", self._outbox.size)
            self._unlogged_drops += dropped
        self._wake.set()

    # ----- connection

    async def _run(self) -> None:
        last_error: str | None = None
        while not self._closing.is_set():
            connected, error = await self._connect_once()
            if self._closing.is_set():
                return
            if connected:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            failures = self._backoff.failures
            level = logging.WARNING if error != last_error or failures % 10 == 0 else logging.DEBUG
            log.log(level, "MQTT: %s; retrying in %.2f s (%d waiting)", error, delay, len(self._outbox))
            last_error = error
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closing.wait()

    async def _connect_once(self) -> tuple[bool, str | None]:
        """One connection from connect to loss (or clean close): (did it connect, what went wrong)."""
        will = aiomqtt.Will(self._topics.status, OFFLINE, qos=1, retain=True)
        client = self._broker.client(
            identifier=self._client_id, will=will, keepalive=self._keepalive_s, timeout=self._timeout_s
        )
        connected = False
        error: str | None = None
        try:
            async with connection(client, self._connect_timeout_s):
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
        messages += self._outbox.retained_to_resend()  # less those with newer values on their way
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
            head = self._outbox.next()
            assert head is not None
            try:
                await self._publish(client, head)
            except ValueError as exc:  # paho refuses the message itself: retrying cannot help
                log.error("MQTT: cannot publish to %s: %s (dropped)", head.topic, exc)
                self._stats.dropped += 1
            except BaseException:
                self._outbox.failed()  # stays at the head, sent again after the reconnect
                raise
            self._outbox.done(head)

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
        if not self._command_tasks.closed:
            self._command_tasks.spawn(self._execute(command), command.name)

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
