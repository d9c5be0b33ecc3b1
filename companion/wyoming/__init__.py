"""Wyoming, Home Assistant's peer-to-peer voice protocol (the `wyoming` package): companion as a server.

- `server.py`: `companion serve` — speech recognition and the voice for any Wyoming client.
- `handler.py`: one client connection: describe, transcribe, synthesize.
- `info.py`: what `describe` answers.
- `audio.py`: the client's audio format to 16 kHz mono int16 and back into Wyoming chunks.

The wire format is the `wyoming` package's own (events, `AsyncEventHandler`, `AsyncServer`); nothing here
re-implements it.
"""
