"""A fault-injecting TCP proxy on 127.0.0.1, to put between the mapper and the Datastore emulator.

Why: the emulator never fails, so nothing else shows what the mapper's retries and error paths do
when the connection does. The proxy forwards bytes unchanged (gRPC over HTTP/2 cleartext works
through it) until told to cut, reset, delay, stall or refuse connections; faults can be switched
while connections are live, and each one is bounded in count (`limit`) and in time (`until` or
`duration`, 60 s when neither is given), so a test that forgets to clear one still ends.

In a test (the emulator fixture exports DATASTORE_EMULATOR_HOST; point the client at the proxy):

    with FaultProxy("127.0.0.1", emulator.port, seed=1) as proxy:
        monkeypatch.setenv("DATASTORE_EMULATOR_HOST", proxy.host)
        proxy.set_fault(Fault("reset", rate=0.05, limit=20, duration=30))
        ...
        assert proxy.wait_for_faults(1, timeout=10)

By hand, in front of an emulator on port 8081 (export the printed line where the mapper runs):

    python -m tests.support.faultproxy --target 127.0.0.1:8081 --fault reset --rate 0.05 --limit 20

It only listens on and connects to 127.0.0.1 (``localhost`` means 127.0.0.1; nothing is
resolved). Every decision is drawn from the seed and the numbers of the fault, connection and
chunk, so the same traffic under the same seed gets the same faults.
"""

from __future__ import annotations

import argparse
import math
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Literal

LOOPBACK = "127.0.0.1"
FaultKind = Literal["cut", "reset", "delay", "stall", "refuse"]
KINDS: tuple[str, ...] = ("cut", "reset", "delay", "stall", "refuse")
DEFAULT_LIMIT = 1000
DEFAULT_DURATION = 60.0  # seconds, when a fault gives neither `until` nor `duration`
TICK = 0.05  # longest a thread waits before it looks at stop(), the fault and the clock again
CHUNK = 65536
# After a cut, how long the peers get to close their side: closing a socket with unread data
# sends a RST, not the clean FIN a cut promises.
DRAIN_SECONDS = 1.0
CONNECT_TIMEOUT = 5.0
JOIN_TIMEOUT = 5.0
LOG_SIZE = 10000  # injections kept for injections()
UP, DOWN = "up", "down"  # client -> target, target -> client
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST


def loopback_host(host: str) -> str:
    """127.0.0.1 for `127.0.0.1` or `localhost`; anything else is refused (never resolved)."""
    if host in (LOOPBACK, "localhost"):
        return LOOPBACK
    raise ValueError(f"faultproxy only listens on and connects to {LOOPBACK}, not {host!r}")


def _port(value: int, *, zero_ok: bool = False) -> int:
    low = 0 if zero_ok else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise ValueError(f"not a TCP port: {value!r}")
    return value


def _finite(name: str, value: float, low: float = 0.0) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low:g}, not {value!r}")


@dataclass(frozen=True)
class Fault:
    """One fault: what, how often, and until when.

    rate: the probability per chunk (cut, reset, delay) or per connection (stall, refuse).
    limit: the most faults injected (connections cut, reset, stalled or refused; chunks delayed).
    until (a time.monotonic() value) / duration (seconds from set_fault): the end; the earlier
    wins, and with neither the fault ends after DEFAULT_DURATION. Past either bound the proxy is
    transparent again; stalled connections are held until the end in time (or clear()).
    after_bytes / after_seconds (cut, reset): a connection is eligible once it has carried that
    many bytes (both ways; the bytes before the threshold are forwarded) or been open that long,
    whichever comes first; then each chunk, and the moment after_seconds passes, is a chance.
    With neither, every chunk is. delay / jitter (delay): each chunk waits delay + U(0, jitter) s.
    """

    kind: FaultKind
    rate: float = 1.0
    limit: int = DEFAULT_LIMIT
    until: float | None = None
    duration: float | None = None
    after_bytes: int | None = None
    after_seconds: float | None = None
    delay: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: one of {', '.join(KINDS)}")
        _finite("rate", self.rate)
        if self.rate > 1:
            raise ValueError(f"rate is a probability (0 to 1), not {self.rate!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be a whole number >= 1, not {self.limit!r}")
        if self.until is not None:
            _finite("until", self.until)
        if self.duration is not None:
            _finite("duration", self.duration)
        if self.after_bytes is not None and (
                isinstance(self.after_bytes, bool) or not isinstance(self.after_bytes, int)
                or self.after_bytes < 0):
            raise ValueError(f"after_bytes must be a whole number >= 0, not {self.after_bytes!r}")
        if self.after_seconds is not None:
            _finite("after_seconds", self.after_seconds)
        _finite("delay", self.delay)
        _finite("jitter", self.jitter)
        thresholds = (self.after_bytes, self.after_seconds)
        if self.kind not in ("cut", "reset") and thresholds != (None, None):
            raise ValueError("after_bytes and after_seconds apply to cut and reset only")
        if self.kind != "delay" and (self.delay or self.jitter):
            raise ValueError("delay and jitter apply to the delay fault only")
        if self.kind == "delay" and not (self.delay or self.jitter):
            raise ValueError("a delay fault needs delay (or jitter) > 0")

    def ends(self, now: float) -> float:
        """When the fault ends if set at `now` (time.monotonic())."""
        ends = [t for t in (self.until, None if self.duration is None else now + self.duration)
                if t is not None]
        return min(ends) if ends else now + DEFAULT_DURATION

    def describe(self) -> str:
        parts = [self.kind, f"rate={self.rate:g}", f"limit={self.limit}"]
        for name in ("duration", "after_bytes", "after_seconds", "delay", "jitter"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value:g}")
        return " ".join(parts)


@dataclass(frozen=True)
class Stats:
    """A snapshot of the proxy's counters (since start)."""

    accepted: int  # connections accepted, refused ones included
    open: int  # connections being forwarded now
    bytes_up: int  # forwarded client -> target
    bytes_down: int  # forwarded target -> client
    faults: dict[str, int]  # injected, by kind
    connect_failures: int  # the target could not be reached (the client got a RST)

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())


@dataclass(frozen=True)
class Injection:
    """One injected fault, for tests that look at which connection or chunk got it."""

    kind: str
    connection: int  # accept order, from 1
    direction: str | None = None  # UP or DOWN for a chunk's fault
    chunk: int | None = None  # the chunk's number in its direction, from 0
    at: float = field(default=0.0, compare=False)  # time.monotonic()


@dataclass
class _Active:
    fault: Fault
    generation: int
    ends: float
    injected: int = 0

    def over(self, now: float) -> bool:
        return now >= self.ends

    def spent(self) -> bool:
        return self.injected >= self.fault.limit


@dataclass(eq=False)
class _Conn:
    number: int
    client: socket.socket
    upstream: socket.socket
    opened: float
    carried: int = 0  # bytes forwarded, both ways
    chunks: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})
    fate: str | None = None  # "cut" or "reset" (injected), "abort" (a peer failed)
    fated_at: float = 0.0
    decided: set[tuple[int, str]] = field(default_factory=set)  # (generation, what) drawn once
    stalled: int | None = None  # generation of the stall holding it
    finished: int = 0  # pump threads done


class FaultProxy:
    """A threaded TCP proxy 127.0.0.1:port -> 127.0.0.1:target_port injecting one Fault at a time.

    One listener thread, two pump threads per connection (one each way); every wait is at most
    TICK, so stop() (or leaving the `with` block) ends every thread and closes every socket.
    """

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0,
                 seed: int = 0) -> None:
        self.target = (loopback_host(target_host), _port(target_port))
        self.listen_port = _port(listen_port, zero_ok=True)
        self.seed = seed
        self.port: int | None = None  # the listening port, once started
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # faults, fates, counters, stop
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._listener_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[_Conn] = set()
        self._state: _Active | None = None
        self._generation = 0
        self._accepted = 0
        self._connect_failures = 0
        self._bytes = {UP: 0, DOWN: 0}
        self._faults = dict.fromkeys(KINDS, 0)
        self._log: deque[Injection] = deque(maxlen=LOG_SIZE)

    # -- the public side -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the value for DATASTORE_EMULATOR_HOST."""
        if self.port is None:
            raise RuntimeError("faultproxy not started")
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> FaultProxy:
        with self._lock:
            if self._listener is not None or self._stopping.is_set():
                raise RuntimeError("a FaultProxy starts once")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((LOOPBACK, self.listen_port))
                sock.listen(128)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            self._listener = sock
            self.port = int(sock.getsockname()[1])
            self._listener_thread = threading.Thread(
                target=self._listen, args=(sock,), name=f"faultproxy:{self.port}:listener",
                daemon=True)
            self._listener_thread.start()
        return self

    def stop(self) -> None:
        """End every thread and close every socket (open connections just close). Idempotent."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        deadline = time.monotonic() + JOIN_TIMEOUT
        threads = [self._listener_thread] if self._listener_thread is not None else []
        if threads:
            threads[0].join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads += self._threads
        for thread in threads[1:]:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:  # not expected: every wait is bounded; close what they hold so nothing leaks
            with self._lock:
                conns = list(self._conns)
            for conn in conns:
                for sock in (conn.client, conn.upstream):
                    sock.close()
            raise RuntimeError(
                f"faultproxy threads did not stop within {JOIN_TIMEOUT:g} s: {stuck}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def set_fault(self, fault: Fault) -> None:
        """Inject `fault` from now on, on open and new connections (it replaces any other)."""
        with self._changed:
            self._generation += 1
            self._state = _Active(fault, self._generation, fault.ends(time.monotonic()))
            self._changed.notify_all()

    def clear(self) -> None:
        """Back to transparent: stalled connections and delayed chunks go on at once."""
        with self._changed:
            self._generation += 1
            self._state = None
            self._changed.notify_all()

    @property
    def fault(self) -> Fault | None:
        """The fault still being injected, or None (cleared, or past its bound)."""
        with self._lock:
            state = self._current()
            if state is None or (state.spent() and state.fault.kind != "stall"):
                return None
            return state.fault

    @property
    def stats(self) -> Stats:
        with self._lock:
            return Stats(self._accepted, len(self._conns), self._bytes[UP], self._bytes[DOWN],
                         dict(self._faults), self._connect_failures)

    def injections(self) -> list[Injection]:
        """The faults injected so far (the last LOG_SIZE), in order."""
        with self._lock:
            return list(self._log)

    def wait_for_faults(self, n: int, timeout: float, kind: str | None = None) -> bool:
        """Wait until `n` faults (of `kind`, or any) were injected since start; False on timeout."""
        def enough() -> bool:
            return (self._faults[kind] if kind else sum(self._faults.values())) >= n
        with self._changed:
            return self._changed.wait_for(enough, timeout)

    # -- decisions (under self._lock) ------------------------------------------------------------

    def _current(self) -> _Active | None:
        state = self._state
        return None if state is None or state.over(time.monotonic()) else state

    def _draw(self, state: _Active, conn: int, what: str, index: int = 0) -> random.Random:
        """A generator for one decision, from the seed and the decision's coordinates alone."""
        return random.Random(f"{self.seed}/{state.generation}/{conn}/{what}/{index}")

    def _take(self, state: _Active, kind: str, number: int, conn: _Conn | None = None,
              direction: str | None = None, chunk: int | None = None) -> bool:
        """Count one injection if the fault's bounds allow it (and give `conn` its fate)."""
        now = time.monotonic()
        if state is not self._state or state.over(now) or state.spent():
            return False
        if conn is not None and kind in ("cut", "reset"):
            if conn.fate is not None:
                return False
            conn.fate, conn.fated_at = kind, now
        state.injected += 1
        self._faults[kind] += 1
        self._log.append(Injection(kind, number, direction, chunk, now))
        self._changed.notify_all()
        return True

    def _refuses(self, number: int) -> bool:
        with self._lock:
            state = self._current()
            if state is None or state.fault.kind != "refuse":
                return False
            return (self._draw(state, number, "refuse").random() < state.fault.rate
                    and self._take(state, "refuse", number))

    def _held(self, conn: _Conn) -> bool:
        """Whether a stall holds `conn` (decided once per connection and stall)."""
        with self._lock:
            state = self._current()
            if self._stopping.is_set() or conn.fate is not None or state is None \
                    or state.fault.kind != "stall":
                return False
            if conn.stalled == state.generation:
                return True
            if (state.generation, "stall") in conn.decided:
                return False
            conn.decided.add((state.generation, "stall"))
            if self._draw(state, conn.number, "stall").random() < state.fault.rate \
                    and self._take(state, "stall", conn.number, conn):
                conn.stalled = state.generation
                return True
            return False

    def _timer(self, conn: _Conn) -> str | None:
        """A cut or reset due because the connection has been open `after_seconds`."""
        with self._lock:
            state = self._current()
            if state is None or conn.fate is not None:
                return None
            fault = state.fault
            if fault.kind not in ("cut", "reset") or fault.after_seconds is None \
                    or time.monotonic() - conn.opened < fault.after_seconds \
                    or (state.generation, "timer") in conn.decided:
                return None
            conn.decided.add((state.generation, "timer"))
            if self._draw(state, conn.number, "timer").random() < fault.rate \
                    and self._take(state, fault.kind, conn.number, conn):
                return fault.kind
            return None

    def _on_chunk(self, conn: _Conn, direction: str, data: bytes) -> tuple[bytes, str | None]:
        """What of `data` to forward, and the cut or reset to do after it (delays happen here)."""
        with self._lock:
            chunk = conn.chunks[direction]
            conn.chunks[direction] += 1
            state = self._current()
            if state is None or state.spent() or state.fault.kind in ("stall", "refuse"):
                return data, None
            fault = state.fault
            rng = self._draw(state, conn.number, direction, chunk)
            if fault.kind in ("cut", "reset"):
                by_time = fault.after_seconds is not None \
                    and time.monotonic() - conn.opened >= fault.after_seconds
                by_bytes = fault.after_bytes is not None \
                    and conn.carried + len(data) > fault.after_bytes
                anytime = fault.after_bytes is None and fault.after_seconds is None
                if not (by_time or by_bytes or anytime) or rng.random() >= fault.rate \
                        or not self._take(state, fault.kind, conn.number, conn, direction, chunk):
                    return data, None
                head = 0 if by_time or fault.after_bytes is None \
                    else max(0, fault.after_bytes - conn.carried)
                return data[:head], fault.kind
            if rng.random() >= fault.rate or not self._take(state, "delay", conn.number, None,
                                                           direction, chunk):
                return data, None
            pause = fault.delay + fault.jitter * rng.random()
            generation = self._generation
            # Until the time passes, or the fault changes, the connection ends or stop() is called.
            self._changed.wait_for(
                lambda: self._stopping.is_set() or conn.fate is not None
                or self._generation != generation, pause)
            return data, None

    # -- threads -----------------------------------------------------------------------------------

    def _listen(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                if not selector.select(TICK):
                    continue
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # out of file descriptors, say: try again shortly
                    self._stopping.wait(TICK)
                    continue
                self._admit(client)
        finally:
            selector.close()
            listener.close()

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            self._accepted += 1
            number = self._accepted
        if self._refuses(number):
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
        except OSError:
            with self._lock:
                self._connect_failures += 1
            _reset(client)
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait of our own
            sock.setblocking(False)
        conn = _Conn(number, client, upstream, time.monotonic())
        with self._lock:
            if self._stopping.is_set():
                client.close()
                upstream.close()
                return
            self._conns.add(conn)
            self._threads = [t for t in self._threads if t.is_alive()]
            for direction in (UP, DOWN):
                thread = threading.Thread(target=self._pump, args=(conn, direction), daemon=True,
                                          name=f"faultproxy:{self.port}:c{number}:{direction}")
                self._threads.append(thread)
                thread.start()

    def _pump(self, conn: _Conn, direction: str) -> None:
        src, dst = (conn.client, conn.upstream) if direction == UP else (conn.upstream, conn.client)
        reading, writing = selectors.DefaultSelector(), selectors.DefaultSelector()
        reading.register(src, selectors.EVENT_READ)
        writing.register(dst, selectors.EVENT_WRITE)
        try:
            try:
                self._forward(conn, direction, src, dst, reading, writing)
            except OSError:  # a peer reset or vanished (or a cut closed dst): abort unless cut
                with self._changed:
                    if conn.fate is None:
                        conn.fate, conn.fated_at = "abort", time.monotonic()
                    self._changed.notify_all()
            if conn.fate == "cut":
                try:
                    self._drain(conn, src, reading)
                except OSError:
                    pass
        finally:
            reading.close()
            writing.close()
            self._finish(conn)

    def _forward(self, conn: _Conn, direction: str, src: socket.socket, dst: socket.socket,
                 reading: selectors.BaseSelector, writing: selectors.BaseSelector) -> None:
        while not self._stopping.is_set() and conn.fate is None:
            if self._held(conn):  # stalled: read nothing, so the peer's sends back up
                self._pause()
                continue
            action = self._timer(conn)
            if action is not None:
                self._act(conn, action)
                return
            if not reading.select(TICK):
                continue
            try:
                data = src.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            if not data:  # half-close: pass the FIN on, the other way goes on
                dst.shutdown(socket.SHUT_WR)
                return
            while self._held(conn):  # a stall that began while this chunk was on its way
                self._pause()
            if self._stopping.is_set() or conn.fate is not None:
                return
            data, action = self._on_chunk(conn, direction, data)
            if data:
                self._send(conn, direction, dst, writing, data, own_fate=action is not None)
            if action is not None:
                self._act(conn, action)
                return

    def _send(self, conn: _Conn, direction: str, dst: socket.socket,
              writing: selectors.BaseSelector, data: bytes, own_fate: bool) -> None:
        view = memoryview(data)
        while view:
            if self._stopping.is_set() or (conn.fate is not None and not own_fate):
                return
            try:
                sent = dst.send(view)
            except (BlockingIOError, InterruptedError):
                writing.select(TICK)
                continue
            with self._lock:
                self._bytes[direction] += sent
                conn.carried += sent
            view = view[sent:]

    def _act(self, conn: _Conn, action: str) -> None:
        """Carry out a cut now (FIN both ways); a reset happens when the sockets close."""
        if action == "cut":
            for sock in (conn.client, conn.upstream):
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        with self._changed:
            self._changed.notify_all()

    def _drain(self, conn: _Conn, src: socket.socket, reading: selectors.BaseSelector) -> None:
        """Discard what a cut connection's peer still sends, until it closes (or DRAIN_SECONDS)."""
        deadline = conn.fated_at + DRAIN_SECONDS
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not reading.select(min(TICK, left)):
                continue
            try:
                if not src.recv(CHUNK):
                    return
            except (BlockingIOError, InterruptedError):
                continue

    def _pause(self) -> None:
        with self._changed:
            self._changed.wait(TICK)

    def _finish(self, conn: _Conn) -> None:
        """The second pump to end closes both sockets (with a RST after a reset or a failure)."""
        with self._changed:
            conn.finished += 1
            self._changed.notify_all()
            if conn.finished < 2:
                return
            self._conns.discard(conn)
            fate = conn.fate
        for sock in (conn.client, conn.upstream):
            if fate in ("reset", "abort"):
                _reset(sock)
            else:
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with a RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass
    sock.close()


def _target(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return loopback_host(host), _port(int(port))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: want 127.0.0.1:PORT ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.faultproxy", allow_abbrev=False,
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=_target, required=True, metavar="127.0.0.1:PORT",
                        help="the emulator (or any TCP server) on 127.0.0.1")
    parser.add_argument("--listen", type=int, default=0, metavar="PORT",
                        help="port to listen on, on 127.0.0.1 (default: a free one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault", choices=KINDS, help="inject this from the start (default: none)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="probability per chunk or connection (default 1)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="most faults injected")
    parser.add_argument("--duration", type=float,
                        help=f"seconds the fault lasts (default {DEFAULT_DURATION:g})")
    parser.add_argument("--after-bytes", type=int, help="cut/reset: once a connection carried this")
    parser.add_argument("--after-seconds", type=float,
                        help="cut/reset: once a connection is this old")
    parser.add_argument("--delay", type=float, default=0.0, help="delay: seconds per chunk")
    parser.add_argument("--jitter", type=float, default=0.0, help="delay: up to this many more")
    args = parser.parse_args(argv)
    fault_options = {"rate": 1.0, "limit": DEFAULT_LIMIT, "duration": None, "after_bytes": None,
                     "after_seconds": None, "delay": 0.0, "jitter": 0.0}
    stray = [name for name, default in fault_options.items() if getattr(args, name) != default]
    if args.fault is None and stray:
        parser.error(f"--{stray[0].replace('_', '-')} needs --fault")
    fault: Fault | None = None
    if args.fault is not None:
        try:
            fault = Fault(args.fault, rate=args.rate, limit=args.limit, duration=args.duration,
                          after_bytes=args.after_bytes, after_seconds=args.after_seconds,
                          delay=args.delay, jitter=args.jitter)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        proxy = FaultProxy(*args.target, listen_port=args.listen, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        proxy.start()
    except OSError as exc:
        print(f"faultproxy: cannot listen on {LOOPBACK}:{args.listen}: {exc}", file=sys.stderr)
        return 1
    if fault is not None:
        proxy.set_fault(fault)
    print(f"export DATASTORE_EMULATOR_HOST={proxy.host}", flush=True)
    print(f"faultproxy: {proxy.host} -> {args.target[0]}:{args.target[1]}, "
          f"fault: {fault.describe() if fault else 'none'}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    proxy.stop()
    stats = proxy.stats
    faults = ", ".join(f"{kind} {n}" for kind, n in stats.faults.items() if n) or "none"
    print(f"faultproxy: stopped after {stats.accepted} connections ({stats.bytes_up} bytes up, "
          f"{stats.bytes_down} down); faults injected: {faults}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
