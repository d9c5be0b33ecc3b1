"""The MQTT bus: session events out, commands in, Home Assistant discovery.

``topics`` and ``discovery`` are the wire format (no I/O, no aiomqtt needed); ``mqtt`` holds the bridge
(``MqttBridge``, ``probe_broker``) and needs the ``mqtt`` extra (``pip install 'companion[mqtt]'``).
"""

from companion.bus.discovery import DeviceInfo
from companion.bus.topics import BadCommand, Command, Outgoing, TopicError, Topics, device_id

__all__ = ["BadCommand", "Command", "DeviceInfo", "Outgoing", "TopicError", "Topics", "device_id"]
