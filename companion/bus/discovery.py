"""Home Assistant MQTT discovery: the retained config messages that make each headset a HA device.

Every headset gets ``<discovery_prefix>/<component>/<node>/<object>/config`` messages for: a battery
sensor, a state sensor, last transcript and last reply sensors, a ``text`` entity that speaks what is
typed into it, "stop speaking" and "listen" buttons and a volume ``number``. An entity is available only
while both the bridge (``<prefix>/status``) and the headset (``<prefix>/<dev>/availability``) are online.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from companion import __version__
from companion.bus.topics import OFFLINE, ONLINE, Outgoing, Topics, device_id, safe_id

# HA keeps at most 255 characters of a sensor state; the full text stays in the attributes.
_TEXT_STATE = "{{ value_json.text[:255] }}"
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What HA shows about a headset; the service fills in what the Device Information service says."""

    address: str
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    sw_version: str | None = None

    @property
    def id(self) -> str:
        return device_id(self.address)


def node_id(topics: Topics, dev: str) -> str:
    """Node id and unique-id stem: the prefix is part of it so two bridges never collide."""
    return f"{safe_id(topics.prefix)}_{dev}"


def device_block(info: DeviceInfo, topics: Topics) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [node_id(topics, info.id)],
        "name": info.name or f"Headset {info.address}",
        "manufacturer": info.manufacturer or "unknown",
        "model": info.model or "BLE headset",
    }
    if _MAC.match(info.address):  # lets HA merge it with the same headset seen by its own Bluetooth
        block["connections"] = [["bluetooth", info.address.upper()]]
    if info.sw_version:
        block["sw_version"] = info.sw_version
    return block


def discovery_messages(info: DeviceInfo, topics: Topics, discovery_prefix: str) -> list[Outgoing]:
    """The retained config messages for one headset."""
    dev = info.id
    node = node_id(topics, dev)
    common = {
        "device": device_block(info, topics),
        "origin": {"name": "companion", "sw_version": __version__},
        "availability": [
            {"topic": topic, "payload_available": ONLINE, "payload_not_available": OFFLINE}
            for topic in (topics.status, topics.availability(dev))
        ],
        "availability_mode": "all",
        "qos": 1,
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "battery",
            {
                "name": "Battery",
                "state_topic": topics.battery(dev),
                "device_class": "battery",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            },
        ),
        ("sensor", "state", {"name": "State", "state_topic": topics.state(dev), "icon": "mdi:headset"}),
        (
            "sensor",
            "transcript",
            {
                "name": "Last transcript",
                "state_topic": topics.transcript(dev),
                "value_template": _TEXT_STATE,
                "json_attributes_topic": topics.transcript(dev),
                "icon": "mdi:account-voice",
            },
        ),
        (
            "sensor",
            "reply",
            {
                "name": "Last reply",
                "state_topic": topics.reply(dev),
                "value_template": _TEXT_STATE,
                "json_attributes_topic": topics.reply(dev),
                "icon": "mdi:message-reply-text",
            },
        ),
        (
            "text",
            "say",
            {
                "name": "Say",
                "command_topic": topics.command(dev, "say"),
                "max": 255,
                "icon": "mdi:bullhorn",
            },
        ),
        (
            "button",
            "stop",
            {
                "name": "Stop speaking",
                "command_topic": topics.command(dev, "stop"),
                "payload_press": "stop",
                "icon": "mdi:stop",
            },
        ),
        (
            "button",
            "listen",
            {
                "name": "Listen",
                "command_topic": topics.command(dev, "listen"),
                "payload_press": "start",
                "icon": "mdi:microphone",
            },
        ),
        (
            "number",
            "volume",
            {
                "name": "Volume",
                "command_topic": topics.command(dev, "volume"),
                "min": 0,
                "max": 100,
                "step": 1,
                "unit_of_measurement": "%",
                "mode": "slider",
                "icon": "mdi:volume-high",
            },
        ),
    ]
    out = []
    for component, obj, fields in entities:
        config = {**fields, "unique_id": f"{node}_{obj}", **common}
        out.append(
            Outgoing(
                f"{discovery_prefix}/{component}/{node}/{obj}/config",
                json.dumps(config, separators=(",", ":")),
                retain=True,
            )
        )
    return out
