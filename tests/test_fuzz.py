"""Fuzzing every parser that takes input from outside: radio packets and control messages, the control
socket, MQTT commands, the config (file and environment), the headset registry, WAV headers, redaction.

Each test states its invariant: the parser either returns a value that obeys the documented limits or
raises its own typed error, never anything else. The example counts add up to about 12,000 per run and
take well under a minute of CPU (see docs/reliability.md, Fuzzing).
"""

from __future__ import annotations

import io
import json
import string
import tempfile
import wave
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.bus.topics import MAX_SAY_CHARS, BadCommand, Topics
from companion.config import ConfigError, load_config
from companion.config_checks import config_problems
from companion.control_socket import MAX_LINE, RequestError, parse_request
from companion.protocol import (
    Capabilities,
    CodecId,
    FlowStatus,
    Profile,
    ProtocolError,
    Reassembler,
    parse_battery,
    parse_omi_button,
    parse_omi_codec,
    parse_packet,
)
from companion.protocol.control import parse_omi_features
from companion.protocol.messages import decode_control
from companion.redact import redact, redact_url
from companion.registry import RegistryError, load_known

FAST = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

# ----- bytes off the air

PARSERS = {
    "packet-companion": lambda b: parse_packet(b, Profile.COMPANION),
    "packet-omi": lambda b: parse_packet(b, Profile.OMI),
    "control": decode_control,
    "flow": FlowStatus.decode,
    "capabilities": Capabilities.decode,
    "battery": parse_battery,
    "omi-button": parse_omi_button,
    "omi-codec": parse_omi_codec,
    "omi-features": parse_omi_features,
}


@settings(max_examples=3000, **FAST)
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=512))
def test_radio_parsers_raise_only_protocol_errors(name: str, data: bytes) -> None:
    try:
        PARSERS[name](data)
    except ProtocolError:
        pass


@settings(max_examples=1000, **FAST)
@given(st.sampled_from(sorted(PARSERS)), st.binary(min_size=1, max_size=64), st.data())
def test_radio_parsers_with_a_valid_type_byte(name: str, data: bytes, draw: st.DataObject) -> None:
    """Random bodies behind each known control message type, where the interesting branches are."""
    from companion.protocol import Msg

    head = bytes([draw.draw(st.sampled_from([int(m) for m in Msg]))])
    try:
        PARSERS[name](head + data)
    except ProtocolError:
        pass


@settings(max_examples=300, **FAST)
@given(
    st.lists(st.binary(max_size=80), max_size=30),
    st.sampled_from(list(Profile)),
    st.sampled_from([CodecId.PCM16_16K, CodecId.MULAW_16K, CodecId.OPUS_16K_20MS]),
)
def test_reassembler_accounts_for_every_packet(
    packets: list[bytes], profile: Profile, codec: CodecId
) -> None:
    r = Reassembler(profile, codec)
    frames = [f for p in packets for f in r.feed(p)] + r.flush()
    c = r.counters
    assert c.packets_received + c.packets_duplicate + c.packets_late + c.packets_malformed == len(packets)
    assert all(f.payload is None or len(f.payload) <= 80 * len(packets) for f in frames)  # None: lost


# ----- the control socket

# Cheap to generate (a recursive strategy over floats and long text costs more than the parser itself);
# the sampled leaves are the values that once broke things: [1], 1e400 (inf), nan, 2001 characters.
_LEAF = st.one_of(
    st.sampled_from([None, True, False, 0, 1, -1, 50, 100, 101, 49.5, -0.0, 1e400, float("nan"), 2**70]),
    st.sampled_from(["", " ", "hi", "a" * 2000, "a" * 2001, "\u0000", "é", [1], {}, [[[]]], {"a": {"b": 1}}]),
    st.integers(-1000, 1000),
    st.text(alphabet=string.printable, max_size=8),
)
_JSON = _LEAF | st.lists(_LEAF, max_size=3) | st.dictionaries(st.sampled_from("abc"), _LEAF, max_size=2)
_FIELDS = ["cmd", "device", "text", "on", "percent", "wait"]


@settings(max_examples=2000, **FAST)
@given(
    st.sampled_from(["status", "say", "stop", "listen", "volume", "reboot", ""]),
    st.dictionaries(st.sampled_from([*_FIELDS[1:], "extra", ""]), _JSON, max_size=5),
)
def test_control_requests_are_valid_or_refused(cmd: str, fields: dict[str, object]) -> None:
    line = json.dumps({"cmd": cmd, **fields}).encode()
    try:
        req = parse_request(line).model_dump()
    except RequestError:
        return
    assert req["cmd"] == cmd and set(req) <= set(_FIELDS)
    if "text" in req:
        assert 1 <= len(req["text"]) <= MAX_SAY_CHARS
    if "percent" in req:
        assert isinstance(req["percent"], int) and 0 <= req["percent"] <= 100
    for flag in ("on", "wait"):
        if flag in req:
            assert isinstance(req[flag], bool)


@settings(max_examples=1000, **FAST)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_control_request_bytes_never_crash(line: bytes) -> None:
    try:
        parse_request(line)
    except RequestError:
        pass


@settings(max_examples=50, **FAST)
@given(st.integers(min_value=1, max_value=MAX_LINE // 2 - 2))
def test_control_request_nesting_of_any_depth_is_refused(depth: int) -> None:
    try:
        parse_request(b"[" * depth + b"]" * depth)
    except RequestError:
        pass


# ----- MQTT commands

TOPICS = Topics("companion")


@settings(max_examples=2000, **FAST)
@given(
    st.sampled_from(["say", "listen", "stop", "volume", "sing", ""]),
    st.text(alphabet=string.ascii_lowercase + "_#+/", max_size=12),
    st.binary(max_size=100)
    | st.text(max_size=40).map(str.encode)
    | st.sampled_from(["a" * 2000, " a" * 1000, "a" * 2001, "1e400", "nan", "-0", "100.4", "on"]).map(
        str.encode
    ),
)
def test_mqtt_commands_are_valid_or_refused(name: str, dev: str, payload: bytes) -> None:
    topic = f"companion/{dev}/cmd/{name}"
    try:
        cmd = TOPICS.parse_command(topic, payload)
    except BadCommand as exc:
        assert str(exc).startswith(topic)
        return
    assert cmd.name == name and cmd.device == dev
    if name == "say":
        assert 1 <= len(cmd.text) <= MAX_SAY_CHARS
    if name == "volume":
        assert 0 <= cmd.percent <= 100


# ----- config

_KEYS = {
    "turn": ["end_silence_ms", "speculate_ms", "fallback_ms", "unsure_ms", "max_utterance_s"],
    "llm": ["backend", "base_url", "timeout_s", "api_key", "max_tokens"],
    "mqtt": ["url", "password", "topic_prefix", "ca_file"],
    "tts": ["engine", "base_url"],
    "link": ["allow", "mic_codec"],
    "session": ["mode", "volume", "earcons"],
}
_VALUES = st.one_of(
    st.integers(-10, 20000).map(str),
    st.sampled_from(["openai", "skills", "piper", "auto", "true", "0", "1e400", "nan", '["a"]', "[1]", "{"]),
    st.sampled_from(["http://x", "mqtt://h:1883", "mqtts://u:p@h", "ftp://x", "http://[::1", "http://h:0"]),
    st.text(max_size=20),
)


@settings(max_examples=1000, **FAST)
@given(st.dictionaries(st.sampled_from([(s, k) for s, ks in _KEYS.items() for k in ks]), _VALUES, max_size=6))
def test_config_from_the_environment_loads_whole_or_names_the_key(pairs: dict[tuple[str, str], str]) -> None:
    environ = {f"COMPANION_{s.upper()}__{k.upper()}": v for (s, k), v in pairs.items() if "\0" not in v}
    try:
        cfg = load_config(
            None, {**environ, "COMPANION_CONFIG": "/nonexistent/config.toml"}, warn=lambda _: None
        )
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith("environment (") and line.count(": ") >= 2 for line in lines)
        return
    assert config_problems(cfg) == []  # what loads is consistent: nothing fails later


@settings(max_examples=300, **FAST)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_files_load_or_give_one_clear_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.toml"
        path.write_bytes(content)
        try:
            load_config(path, {}, warn=lambda _: None)
        except ConfigError as exc:
            assert str(exc).startswith(str(path))


# ----- the headset registry


@settings(max_examples=300, **FAST)
@given(
    st.binary(max_size=200)
    | st.lists(
        st.dictionaries(st.sampled_from(["address", "name", "profile", "paired_at"]), _LEAF, max_size=4)
    )
    .map(json.dumps)
    .map(str.encode)
)
def test_the_registry_loads_or_is_reported_damaged(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "headsets.json"
        path.write_bytes(content)
        try:
            known = load_known(path)
        except RegistryError as exc:
            assert str(exc).startswith(str(path))
            return
        assert all(k == v.address and isinstance(v.paired_at, float) for k, v in known.items())


# ----- WAV headers


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, np.int16).tobytes())
    return buf.getvalue()


_GOOD_WAV = _wav_bytes()


@settings(max_examples=300, **FAST)
@given(
    st.lists(st.tuples(st.integers(0, 43), st.integers(0, 255)), min_size=1, max_size=6), st.integers(0, 3300)
)
def test_damaged_wav_headers_read_or_give_an_audio_error(edits: list[tuple[int, int]], cut: int) -> None:
    from companion.audio.wav import AudioFileError, load_wav

    data = bytearray(_GOOD_WAV[: len(_GOOD_WAV) - cut])
    for at, value in edits:
        if at < len(data):
            data[at] = value
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.wav"
        path.write_bytes(bytes(data))
        try:
            pcm = load_wav(path)
        except AudioFileError:
            return
    assert pcm.dtype == np.int16 and 0 < len(pcm) <= 100 * 16000  # never the size a bad rate implies


# ----- redaction

_SECRET = st.text(alphabet=string.ascii_letters + string.digits + "!$&()*,;=._~-%", min_size=4, max_size=30)


@settings(max_examples=1000, **FAST)
@given(
    st.sampled_from(["mqtt", "mqtts", "http", "https", "ftp"]),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=10),
    _SECRET,
    st.sampled_from(["host", "10.0.0.1", "[::1]", "h:8080"]),
    st.text(max_size=20),
)
def test_url_passwords_never_survive_redaction(
    scheme: str, user: str, secret: str, host: str, tail: str
) -> None:
    url = f"{scheme}://{user}:{secret}@{host}/v1"
    assert redact_url(url) == f"{scheme}://***@{host}/v1"
    assert redact(f"error talking to {url} {tail}").startswith(f"error talking to {scheme}://***@{host}/v1")
