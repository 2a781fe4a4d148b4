"""Real servers for the tests and benchmarks: an XRootD server on 127.0.0.1.

:class:`XRootDServer` starts Debian's ``xrootd`` (package ``xrootd-server``) on a free
port of 127.0.0.1 with a data directory and a configuration of its own, owns the
process and stops it. It refuses to run as root, so as root it is started with
``-R nobody`` and its directories are made readable (and its run directory writable)
by that user. The fixtures in ``conftest.py`` use it; so can a benchmark.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
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
