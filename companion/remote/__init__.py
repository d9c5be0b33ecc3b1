"""Speech engines on other machines, several endpoints each, with health checks and failover.

- `pool.py`: `EndpointPool` — which endpoint to try next, who is healthy, background health probes.
- `clients.py`: one request to one endpoint: Wyoming STT/TTS (`wyoming` package) and OpenAI-compatible
  `/v1/audio/transcriptions`.
- `engines.py`: `RemoteSTT` and `RemoteTTS`, drop-in for `WhisperSTT` and a `TTSEngine`.
- `streaming.py`: `RemoteSTT.open_stream()`, an utterance sent while it is spoken, with failover.
- `factory.py`: both from the configuration. `errors.py`: what the session catches (no dependencies).

Nothing is imported here, so `companion.remote.errors` works without the `wyoming` package.
"""
