"""The fault proxy (``tests.support.faultproxy``) in front of a tiny echo or byte-counting server of the
test's own: each fault does what it says, ends at its bounds, and nothing is left behind."""
from __future__ import annotations

import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.faultproxy import Fault, FaultProxy, main

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
TIMEOUT = 5.0  # the most any socket call in these tests waits

pytestmark = pytest.mark.timeout(60)


class Server:
    """A threaded TCP server on 127.0.0.1 that echoes what it gets (or only counts it)."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.sock = socket.create_server((LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received: list[int] = []  # bytes so far, per connection
        self.endings: list[str | None] = []  # "eof" or "reset" once a connection ended
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, name="test-server", daemon=True)]
        self._threads[0].start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, BlockingIOError):
                continue
            with self._lock:
                index = self.accepted
                self.accepted += 1
                self.received.append(0)
                self.endings.append(None)
                thread = threading.Thread(target=self._handle, args=(conn, index), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket, index: int) -> None:
        ending = "stopped"
        conn.settimeout(TIMEOUT)
        try:
            while not self._stop.is_set():
                if not select.select([conn], [], [], 0.05)[0]:
                    continue
                data = conn.recv(65536)
                if not data:
                    ending = "eof"
                    break
                with self._lock:
                    self.received[index] += len(data)
                if self.echo:
                    conn.sendall(data)
        except ConnectionResetError:
            ending = "reset"
        except OSError as exc:
            ending = f"error: {exc!r}"
        finally:
            conn.close()
            with self._lock:
                self.endings[index] = ending

    def ending(self, index: int, timeout: float = TIMEOUT) -> str | None:
        """How connection ``index`` ended, waiting for it to be accepted too (on a loaded
        machine the server's thread may not have accepted it yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.endings) > index and self.endings[index] is not None:
                    return self.endings[index]
            time.sleep(0.01)
        with self._lock:
            return self.endings[index] if len(self.endings) > index else None

    def close(self) -> None:
        self._stop.set()
        # The accepting thread first: a connection it accepted as the stop came is handled
        # (and its thread listed) before the others are joined.
        self._threads[0].join(TIMEOUT)
        with self._lock:
            handlers = list(self._threads[1:])
        for thread in handlers:
            thread.join(TIMEOUT)
        self.sock.close()


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After each test (its proxies and servers stopped): no proxy thread, no extra open fd."""
    fds = Path("/proc/self/fd")
    before = len(list(fds.iterdir())) if fds.is_dir() else None
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith(("faultproxy", "test-"))]
    assert not alive
    if before is not None:
        assert len(list(fds.iterdir())) <= before


@pytest.fixture
def echo() -> Iterator[Server]:
    server = Server(echo=True)
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[Server]:
    server = Server(echo=False)
    yield server
    server.close()


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(port: int, **kwargs: int) -> FaultProxy:
        proxy = FaultProxy(LOOPBACK, port, **kwargs).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection((LOOPBACK, proxy.port), timeout=TIMEOUT)


def receive(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return bytes(got)


def roundtrip(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    return receive(sock, len(data))


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_transparent_when_clear(echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    assert proxy.host == f"{LOOPBACK}:{proxy.port}"
    data = random.Random(0).randbytes(1 << 20)
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,))
        sender.start()  # both ways at once
        assert receive(sock, len(data)) == data
        sender.join(TIMEOUT)
        sock.shutdown(socket.SHUT_WR)  # the half-close reaches the server, its close comes back
        assert sock.recv(1) == b""
    assert echo.ending(0) == "eof" and echo.received == [len(data)]
    assert wait_until(lambda: proxy.stats.open == 0)
    stats = proxy.stats
    assert (stats.accepted, stats.bytes_up, stats.bytes_down) == (1, len(data), len(data))
    assert stats.total_faults == 0 and proxy.fault is None


def test_cut_closes_cleanly_after_the_byte_threshold(
        sink: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(sink.port)
    proxy.set_fault(Fault("cut", after_bytes=1000, limit=1))
    with connect(proxy) as sock:
        sock.sendall(b"x" * 5000)
        assert sock.recv(1) == b""  # a FIN, not a reset
    assert sink.ending(0) == "eof"
    assert sink.received == [1000]  # what came before the threshold, and nothing after
    assert proxy.stats.faults["cut"] == 1 and proxy.stats.bytes_up == 1000


def test_cut_after_seconds_closes_an_idle_connection(
        echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    proxy.set_fault(Fault("cut", after_seconds=0.3))
    started = time.monotonic()
    with connect(proxy) as sock:
        assert sock.recv(1) == b""
    assert 0.25 <= time.monotonic() - started < 3
    assert echo.ending(0) == "eof" and proxy.stats.faults["cut"] == 1


def test_reset_mid_stream_gives_econnreset(
        echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    with connect(proxy) as sock:
        assert roundtrip(sock, b"before") == b"before"
        proxy.set_fault(Fault("reset", limit=1))  # on a live connection
        sock.sendall(b"during")
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    assert proxy.wait_for_faults(1, timeout=TIMEOUT, kind="reset")
    assert echo.ending(0) == "reset"  # the server's side is reset too
    assert proxy.fault is None  # the limit is reached: transparent again
    with connect(proxy) as sock:
        assert roundtrip(sock, b"after") == b"after"
    assert proxy.stats.faults["reset"] == 1


def test_delay_delays_each_chunk_by_at_least_the_time(
        echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    with connect(proxy) as sock:
        assert roundtrip(sock) == b"ping"
        proxy.set_fault(Fault("delay", delay=0.25))
        started = time.monotonic()
        assert roundtrip(sock) == b"ping"
        assert time.monotonic() - started >= 0.5  # one chunk each way
        assert proxy.stats.faults["delay"] == 2
        proxy.set_fault(Fault("delay", delay=0.05, jitter=0.1))
        started = time.monotonic()
        assert roundtrip(sock) == b"ping"
        assert 0.1 <= time.monotonic() - started < 0.3 + 1
        proxy.clear()
        started = time.monotonic()
        assert roundtrip(sock) == b"ping"
        assert time.monotonic() - started < 0.2
    assert proxy.stats.faults["delay"] == 4


def test_stall_forwards_nothing_until_cleared(
        echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    with connect(proxy) as old:
        assert roundtrip(old) == b"ping"
        proxy.set_fault(Fault("stall"))
        with connect(proxy) as new:  # accepted, but held like the old one
            old.sendall(b"held")
            new.sendall(b"held too")
            for sock in (old, new):
                sock.settimeout(0.3)
                with pytest.raises(socket.timeout):
                    sock.recv(1)
            assert echo.received[0] == 4 and echo.received[1:] in ([], [0])
            proxy.clear()
            for sock, data in ((old, b"held"), (new, b"held too")):
                sock.settimeout(TIMEOUT)
                assert receive(sock, len(data)) == data
    assert proxy.stats.faults["stall"] == 2


def test_stall_ends_with_its_duration(echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    started = time.monotonic()
    proxy.set_fault(Fault("stall", duration=0.4))
    with connect(proxy) as sock:
        assert roundtrip(sock) == b"ping"
    assert 0.4 <= time.monotonic() - started < 3
    assert proxy.fault is None and proxy.stats.faults["stall"] == 1


def refused(proxy: FaultProxy) -> bool:
    """Whether the proxy reset a new connection (its RST may beat connect()); else it echoes."""
    try:
        with connect(proxy) as sock:
            return roundtrip(sock) != b"ping"
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_refuse_resets_new_connections_up_to_the_limit(
        echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    with connect(proxy) as old:
        assert roundtrip(old) == b"ping"  # accepted by the proxy (connect() returns before)
        proxy.set_fault(Fault("refuse", limit=2))
        for _ in range(2):
            assert refused(proxy)
        assert not refused(proxy)
        assert roundtrip(old) == b"ping"  # open connections are not touched
    assert echo.accepted == 2  # the target never saw the refused ones
    stats = proxy.stats
    assert (stats.accepted, stats.faults["refuse"]) == (4, 2)


def test_until_ends_the_fault(echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    started = time.monotonic()
    proxy.set_fault(Fault("refuse", until=started + 0.3))
    while refused(proxy):  # a few dozen times, not the default limit's 1000
        assert time.monotonic() - started < 3
        time.sleep(0.02)
    assert time.monotonic() - started >= 0.3
    assert proxy.stats.faults["refuse"] >= 1 and proxy.fault is None


def _pattern(echo: Server, make_proxy: Callable[..., FaultProxy], seed: int) -> list[tuple]:
    """Which of 16 connections, then which of 32 chunks, a fault with rate 0.5 hit."""
    proxy = make_proxy(echo.port, seed=seed)
    proxy.set_fault(Fault("refuse", rate=0.5))
    for _ in range(16):
        refused(proxy)
    proxy.set_fault(Fault("delay", delay=0.001, rate=0.5))
    with connect(proxy) as sock:
        for _ in range(16):  # one message in flight: one chunk each way
            assert roundtrip(sock) == b"ping"
    proxy.stop()
    return [(i.kind, i.connection, i.direction, i.chunk) for i in proxy.injections()]


def test_rate_is_deterministic_from_the_seed(
        echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    first = _pattern(echo, make_proxy, seed=3)
    assert first == _pattern(echo, make_proxy, seed=3)
    assert first != _pattern(echo, make_proxy, seed=4)
    refused = [i for i in first if i[0] == "refuse"]
    assert 0 < len(refused) < 16 and 0 < len(first) - len(refused) < 32


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "::1", "127.0.0.2", "example.com", ""])
def test_non_loopback_targets_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        FaultProxy(host, 8081)


def test_listens_on_127_0_0_1_only(echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    assert FaultProxy("localhost", 8081).target == (LOOPBACK, 8081)
    proxy = make_proxy(echo.port)
    if sys.platform.startswith("linux"):  # all of 127/8 is local there; only .1 is bound
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", proxy.port), timeout=TIMEOUT).close()


@pytest.mark.parametrize("kwargs", [
    {"kind": "explode"}, {"kind": "reset", "rate": 1.5}, {"kind": "reset", "rate": -0.1},
    {"kind": "reset", "limit": 0}, {"kind": "reset", "duration": float("inf")},
    {"kind": "stall", "duration": -1}, {"kind": "delay"}, {"kind": "cut", "delay": 1},
    {"kind": "delay", "delay": 1, "after_bytes": 10}, {"kind": "cut", "after_bytes": -1},
])
def test_bad_faults_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Fault(**kwargs)


def test_every_fault_ends_in_time() -> None:
    now = time.monotonic()
    assert Fault("stall").ends(now) == now + 60
    assert Fault("stall", duration=5, until=now + 2).ends(now) == now + 2


def test_unreachable_target_resets_the_client(make_proxy: Callable[..., FaultProxy]) -> None:
    with socket.create_server((LOOPBACK, 0)) as gone:
        port = gone.getsockname()[1]
    proxy = make_proxy(port)
    assert refused(proxy)
    assert proxy.stats.connect_failures == 1


def test_wait_for_faults_times_out(echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    started = time.monotonic()
    assert not proxy.wait_for_faults(1, timeout=0.1)
    assert time.monotonic() - started < 1


def test_stop_ends_stalled_connections(echo: Server, make_proxy: Callable[..., FaultProxy]) -> None:
    proxy = make_proxy(echo.port)
    proxy.set_fault(Fault("stall"))
    with connect(proxy) as sock:
        sock.sendall(b"held")
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 1
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass  # closed with the unread bytes: a reset, also fine


def test_cli_prints_the_host_and_stops_on_ctrl_c(echo: Server) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faultproxy", "--target", f"{LOOPBACK}:{echo.port}",
         "--fault", "delay", "--delay", "0.01", "--limit", "2"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([proc.stdout], [], [], 20)[0], "no output"
        line = proc.stdout.readline().strip()
        assert line.startswith(f"export DATASTORE_EMULATOR_HOST={LOOPBACK}:")
        port = int(line.rpartition(":")[2])
        with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as sock:
            assert roundtrip(sock) == b"ping"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and out == ""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("faultproxy: stopped after 1 connections") and "delay 2" in last


@pytest.mark.parametrize("args, message", [
    (["--target", "10.0.0.1:8081"], "127.0.0.1"),
    (["--target", "127.0.0.1:8081", "--rate", "0.5"], "--rate needs --fault"),
    (["--target", "127.0.0.1:8081", "--fault", "reset", "--limit", "0"], "limit"),
])
def test_cli_rejects_bad_arguments(args: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
