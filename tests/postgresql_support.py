# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test PostgreSQL, for tests: how to reach it, a fresh database per test, an outage on demand.

hack/postgresql.py runs the server (`make postgresql`, a prerequisite of the layers that need it) and describes it
in postgresql.json. Found through SIPBREAKOUT_TEST_POSTGRESQL (the Makefile exports it), else at
.build/postgresql/postgresql.json above this file (`ansible-test units` passes no such variable on, but runs in
.build/ansible_collections/...). Import it as
`ansible_collections.wgtwo.sipbreakout.tests.postgresql_support` (plain pytest and ansible-test units alike)::

    server = postgresql_support.server()           # ServerUnavailable when there is none
    with server.database() as dbname:              # empty, owned by the test role, dropped afterwards
        psycopg.connect(server.conninfo(dbname))   # TLS verify-full, the password from the passfile
        with server.stopped():                     # an outage: connections refused until the block ends
            ...

Needs psycopg only for database() and the admin connection. Secrets stay out of everything it returns except
password() and params(..., with_password=True).
"""

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import subprocess
import time
import urllib.parse

ENV = "SIPBREAKOUT_TEST_POSTGRESQL"
DESCRIPTION = os.path.join(".build", "postgresql", "postgresql.json")
START_TIMEOUT = 60
# How long online() waits for another process's outage to end, and stop() for other processes' online() blocks.
LOCK_WAIT = 300


class ServerUnavailable(Exception):
    """No test PostgreSQL is described where the tests look, or it does not answer."""


def description_path():
    """SIPBREAKOUT_TEST_POSTGRESQL, else the first .build/postgresql/postgresql.json above this file, or None."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    here = os.path.dirname(os.path.abspath(__file__))
    for start in (here, os.path.realpath(here)):
        folder = start
        while True:
            for candidate in (os.path.join(folder, DESCRIPTION),
                              os.path.join(folder, "postgresql", "postgresql.json")
                              if os.path.basename(folder) == ".build" else None):
                if candidate and os.path.isfile(candidate):
                    return candidate
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return None


_SERVERS = {}


def server(path=None):
    """The TestServer described at PATH (default: description_path()), one per process and path."""
    path = path or description_path()
    if not path or not os.path.isfile(path):
        raise ServerUnavailable(
            "no test PostgreSQL described at %s: run `make postgresql` (hack/postgresql.py start) or set %s"
            % (path or DESCRIPTION, ENV))
    path = os.path.abspath(path)
    if path not in _SERVERS:
        with open(path, encoding="utf-8") as handle:
            _SERVERS[path] = TestServer(json.load(handle), path)
    return _SERVERS[path]


def quote(value):
    """A libpq conninfo value, quoted."""
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "\\'")


class TestServer:
    """One test PostgreSQL as postgresql.json describes it. Attributes: host ("localhost"), hostaddr ("127.0.0.1"),
    port, dbname, user, password_file, sslmode ("verify-full"), sslrootcert (the CA), server_names,
    mismatch_host (a name the certificate lacks), service_file, service, passfile, admin_user, socket_dir,
    data_dir, log_file, bin_dir, os_user, lock_file, server_version."""

    __test__ = False  # not a pytest test class

    def __init__(self, description, path):
        self.path = path
        self.__dict__.update(description)
        # Outages against the tests of other processes: online() holds a shared flock on lock_file, stop() an
        # exclusive one (converted from the shared one when this process holds that).
        self._lock_fd = None
        self._holders = 0
        self._stopped = False

    def password(self):
        with open(self.password_file, encoding="utf-8") as handle:
            return handle.read().strip()

    def params(self, dbname=None, with_password=False, **overrides):
        """Keyword arguments for psycopg.connect(): TCP with TLS verify-full against the CA, as the test role, the
        password from passfile (or, with_password=True, its value). overrides replace or add libpq keywords."""
        params = dict(host=self.host, hostaddr=self.hostaddr, port=self.port, dbname=dbname or self.dbname,
                      user=self.user, sslmode=self.sslmode, sslrootcert=self.sslrootcert, passfile=self.passfile,
                      connect_timeout=10)
        if with_password:
            params["password"] = self.password()
        params.update(overrides)
        return dict((key, value) for key, value in params.items() if value is not None)

    def conninfo(self, dbname=None, **overrides):
        """params() as a libpq conninfo string (no password in it: passfile= names the file that has it)."""
        params = self.params(dbname, **overrides)
        return " ".join("%s=%s" % (key, quote(params[key])) for key in sorted(params))

    def uri(self, dbname=None):
        """A postgresql:// URI without the password (sslmode, sslrootcert and passfile as query parameters)."""
        query = urllib.parse.urlencode([("sslmode", self.sslmode), ("sslrootcert", self.sslrootcert),
                                        ("passfile", self.passfile)])
        return "postgresql://%s@%s:%d/%s?%s" % (
            urllib.parse.quote(self.user), self.host, self.port, urllib.parse.quote(dbname or self.dbname), query)

    def environ(self, dbname=None):
        """libpq's own variables for a child process: the service file, the service, the passfile (and PGDATABASE
        when dbname is given). Add them to a copy of os.environ."""
        env = {"PGSERVICEFILE": self.service_file, "PGSERVICE": self.service, "PGPASSFILE": self.passfile}
        if dbname:
            env["PGDATABASE"] = dbname
        return env

    def admin_params(self, dbname="postgres"):
        """The superuser over the Unix socket (peer authentication: root or postgres only)."""
        return dict(host=self.socket_dir, port=self.port, user=self.admin_user, dbname=dbname, connect_timeout=10)

    def admin_connect(self, dbname="postgres"):
        import psycopg  # pylint: disable=import-outside-toplevel
        return psycopg.connect(autocommit=True, **self.admin_params(dbname))

    @contextlib.contextmanager
    def online(self):
        """The block runs while no other process has the server stopped: another process's stop() waits until the
        block ends, and the block waits for another process's outage to end. database() holds it; hold it around
        any other connection to the shared server in layers that run tests in parallel (ansible-test units runs
        pytest-xdist workers). Nests; a stop() inside it (this process's own outage) is allowed."""
        if not self._stopped:
            self._lock(fcntl.LOCK_SH)
        self._holders += 1
        try:
            yield self
        finally:
            self._holders -= 1
            if not self._holders and not self._stopped:
                self._lock(fcntl.LOCK_UN)

    @contextlib.contextmanager
    def database(self):
        """A new empty database (template0, owned by the test role) for the block, inside online(); dropped after
        it, open connections and all (and the server started again first if the block left it stopped). Yields
        its name."""
        from psycopg import sql  # pylint: disable=import-outside-toplevel
        name = "%s%d_%s" % (self.test_database_prefix, os.getpid(), secrets.token_hex(4))
        with self.online():
            with self.admin_connect() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0")
                              .format(sql.Identifier(name), sql.Identifier(self.user)))
            try:
                yield name
            finally:
                if self._stopped:
                    self.start()
                with self.admin_connect() as admin:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def running(self):
        """Whether its postmaster runs (pg_ctl status)."""
        return self._pg_ctl("status", check=False).returncode == 0

    def stop(self):
        """Stop the server (fast shutdown: sessions are ended, nothing committed is lost). Waits first until no
        other process is inside online() or database(); call start() afterwards (database() does, at its end)."""
        self._lock(fcntl.LOCK_EX)
        try:
            self._pg_ctl("stop", "-w", "-t", str(START_TIMEOUT), "-m", "fast")
        except ServerUnavailable:
            self._release()
            raise
        self._stopped = True

    def start(self):
        """Start it again on the same port; returns once it accepts connections. The other processes may go on
        even when it fails (they then find the server down rather than wait)."""
        try:
            self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT), "-l", self.log_file)
        finally:
            self._stopped = False
            self._release()

    @contextlib.contextmanager
    def stopped(self):
        """The server stopped for the block, started again after it (also when the block raises)."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def _lock(self, operation):
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_file, os.O_RDWR)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self._lock_fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable("another process has kept the test PostgreSQL %s for %d s (%s)" % (
                        "stopped" if operation == fcntl.LOCK_SH else "in use", LOCK_WAIT, self.lock_file))
                time.sleep(0.05)

    def _release(self):
        """Back to what this process's online() blocks need, after its own outage."""
        if self._holders:
            self._lock(fcntl.LOCK_SH)
        else:
            self._lock(fcntl.LOCK_UN)

    def _pg_ctl(self, action, *options, check=True):
        command = [os.path.join(self.bin_dir, "pg_ctl"), action, "-D", self.data_dir] + list(options)
        if os.geteuid() != pwd.getpwnam(self.os_user).pw_uid:
            command = ["runuser", "-u", self.os_user, "--"] + command
        # Only the server's own settings: no PG* variable of the test may steer pg_ctl.
        env = dict((key, value) for key, value in os.environ.items() if not key.startswith("PG"))
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd="/", env=env, universal_newlines=True, check=False)
        if check and result.returncode != 0:
            raise ServerUnavailable("pg_ctl %s of %s failed (exit %d): %s"
                                    % (action, self.data_dir, result.returncode, result.stdout.strip()))
        return result
