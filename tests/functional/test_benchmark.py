# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hack/benchmark.py's rows of a large base, at a few dozen registrations, on SQLite and on the test PostgreSQL:
every run is checked at the emulator and the table and verdicts come out, so `make benchmark` does not rot between
the runs that measure."""

import importlib.util
import json
import os
import subprocess
import sys

import grpc
import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulator"))
from sipbreakout_emulator.testing import running_emulator  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARK = os.path.join(ROOT, "hack", "benchmark.py")


def benchmark(*args, env=None):
    return subprocess.run([sys.executable, BENCHMARK, "--sizes", ""] + list(args), capture_output=True, text=True,
                          timeout=300, check=False, env=env)


def test_file_rows_are_measured_checked_and_compared_with_the_smallest_size(tmp_path):
    rows_path = tmp_path / "rows.json"
    done = benchmark("--file-sizes", "80,40", "--batch-size", "10", "--json", str(rows_path))
    assert done.returncode == 0, done.stderr
    everything = json.loads(rows_path.read_text())
    assert [(result["kind"], result["count"]) for result in everything] == [
        ("file", 40), ("postgresql", 40), ("file", 80), ("postgresql", 80)]
    results = [result for result in everything if result["kind"] == "file"]
    for result in results:
        rows = result["rows"]
        assert list(rows) == ["raw", "file", "rerun", "keepalive", "info", "info_list", "add_one"]
        assert [rows[key]["count"] for key in rows] == [result["count"]] * 6 + [1]
        for key in ("raw", "file", "rerun", "keepalive"):
            entry = rows[key]
            assert entry["cpu_us"] == pytest.approx(entry["cpu"] * 1e6 / result["count"])
            assert entry["emu_cpu"] is not None
        texts = [text for text, _met in result["targets"]]
        assert any(text.startswith("file task = ") for text in texts)
        assert any(text.startswith("one number added to a ledger of %d: " % result["count"]) for text in texts)
        assert any(text.startswith("registration_info's counts of %d: " % result["count"]) for text in texts)
        assert rows["keepalive"]["metrics_series"] < 200 and rows["info_list"]["output_bytes"] > rows["info"][
            "output_bytes"]
    # Only the larger size is compared with the baseline, the smallest.
    assert not any("that at" in text for text, _met in results[0]["targets"])
    assert sum("x that at 40 (target <= 1.5x)" in text for text, _met in results[1]["targets"]) == 2
    assert "-- per registration, size by size" in done.stdout
    assert "holding up to 81 registrations" in done.stdout
    for result in everything:
        if result["kind"] != "postgresql":
            continue
        count, rows = result["count"], result["rows"]
        assert list(rows) == ["raw", "file", "keepalive", "keepalive_a", "keepalive_b", "keepalive_together",
                              "add_one"]
        # The benchmark checked the emulator (each registration refreshed once per pass) and the store's count;
        # here: the two workers' shares are the whole scope, and every target has its verdict.
        assert rows["keepalive_a"]["count"] + rows["keepalive_b"]["count"] == count
        assert [rows[key]["count"] for key in ("raw", "file", "keepalive", "keepalive_together", "add_one")] == [
            count, count, count, count, 1]
        assert rows["keepalive_together"]["cpu"] == pytest.approx(rows["keepalive_a"]["cpu"] + rows["keepalive_b"]["cpu"])
        texts = [text for text, _met in result["targets"]]
        for start in ("file task = ", "file task peak RSS", "keepalive pass, 1 worker = ", "keepalive pass, 2 workers "
                      "together = ", "keepalive worker a peak RSS", "keepalive worker b peak RSS",
                      "shares of the %d refreshes: worker a " % count, "one number added to a scope of %d: " % count):
            assert any(text.startswith(start) for text in texts), (start, texts)
    assert "PostgreSQL ledger (scope benchmark" in done.stdout


def test_without_the_test_postgresql_it_says_what_to_start_or_leave_out(tmp_path):
    missing = str(tmp_path / "postgresql.json")
    done = benchmark("--file-sizes", "20", env=dict(os.environ, SIPBREAKOUT_TEST_POSTGRESQL=missing))
    assert done.returncode == 1
    assert done.stderr.startswith("benchmark: the PostgreSQL rows need the test PostgreSQL (or --no-postgresql to "
                                  "leave them out): no test PostgreSQL described at %s: run `make postgresql`" % missing)
    assert "reg/s" not in done.stdout


def test_a_run_that_fails_stops_the_benchmark_without_a_table():
    done = benchmark("--file-sizes", "20", "--concurrency", "0")
    assert done.returncode == 1
    assert done.stderr == "benchmark: bulk-1 failed: concurrency: must be 1 or more, got 0\n"
    assert "reg/s" not in done.stdout


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_check_at_the_emulator_refuses_other_keys_other_upserts_and_other_call_counts(tmp_path):
    bench_module = load_benchmark()
    msgs = wire.messages()
    with running_emulator(tmp_path / "emu", clients=[("ci", "s3cret-s3cret")]) as emu:
        token = emu.client_token()["access_token"]
        channel = grpc.secure_channel(emu.grpc_endpoint, emu.channel_credentials())
        upsert = channel.unary_unary(wire.UPSERT_METHOD,
                                     request_serializer=msgs.UpsertRegistrationRequest.SerializeToString,
                                     response_deserializer=msgs.UpsertRegistrationResponse.FromString)

        def send(index):
            request = msgs.UpsertRegistrationRequest()
            request.registration.sip_uri = bench_module.SIP_URI
            request.registration.route_type = msgs.ROUTE_TYPE_LOOP
            request.registration.phone_number.e164 = bench_module.phone_number(index)
            assert upsert(request, metadata=[("authorization", "Bearer " + token)], timeout=10).status_code == 1

        bench = bench_module.Bench(emu, str(tmp_path), str(tmp_path), None, None)
        for index in (0, 1, 3):  # registrations(3) would be 0, 1 and 2
            send(index)
        with pytest.raises(bench_module.BenchmarkError, match=r"holds 3 registrations \(not the 3 expected\)"):
            bench.check_emulator("run", 3, {"1": 3}, 0, 3)
        send(2)
        with pytest.raises(bench_module.BenchmarkError, match="holds 4 registrations"):
            bench.check_emulator("run", 3, {"1": 4}, 0, 4)
        for index in (0, 1, 2, 3, 3):
            send(index)
        summary = bench.check_emulator("run", 4, {"2": 3, "3": 1}, 0, 9)
        assert summary["count"] == 4 and bench.most_held == 4
        with pytest.raises(bench_module.BenchmarkError, match=r"upserted {'2': 3, '3': 1} times \(expected"):
            bench.check_emulator("run", 4, {"2": 4}, 0, 9)
        with pytest.raises(bench_module.BenchmarkError, match="received 9 upserts, not 8"):
            bench.check_emulator("run", 4, {"2": 3, "3": 1}, 0, 8)
        channel.close()
