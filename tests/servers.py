"""Real servers for the tests and benchmarks: XRootD on 127.0.0.1, and latency.

:class:`XRootDServer` starts Debian's ``xrootd`` (package ``xrootd-server``) on a free
port of 127.0.0.1 with a data directory and a configuration of its own, owns the
process and stops it. It refuses to run as root, so as root it is started with
``-R nobody`` and its directories are made readable (and its run directory writable)
by that user. :class:`LatencyRelay` relays TCP between a client and a server and
delays every response by a fixed time: network latency without ``netem`` (which
these kernels lack). The fixtures in ``conftest.py`` use them; so do benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

#: The user the server runs as when started by root (it refuses to run as root).
SERVER_USER = "nobody"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, alive: subprocess.Popen[bytes]) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (or the process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"the server exited with status {alive.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class XRootDServer:
    """An ``xrootd`` process serving a directory of its own on 127.0.0.1.

    Use it as a context manager; :meth:`add` copies files into its data directory
    and :meth:`url` names them as ``root://127.0.0.1:<port>//<name>``.
    """

    def __init__(self, binary: str = "xrootd", start_timeout: float = 60.0) -> None:
        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"no {binary!r} executable on PATH")
        self.binary = found
        self.start_timeout = start_timeout
        self.root = Path(tempfile.mkdtemp(prefix="coffea-sizing-xrootd-"))
        self.data = self.root / "data"
        self.run = self.root / "run"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ files
    def add(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Copy ``path`` into the served directory; its ``root://`` URL."""
        name = name or Path(path).name
        target = self.data / name
        shutil.copyfile(path, target)
        target.chmod(0o644)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"root://127.0.0.1:{self.port}//{name}"

    @property
    def log(self) -> str:
        """The server's log so far (for error messages)."""
        logs = sorted(self.run.rglob("xrootd.log"))
        return logs[0].read_text(errors="replace")[-3000:] if logs else ""

    # -------------------------------------------------------------- process
    def start(self) -> XRootDServer:
        self.data.mkdir(parents=True)
        self.run.mkdir()
        as_root = os.geteuid() == 0
        for directory in (self.root, self.data, self.run):
            directory.chmod(0o755)
        if as_root:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.run, user.pw_uid, user.pw_gid)
        last: Exception | None = None
        for _ in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            config = self.root / "xrootd.cfg"
            config.write_text(
                "all.export /\n"
                f"oss.localroot {self.data}\n"
                f"all.adminpath {self.run}\n"
                f"all.pidpath {self.run}\n"
                "xrd.allow host localhost\n"
            )
            config.chmod(0o644)
            command = [self.binary, "-p", str(self.port), "-c", str(config)]
            command += ["-l", str(self.run / "xrootd.log"), "-n", f"cs{self.port}"]
            if as_root:
                command += ["-R", SERVER_USER]
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=self.run,
            )
            try:
                wait_for_port(self.port, self.start_timeout, self.process)
                return self
            except (RuntimeError, TimeoutError) as err:
                last = err
                self.stop()
        raise RuntimeError(f"xrootd did not start: {last}\n{self.log}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> XRootDServer:  # noqa: PYI034
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class LatencyRelay:
    """Relays TCP from 127.0.0.1:``port`` to 127.0.0.1:``target`` and delays every
    response (server to client) by ``delay`` seconds; requests pass at once.

    Each piece of a response is sent ``delay`` after it arrived from the server, in
    order, so a round trip takes ``delay`` longer while bandwidth is unchanged: a
    client pays the delay once per request it waits for. Use it as a context manager;
    clients connect to :attr:`port`.
    """

    def __init__(self, target: int, delay: float) -> None:
        self.target = target
        self.delay = delay
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def __enter__(self) -> LatencyRelay:  # noqa: PYI034
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        with self._lock:
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in list(self._threads):
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            self._spawn(self._pump, client, server, 0.0)
            self._spawn(self._pump, server, client, self.delay)

    def _pump(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        """Copy ``source`` to ``sink``, each piece ``delay`` after it arrived."""
        if delay <= 0:
            self._copy(source, sink)
            return
        pieces: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self._spawn(self._send_late, pieces, sink)
        while True:
            try:
                data = source.recv(1 << 16)
            except OSError:
                data = b""
            pieces.put((time.monotonic() + delay, data))
            if not data:
                return

    def _send_late(
        self, pieces: queue.Queue[tuple[float, bytes]], sink: socket.socket
    ) -> None:
        while True:
            due, data = pieces.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                _close_write(sink)
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                _close_write(sink)
                return
            try:
                sink.sendall(data)
            except OSError:
                return


def _close_write(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
