"""A throwaway PostgreSQL cluster built from the server binaries on this machine.

Used by the demo and by the test suite when no DSN is given and no Docker
engine answers. PostgreSQL refuses to run as root, so when we are root the
cluster belongs to the ``postgres`` OS user and every server command runs
through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_OS_USER = "postgres"


def find_bindir() -> Path:
    """The newest PostgreSQL server bin directory on this machine."""
    explicit = os.environ.get("PGML_TRIGGER_PG_BINDIR")
    if explicit:
        return Path(explicit)
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir and (Path(bindir) / "initdb").exists():
            return Path(bindir)
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob("/usr/pgsql-*/bin/initdb")
    if not candidates:
        raise RuntimeError(
            "no PostgreSQL server binaries found (initdb); install the server package "
            "(e.g. apt-get install postgresql) or set PGML_TRIGGER_PG_BINDIR"
        )
    candidates.sort(key=lambda p: int("".join(ch for ch in Path(p).parts[-3] if ch.isdigit()) or 0))
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    """initdb + pg_ctl on a free port; ``stop()`` removes everything."""

    def __init__(self, bindir: Path | None = None, port: int | None = None, settings: dict | None = None):
        self.bindir = bindir or find_bindir()
        self.settings = dict(settings or {})  # extra server settings, e.g. {"wal_level": "logical"}
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="pgml_trigger_pg_"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self.superuser = SERVER_OS_USER if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def major(self) -> int:
        version = self._run(["postgres", "--version"], capture=True)
        return int(version.split()[-1].split(".")[0])

    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user or self.superuser}"

    def _run(self, argv: list[str], capture: bool = False) -> str:
        argv = [str(self.bindir / argv[0]), *argv[1:]]
        if self.as_root:
            argv = ["runuser", "-u", SERVER_OS_USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}{log}")
        return done.stdout

    def start(self) -> LocalCluster:
        self._own_root()
        self._run(["initdb", "-D", str(self.datadir), "-U", self.superuser, "--auth=trust",
                   "--encoding=UTF8", "--locale=C.UTF-8"])
        self._start_server()
        return self

    def standby(self) -> LocalCluster:
        """A hot standby of this cluster, streaming from it: a base backup (with -R) started on its own port.

        initdb's pg_hba.conf (--auth=trust) already lets 127.0.0.1 connect for replication, and the defaults
        (wal_level=replica, max_wal_senders=10) allow it; the caller stops the standby.
        """
        replica = LocalCluster(self.bindir)
        replica._own_root()
        try:
            self._run(["pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser,
                       "-D", str(replica.datadir), "--write-recovery-conf", "--wal-method=stream",
                       "--checkpoint=fast"])
            replica._start_server()
        except BaseException:
            replica.stop()
            raise
        return replica

    def _own_root(self) -> None:
        if self.as_root:
            pw = pwd.getpwnam(SERVER_OS_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _start_server(self) -> None:
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   f"-c max_connections=60 -c shared_buffers=256MB")
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run(["pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, "-w", "start"])

    def pause(self) -> None:
        """Stop the server (fast shutdown), keeping its data for resume()."""
        self._run(["pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        self._start_server()

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
