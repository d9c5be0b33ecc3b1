"""``python -m firmware_sim`` in its own process: a host in this process finds its headsets on the default
socket path (here redirected with $COMPANION_SIM_SOCKET), connects through bleak and gets the mic audio."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bleak import BleakScanner

from firmware_sim import SOCKET_ENV, SimScanner, SimWorld, default_socket_path
from tests.fixtures.sim import REPO_ROOT, connect_host, find_offset, other_tasks, snr_db, until
from tests.fixtures.speech import Utterance


@pytest.fixture
def utterance(speech_set: list[Utterance]) -> Utterance:
    return min((u for u in speech_set if u.seconds >= 1.5), key=lambda u: u.seconds)


@pytest.fixture
def sim_process(
    tmp_path: Path, utterance: Utterance, monkeypatch: pytest.MonkeyPatch
) -> Iterator[subprocess.Popen[str]]:
    sock = tmp_path / "sim.sock"
    monkeypatch.setenv(SOCKET_ENV, str(sock))  # both sides find the socket without flags
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim",
            "--count",
            "2",
            "--name",
            "Proc",
            "--mic",
            str(utterance.path),
            "--settle",
            "0.3",
            "--record",
            str(tmp_path / "rec.wav"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, SOCKET_ENV: str(sock)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "simulator exited"
        assert time.monotonic() < deadline, "the simulator did not start serving"
        time.sleep(0.05)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()


async def test_cross_process_scan_connect_and_mic_audio(
    sim_process: subprocess.Popen[str], utterance: Utterance, fast_backoff: None, tmp_path: Path
) -> None:
    assert default_socket_path() == tmp_path / "sim.sock"
    before = other_tasks()
    async with SimWorld() as empty:  # nothing in this process: whatever is found is remote
        found = await BleakScanner.discover(timeout=0.5, backend=SimScanner, return_adv=True)
        names = sorted(adv.local_name for _, adv in found.values())
        assert names == ["Proc-1", "Proc-2"]
        host = await connect_host(empty, None, name="Proc-1", sim_socket=None)
        assert host.client.is_connected and host.client.mtu_size == 247
        await host.listen()
        await asyncio.sleep(0.3 + utterance.seconds + 0.8)
        decoded, r = await host.decode_mic()
        await host.client.disconnect()
        other = await connect_host(empty, None, name="Proc-2", sim_socket=None)
    pcm = utterance.pcm()
    offset = find_offset(decoded, pcm)
    assert r.counters.packets_lost == 0 and r.counters.packets_received > 100
    assert snr_db(pcm, decoded[offset : offset + len(pcm)]) > 6  # Opus voip, as in-process
    # SIGTERM: clean shutdown, socket removed, recordings written, what happened logged
    sim_process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(sim_process.wait, 10) == 0
    await until(lambda: other.disconnects == 1, 2, "the disconnect callback")  # the simulator went away
    assert not other.client.is_connected
    await other.client.disconnect()
    assert not (other_tasks() - before)
    log = sim_process.stderr.read() if sim_process.stderr else ""
    assert not (tmp_path / "sim.sock").exists()
    assert "connected to host" in log and "wearer says" in log and "disconnected" in log
    assert (tmp_path / "rec-1.wav").exists() and (tmp_path / "rec-2.wav").exists()
