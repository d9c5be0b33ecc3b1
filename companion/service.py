"""`companion run`: the background service.

It supervises every allowed headset (remembered with `companion pair`, named in ``link.allow``, or — with
``--sim`` and no allowlist — every virtual headset it finds), one conversation session each, sharing one
loaded speech model and one voice (each engine runs its inference in its own worker thread, first come
first served, so no headset starves another). Headsets may come and go: a scan loop (re)starts a device
task for each allowed headset in range; a link that drops reconnects by itself. Events go to MQTT when
configured; the local control socket serves `companion devices` and `companion say`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from companion.bus.topics import device_id
from companion.carryover import Carryover
from companion.commands import DeviceCommands
from companion.config import Config
from companion.control_socket import ControlServer
from companion.engines import Engines
from companion.events import Availability, ErrorEvent, EventHub
from companion.link.ble import BleHeadsetLink, BleLinkOptions, FoundHeadset, describe_ble_error, scan_headsets
from companion.protocol import codec_by_name
from companion.registry import KnownHeadset, RegistryError, load_known
from companion.session import Session

if TYPE_CHECKING:
    from companion.link.local import LocalAudioLink

log = logging.getLogger(__name__)

RESCAN_S = 2.0


@dataclass
class _Device:
    found: FoundHeadset
    task: asyncio.Task[None]
    session: Session | None = None
    link: BleHeadsetLink | None = None
    failures: int = 0
    info: dict[str, object] = field(default_factory=dict)
    carry: Carryover = field(default_factory=Carryover)  # what the next session of this headset continues


class Service:
    """Owns engines, sessions, the MQTT bridge and the control socket; run it with :meth:`run`."""

    def __init__(self, config: Config, *, sim: bool = False, engines: Engines | None = None) -> None:
        self.config = config
        self.sim = sim
        self.hub = EventHub()
        self.engines = engines
        self.devices: dict[str, _Device] = {}
        self._scanner_backend = None
        self._client_backend = None
        if sim:
            from companion.link.sim import sim_backends

            self._scanner_backend, self._client_backend = sim_backends()
        self.ready = asyncio.Event()
        self._scan_error: str | None = None
        self._known: dict[str, KnownHeadset] = {}
        self._registry_error: str | None = None
        self.commands = DeviceCommands(
            lambda device: self.session_for(device).commands,
            lambda: {"devices": self.status(), "sim": self.sim},
        )

    # -- who may connect ---------------------------------------------------------------------------
    def allowed(self, found: FoundHeadset) -> bool:
        allow = {a.upper() for a in self.config.link.allow}
        known = self._known_headsets()
        if found.address.upper() in known or found.address.upper() in allow or found.name.upper() in allow:
            return True
        return self.sim and not allow and not known

    def _known_headsets(self) -> dict[str, KnownHeadset]:
        """The registry; if it is damaged while running, the last good copy (and one warning)."""
        try:
            self._known, self._registry_error = load_known(), None
        except RegistryError as exc:
            if str(exc) != self._registry_error:
                log.warning("%s (still serving the headsets paired before)", exc)
            self._registry_error = str(exc)
        return self._known

    # -- running -----------------------------------------------------------------------------------
    async def run(self, progress: Callable[[str], None] | None = None) -> None:
        report = progress or (lambda m: log.info("%s", m))
        own_engines = self.engines is None
        if self.engines is None:
            self.engines = await Engines.load(self.config, report)
        bridge_cm = self._bridge()
        try:
            async with ControlServer(self.commands.handle), bridge_cm as bridge:
                self._bridge_obj = bridge
                report("companion service running" + (" with virtual headsets" if self.sim else ""))
                self.ready.set()
                await self._scan_loop()
        finally:
            await self._stop_devices()
            if own_engines and self.engines is not None:
                await self.engines.aclose()

    def _bridge(self) -> contextlib.AbstractAsyncContextManager:
        if not self.config.mqtt.url:
            return contextlib.nullcontext()
        from companion.bus.mqtt import MqttBridge

        return MqttBridge(self.config.mqtt, self.hub, self.commands)

    async def _scan_loop(self) -> None:
        while True:
            try:
                found = await scan_headsets(
                    min(self.config.link.scan_timeout_s, RESCAN_S), backend=self._scanner_backend
                )
            except Exception as exc:  # no adapter, BlueZ down: keep serving what we have, say why once
                message = describe_ble_error(exc)
                (log.debug if message == self._scan_error else log.warning)("scan failed: %s", message)
                self._scan_error = message
                found = []
            else:
                self._scan_error = None
            for headset in found:
                key = headset.address.upper()
                dev = self.devices.get(key)
                if dev is not None and not dev.task.done():
                    continue
                if not self.allowed(headset):
                    continue
                task = asyncio.create_task(self._run_device(headset), name=f"device-{key}")
                self.devices[key] = _Device(headset, task, failures=dev.failures if dev else 0)
                if dev is not None:
                    self.devices[key].carry = dev.carry
            await asyncio.sleep(RESCAN_S)

    def _mode(self) -> str:
        """How sessions listen: the configured mode, else the wake phrase (and taps) on real headsets and
        hands-free on simulated ones."""
        mode = self.config.session.mode
        return mode or ("hands_free" if self.sim else "wake")

    async def _run_device(self, found: FoundHeadset) -> None:
        dev = self.devices[found.address.upper()]
        assert self.engines is not None
        link_cfg = self.config.link
        options = BleLinkOptions(
            mic_codec=codec_by_name(link_cfg.mic_codec) if link_cfg.mic_codec else None,
            speaker_codec=codec_by_name(link_cfg.speaker_codec) if link_cfg.speaker_codec else None,
            hands_free=self._mode() in ("hands_free", "wake"),
            reconnect_backoff_max_s=link_cfg.reconnect_backoff_max_s,
        )
        speaker = None
        try:
            async with BleHeadsetLink(
                found.device,
                backend=self._client_backend,
                scanner_backend=self._scanner_backend,
                options=options,
            ) as link:
                dev.link = link
                dev.failures = 0
                self._announce(link)
                if self.config.satellite.enabled:  # Home Assistant runs the pipeline (docs/home-assistant.md)
                    from companion.wyoming.satellite import serve_satellite

                    await serve_satellite(
                        link, self.config.satellite, list(self.devices).index(found.address.upper())
                    )
                    return
                if not link.info.has_speaker:  # an Omi pendant: replies play on this machine
                    speaker = await _open_local_speaker(link.info.name)
                session = Session.from_engines(
                    self.engines, link, self.config, hub=self.hub, speaker=speaker, mode=self._mode()
                )
                dev.carry.restore(session)
                dev.session = session
                log.info("serving %s (%s)", link.info.name, link.info.address)
                await session.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            dev.failures += 1
            message = _describe(exc)
            log.warning("headset %s: %s (restarting it when it is seen again)", found.address, message)
            self.hub.publish(ErrorEvent(found.address, message))
            self.hub.publish(Availability(found.address, False, message))
        finally:
            if dev.session is not None:
                dev.carry = Carryover.of(dev.session)
            dev.session = None
            dev.link = None
            if speaker is not None:
                await speaker.aclose()

    def _announce(self, link: BleHeadsetLink) -> None:
        bridge = getattr(self, "_bridge_obj", None)
        if bridge is None:
            return
        from companion.bus.discovery import DeviceInfo

        caps = link.info.capabilities
        bridge.set_device_info(
            DeviceInfo(
                link.info.address,
                name=link.info.name,
                manufacturer="companion",
                model=f"{link.info.profile} headset",
                sw_version=caps.firmware_version if caps else None,
            )
        )

    async def _stop_devices(self) -> None:
        tasks = [d.task for d in self.devices.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- commands ----------------------------------------------------------------------------------
    def session_for(self, device: str | None) -> Session:
        live = [(k, d, d.session) for k, d in self.devices.items() if d.session is not None]
        if not device:
            if len(live) == 1:
                return live[0][2]
            raise LookupError(f"{len(live)} headsets connected: name one with --device")
        for key, d, session in live:
            if device.upper() in (key, d.found.name.upper()) or device == device_id(key):
                return session
        raise LookupError(
            f"no connected headset {device!r}; connected: {', '.join(k for k, _, _ in live) or 'none'}"
        )

    def status(self) -> list[dict[str, object]]:
        rows = []
        for key, d in self.devices.items():
            s, link = d.session, d.link
            rows.append(
                {
                    "address": key,
                    "name": d.found.name,
                    "profile": str(d.found.profile),
                    "connected": bool(link and link.connected),
                    "state": s.state.name.lower() if s else "offline",
                    "battery": link.info.battery if link else d.found.battery,
                    "turns": s.turns if s else 0,
                    "mic_codec": link.info.mic_codec if link else None,
                    "counters": link.counters() if link else None,
                }
            )
        return rows


async def _open_local_speaker(name: str) -> LocalAudioLink | None:
    """Replies for a headset without a speaker (omi) play on this machine's sound device, when it has one;
    None (and a warning) when none is usable. The caller closes it."""
    from companion.link.base import LinkError

    try:
        from companion.link.local import LocalAudioLink, LocalAudioOptions

        link = LocalAudioLink(name=f"{name} (local speaker)", options=LocalAudioOptions(capture=False))
        await link.__aenter__()
    except (ImportError, LinkError, OSError) as exc:
        log.warning(
            "%s has no speaker and no local sound device is usable (%s): replies are not played", name, exc
        )
        return None
    return link


def _describe(exc: BaseException) -> str:
    """One line for a device task's failure (a session's task group wraps its errors in a group)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return str(exc) or type(exc).__name__


async def run_service(config: Config, *, sim: bool, progress: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    service = Service(config, sim=sim)
    task = asyncio.create_task(service.run(progress), name="companion-service")
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        progress("companion service stopped")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
