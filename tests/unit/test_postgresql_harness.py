# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test PostgreSQL (hack/postgresql.py, tests/postgresql_support.py) is what the store's tests assume: TCP only
with the password and TLS verify-full against the test CA, a fresh database per test, an outage on demand.

`make units` runs this with the newest psycopg (and its own libpq), `make units-debian` with Debian 12's
python3-psycopg 3.1 on the system's libpq5.
"""

import os
import select
import stat
import subprocess
import sys
import time

import psycopg
import pytest

from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support


@pytest.fixture(name="server")
def server_fixture():
    return postgresql_support.server()


@pytest.fixture(name="dbname")
def dbname_fixture(server):
    with server.database() as name:
        yield name


def tls_session(connection):
    """(ssl in use, protocol) of the connection, as the server sees it."""
    return connection.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()


def test_verify_full_with_the_ca_and_the_password(server, dbname):
    connections = [psycopg.connect(**server.params(dbname, host=name)) for name in server.server_names]
    connections += [psycopg.connect(server.conninfo(dbname)), psycopg.connect(server.uri(dbname))]
    for connection in connections:
        with connection:
            assert connection.execute("SELECT current_user, current_database()").fetchone() == (server.user, dbname)
            assert tls_session(connection)[0] is True
            # The server asked for the password: no trust rule let the connection in.
            assert connection.pgconn.used_password
            options = dict((option.keyword, option.val) for option in connection.pgconn.info)
            assert options[b"sslmode"] == b"verify-full"
    with server.admin_connect() as admin:
        stored = admin.execute("SELECT rolpassword, rolsuper, rolcreatedb, rolcreaterole FROM pg_authid "
                               "WHERE rolname = %s", (server.user,)).fetchone()
    assert stored[0].startswith("SCRAM-SHA-256$")
    assert stored[1:] == (False, False, False)


def test_a_connection_without_the_password_is_refused(server, dbname, tmp_path):
    no_passfile = str(tmp_path / "no-such-passfile")
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**server.params(dbname, passfile=no_passfile))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**server.params(dbname, passfile=no_passfile, password="not-" + server.password()))
    # The superuser exists only on the socket.
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection"):
        psycopg.connect(**server.params(dbname, user=server.admin_user, with_password=True))


def test_a_host_name_the_certificate_lacks_is_refused(server, dbname):
    with pytest.raises(psycopg.OperationalError, match='does not match host name "%s"' % server.mismatch_host):
        psycopg.connect(**server.params(dbname, host=server.mismatch_host, hostaddr="127.0.0.1"))
    # The same name without verification reaches the same server: only the name check refused it.
    with psycopg.connect(**server.params(dbname, host=server.mismatch_host, hostaddr="127.0.0.1",
                                         sslmode="require")) as connection:
        assert tls_session(connection)[0] is True
    # A CA that did not sign the server's certificate.
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**server.params(dbname, sslrootcert="/etc/ssl/certs/ca-certificates.crt"))


def test_libpq_service_file_and_passfile(server, dbname, monkeypatch):
    for name, value in server.environ(dbname).items():
        monkeypatch.setenv(name, value)
    with psycopg.connect("") as connection:
        assert connection.execute("SELECT current_user, current_database()").fetchone() == (server.user, dbname)
        assert tls_session(connection)[0] is True
        assert connection.pgconn.used_password
        options = dict((option.keyword, option.val) for option in connection.pgconn.info)
        assert (options[b"host"], options[b"sslmode"]) == (b"localhost", b"verify-full")


def test_each_test_gets_its_own_empty_database(server):
    # online(): the checks after both databases are dropped run while no other worker has the server stopped.
    with server.online():
        with server.database() as first, server.database() as second:
            assert first != second
            with psycopg.connect(**server.params(first)) as connection:
                connection.execute("CREATE TABLE probe (value integer)")
                connection.execute("INSERT INTO probe VALUES (1)")
            with psycopg.connect(**server.params(second)) as connection:
                assert connection.execute("SELECT to_regclass('probe')").fetchone() == (None,)
                assert connection.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                          "ON n.oid = c.relnamespace WHERE n.nspname = 'public'").fetchone() == (0,)
            # Left open on purpose: dropping the database must end it.
            held = psycopg.connect(**server.params(second))
            with server.admin_connect() as admin:
                owners = admin.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                                       "WHERE datname IN (%s, %s)", (first, second)).fetchall()
            assert sorted(owners) == sorted([(first, server.user), (second, server.user)])
        with server.admin_connect() as admin:
            left = admin.execute("SELECT count(*) FROM pg_database WHERE datname IN (%s, %s)",
                                 (first, second)).fetchone()
        assert left == (0,)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")


def test_stop_and_start(server, dbname):
    with psycopg.connect(**server.params(dbname)) as connection:
        connection.execute("CREATE TABLE survivor (value text)")
        connection.execute("INSERT INTO survivor VALUES ('committed before the outage')")
    with server.stopped():
        assert not server.running()
        with pytest.raises(psycopg.OperationalError, match="Connection refused"):
            psycopg.connect(**server.params(dbname))
    assert server.running()
    with psycopg.connect(**server.params(dbname)) as connection:
        assert connection.execute("SELECT value FROM survivor").fetchall() == [("committed before the outage",)]


# Run by another process: it holds online() for HOLD seconds, says when it has it and when it leaves it.
HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("postgresql_support", sys.argv[1])
support = importlib.util.module_from_spec(spec)
spec.loader.exec_module(support)
with support.server(sys.argv[2]).online():
    print("holding", flush=True)
    time.sleep(float(sys.argv[3]))
    print("leaving %r" % time.time(), flush=True)
"""
HOLD = 1.5


def test_an_outage_waits_for_other_processes_online_blocks(server):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgresql_support.__file__, server.path, str(HOLD)],
                              stdout=subprocess.PIPE, universal_newlines=True)
    try:
        # Never wait for ever: a broken lock would leave both processes waiting for each other.
        assert select.select([holder.stdout], [], [], 60)[0], "the other process never got into online()"
        assert holder.stdout.readline() == "holding\n"
        began = time.monotonic()
        with server.stopped():
            waited, down_at = time.monotonic() - began, time.time()
            assert not server.running()
        output = holder.communicate(timeout=30)[0]
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == 0
    # The other process's block ended before the server went down.
    assert float(output.split()[1]) <= down_at
    assert waited >= HOLD * 0.8
    assert server.running()


def test_secrets_stay_in_their_files(server, dbname):
    password = server.password()
    assert len(password) >= 24
    for path in (server.password_file, server.passfile, server.path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # A refused login puts its attempt into the server's log; the password (or its verifier) never goes there.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**server.params(dbname, passfile=os.devnull + ".absent", password="wrong"))
    for path in (server.log_file, server.path, server.service_file):
        with open(path, encoding="utf-8") as handle:
            assert password not in handle.read(), path
    for text in (server.conninfo(dbname), server.uri(dbname), repr(server.params(dbname)), repr(server.environ())):
        assert password not in text
