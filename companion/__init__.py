"""companion: an offline-first voice assistant for BLE wearables."""

__version__ = "0.1.0"
