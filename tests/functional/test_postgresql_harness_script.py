# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hack/postgresql.py on a cluster of its own: start twice reuses it, a killed run's cluster starts again (also when
its postmaster.pid names a live process of the postgres user by now, or its port is taken), clean removes it all.

The cluster sits under pytest's folder, which the postgres user cannot enter: its data goes to a folder under /tmp
behind the cluster/ link, the way a clone under /root gets it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psycopg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "hack", "postgresql.py")


def harness(command, state_dir, expect=0):
    result = subprocess.run([sys.executable, SCRIPT, command, state_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=120)
    assert result.returncode == expect, result.stdout
    return result.stdout


def described(state_dir):
    with open(os.path.join(state_dir, "postgresql.json"), encoding="utf-8") as handle:
        return json.load(handle)


def connect(description, **overrides):
    params = dict(host=description["host"], hostaddr=description["hostaddr"], port=description["port"],
                  dbname=description["dbname"], user=description["user"], sslmode=description["sslmode"],
                  sslrootcert=description["sslrootcert"], passfile=description["passfile"], connect_timeout=10)
    params.update(overrides)
    return psycopg.connect(**params)


def postmaster(description):
    with open(os.path.join(description["data_dir"], "postmaster.pid"), encoding="ascii") as handle:
        return int(handle.readline())


def wait_gone(pid):
    """Until PID has ended (PID 1 here may leave it a zombie: that counts as ended)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
                if handle.read().split(")")[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError("process %d did not end" % pid)


def test_start_reuse_killed_run_and_clean(tmp_path):
    state_dir = str(tmp_path / "postgresql")
    try:
        assert "created and started" in harness("start", state_dir)
        first = described(state_dir)
        assert os.path.islink(os.path.join(state_dir, "cluster"))
        cluster = os.path.realpath(os.path.join(state_dir, "cluster"))
        assert first["data_dir"].startswith(cluster + os.sep)
        with connect(first) as connection:
            connection.execute("CREATE TABLE kept (value text)")
            connection.execute("INSERT INTO kept VALUES ('before the kill')")

        # Running: reused, same server.
        pid = postmaster(first)
        assert "reused" in harness("start", state_dir)
        assert postmaster(first) == pid
        assert "running on 127.0.0.1:%d" % first["port"] in harness("status", state_dir)

        # A killed run: the next start clears what it left and serves the same data on the same port.
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        assert "stopped" in harness("status", state_dir, expect=3)
        output = harness("start", state_dir)
        assert "cleared a killed run" in output and "started on 127.0.0.1:%d" % first["port"] in output
        with connect(first) as connection:
            assert connection.execute("SELECT value FROM kept").fetchall() == [("before the kill",)]

        # Stopped, and postmaster.pid names a live process of the postgres user (its PID was reused), and the port
        # has been taken meanwhile: start still starts, on a new port that the description and service file give.
        assert "stopped" in harness("stop", state_dir)
        squatter = subprocess.Popen(["runuser", "-u", "postgres", "--", "sleep", "60"])
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", first["port"]))
            taken.listen()
            time.sleep(0.2)
            sleeper = int(subprocess.check_output(["pgrep", "-P", str(squatter.pid)]).split()[0])
            with open(os.path.join(first["data_dir"], "postmaster.pid"), "w", encoding="ascii") as handle:
                handle.write("%d\n%s\n" % (sleeper, first["data_dir"]))
            output = harness("start", state_dir)
            moved = described(state_dir)
            assert "port %d is taken now" % first["port"] in output and moved["port"] != first["port"]
            env = dict(os.environ, PGSERVICEFILE=moved["service_file"], PGSERVICE=moved["service"],
                       PGPASSFILE=moved["passfile"])
            row = subprocess.check_output(["psql", "-Atc", "SELECT inet_server_port(), ssl FROM pg_stat_ssl "
                                           "WHERE pid = pg_backend_pid()"], env=env, universal_newlines=True)
            assert row.strip() == "%d|t" % moved["port"]
            assert squatter.poll() is None  # the process the stale PID named is left alone
        finally:
            taken.close()
            squatter.kill()
            squatter.wait()
    finally:
        harness("clean", state_dir)
    assert not os.path.lexists(state_dir)
    assert not os.path.exists(cluster)
