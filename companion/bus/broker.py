"""Where and how the MQTT bridge connects: the broker settings (URL, login, TLS files) validated from the
config, error text that names the setting to fix, and aiomqtt connect shims that leave nothing behind on the
loop when an attempt times out or is cancelled. ``probe_broker`` is `companion doctor`'s one-shot check.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from companion.config import MqttConfig
from companion.config_checks import check_mqtt_url

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_AUTH_CODES = {4, 5, 134, 135}  # MQTT 3.1.1 CONNACK codes and their MQTT 5 reason codes


class MqttConfigError(ValueError):
    """An MQTT setting that cannot work (bad URL, missing TLS file); the message names the key."""


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
async def connection(client: aiomqtt.Client, connect_timeout: float) -> AsyncIterator[aiomqtt.Client]:
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
        async with connection(broker.client(identifier=make_client_id("doctor")), connect_timeout=timeout_s):
            pass
    except (aiomqtt.MqttError, OSError) as exc:
        return describe_error(exc, broker, timeout_s)
    return None


def make_client_id(role: str) -> str:
    return f"companion-{role}-{socket.gethostname()[:20]}-{secrets.token_hex(3)}"
