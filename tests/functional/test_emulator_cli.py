# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emulator's command line: start (background), show, stop, and what happens around them."""

import json
import os
import socket
import subprocess
import sys
import time

import grpc

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire

EMULATOR_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulator")
sys.path.insert(0, EMULATOR_DIR)
from sipbreakout_emulator.admin_client import AdminClient  # pylint: disable=wrong-import-position
from sipbreakout_emulator.process import child_env, is_running  # pylint: disable=wrong-import-position

M = wire.messages()


def emulator_cli(*args):
    """Run ``python -m sipbreakout_emulator ARGS``; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "sipbreakout_emulator"] + [str(arg) for arg in args],
                          env=child_env(), capture_output=True, text=True, timeout=60, check=False)


def read_info(state_dir):
    with open(os.path.join(str(state_dir), "emulator.json"), encoding="utf-8") as handle:
        return json.load(handle)


def upsert(info, token, **fields):
    with open(info["ca_path"], "rb") as handle:
        credentials = grpc.ssl_channel_credentials(handle.read())
    with grpc.secure_channel(info["grpc_endpoint"], credentials) as channel:
        call = channel.unary_unary(wire.UPSERT_METHOD, request_serializer=M.UpsertRegistrationRequest.SerializeToString,
                                   response_deserializer=M.UpsertRegistrationResponse.FromString)
        registration = M.Registration(**fields)
        return call(M.UpsertRegistrationRequest(registration=registration),
                    metadata=[("authorization", "Bearer " + token)], timeout=10)


def test_start_show_stop(tmp_path):
    state_dir = tmp_path / "emu"
    started = emulator_cli("start", "--state-dir", state_dir, "--client", "demo-client:demo-secret", "--ttl", "120")
    assert started.returncode == 0, started.stderr
    info = read_info(state_dir)
    try:
        assert info["grpc_endpoint"] in started.stdout
        assert "demo-secret" not in started.stdout
        assert info["clients"] == [{"client_id": "demo-client", "client_secret": "demo-secret",
                                    "scopes": ["call.routing:write"]}]
        assert is_running(info["pid"])

        again = emulator_cli("start", "--state-dir", state_dir)
        assert again.returncode == 1
        assert "already running" in again.stderr

        status, _headers, token = AdminClient(info).token_request({"grant_type": "client_credentials"},
                                                                  basic=("demo-client", "demo-secret"))
        assert status == 200
        response = upsert(info, token["access_token"], sip_uri="sips:pbx.example.com", route_type=M.ROUTE_TYPE_FORK,
                          mobile_terminating_prefix="00", phone_number=M.E164(e164="+4799990000"))
        assert response.time_to_live.seconds == 120

        shown = emulator_cli("show", "--state-dir", state_dir)
        assert shown.returncode == 0, shown.stderr
        assert "1 live registration" in shown.stdout
        row = [line for line in shown.stdout.splitlines() if line.startswith("+4799990000")]
        assert len(row) == 1
        assert row[0].split()[:5] == ["+4799990000", "sips:pbx.example.com", "ROUTE_TYPE_FORK", "-", "00"]
        assert row[0].split()[-1].startswith("1m5") or row[0].split()[-1].startswith("2m00")
        assert "UpsertRegistration OK=1" in shown.stdout
        assert "token requests: 1" in shown.stdout

        as_json = emulator_cli("show", "--state-dir", state_dir, "--json")
        assert json.loads(as_json.stdout)[0]["route_type"] == "ROUTE_TYPE_FORK"

        fault = emulator_cli("fault", "--state-dir", state_dir, "--unavailable", "2", "--latency-ms", "5")
        assert fault.returncode == 0, fault.stderr
        assert AdminClient(info).get("faults")["unavailable"] == 2
        assert json.loads(fault.stdout)["latency_ms"] == 5
        assert emulator_cli("fault", "--state-dir", state_dir, "--unavailable", "-1").returncode == 1

        assert emulator_cli("reset", "--state-dir", state_dir).returncode == 0
        assert AdminClient(info).get("registrations") == []
        assert AdminClient(info).get("faults")["unavailable"] == 0
    finally:
        stopped = emulator_cli("stop", "--state-dir", state_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert not is_running(info["pid"])
    assert not (state_dir / "emulator.json").exists()
    assert "demo-secret" not in (state_dir / "emulator.log").read_text()

    assert emulator_cli("show", "--state-dir", state_dir).returncode == 1
    assert emulator_cli("stop", "--state-dir", state_dir).returncode == 0


def test_restart_keeps_the_ca_and_fixed_ports_work(tmp_path):
    state_dir = tmp_path / "emu"
    assert emulator_cli("start", "--state-dir", state_dir, "--sandbox").returncode == 0
    first = read_info(state_dir)
    ca = (state_dir / "ca.pem").read_bytes()
    assert emulator_cli("stop", "--state-dir", state_dir).returncode == 0

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    started = emulator_cli("start", "--state-dir", state_dir, "--http-port", free_port, "--json")
    try:
        assert started.returncode == 0, started.stderr
        second = json.loads(started.stdout)
        assert second["http_port"] == free_port
        assert second["pid"] != first["pid"]
        assert "client_secret" not in started.stdout
        assert (state_dir / "ca.pem").read_bytes() == ca
        assert AdminClient(second).get("config")["sandbox"] is False
    finally:
        assert emulator_cli("stop", "--state-dir", state_dir).returncode == 0


def test_start_reports_why_it_failed(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        result = emulator_cli("start", "--state-dir", tmp_path, "--http-port", busy.getsockname()[1])
    assert result.returncode == 1
    assert "exited" in result.stderr and "Address already in use" in result.stderr
    assert not (tmp_path / "emulator.json").exists()


def test_stale_state_file_is_cleaned_up(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    (tmp_path / "emulator.json").write_text(json.dumps({"pid": int(dead.stdout)}))
    result = emulator_cli("stop", "--state-dir", tmp_path)
    assert result.returncode == 0
    assert "stale" in result.stdout
    assert not (tmp_path / "emulator.json").exists()


def test_bad_client_option_is_refused(tmp_path):
    result = emulator_cli("start", "--state-dir", tmp_path, "--client", "no-secret-here")
    assert result.returncode == 2
    assert "ID:SECRET" in result.stderr


def test_helper_emulator_ends_with_its_parent(tmp_path):
    # A test run killed outright (no cleanup at all) must not leave its emulator running.
    script = ("import sys, time\n"
              "sys.path.insert(0, %r)\n"
              "from sipbreakout_emulator.testing import running_emulator\n"
              "with running_emulator(sys.argv[1]) as emu:\n"
              "    print(emu.pid, flush=True)\n"
              "    time.sleep(60)\n" % EMULATOR_DIR)
    with subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, env=child_env(),
                          text=True) as parent:
        pid = int(parent.stdout.readline())
        assert is_running(pid)
        parent.kill()
    deadline = time.monotonic() + 10
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(pid)
    assert "parent process" in (tmp_path / "emulator.log").read_text()
