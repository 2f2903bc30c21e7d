# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""With a TTL of 5 s, the keepalive keeps every registration live for four TTLs and more, as the emulator sees it;
stopped, the same registrations lapse, so the check above can fail."""

import time

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET, LoopProcess, Workdir, held, read_health, read_metrics, \
    register, wait_for, write_config

# Each refresh comes with a third of the TTL left (a little more with jitter): 1.7 s here, of which the bound below
# (never less than 0.3 s left) allows 1.4 s of lateness. A TTL of 3 s allowed only 0.7 s, which a pass on a loaded
# machine sometimes took.
TTL = 5.0
NUMBERS = ["+4799996001", "+4799996002", "+4799996003"]


def test_keepalive_keeps_registrations_live_and_they_lapse_without_it(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=TTL) as emu:
        register(emu, work, NUMBERS[:2], route_type="loop")
        register(emu, work, NUMBERS[2:], route_type="fallback")
        write_config(emu, work)
        first = held(emu)
        assert sorted(first) == NUMBERS

        keepalive = LoopProcess(work)
        try:
            # A lapse between two polls would still show: the emulator then starts the key afresh, with a new
            # created_at and its upsert count back at 1.
            started = time.monotonic()
            lowest = TTL
            while time.monotonic() - started < 4 * TTL + 1.0:
                now = held(emu)
                assert sorted(now) == NUMBERS, "a registration lapsed while the keepalive ran: %s" % sorted(now)
                for number in NUMBERS:
                    assert now[number]["created_at"] == first[number]["created_at"], number
                    lowest = min(lowest, now[number]["remaining_ttl"])
                time.sleep(0.2)
            assert keepalive.process.poll() is None, keepalive.log()
            health = read_health(work)
            metrics = read_metrics(work)
        finally:
            status = keepalive.stop()
        assert status == 0, keepalive.log()

        last = held(emu)
        for number in NUMBERS:
            # At least one refresh per TTL over four TTLs, each well before the end (a third of the TTL left).
            assert last[number]["upserts"] >= 5, (number, last[number]["upserts"])
        assert last[NUMBERS[2]]["route_type"] == "ROUTE_TYPE_FALLBACK"
        assert lowest > 0.3, lowest
        assert health["registrations_live"] == 3 and health["failures"] == []
        assert health["last_run"]["outcome"] in ("ok", "idle")
        assert metrics["wgtwo_sipbreakout_registrations_live"] == 3
        assert metrics['wgtwo_sipbreakout_registrations{state="live"}'] == 3
        assert "signal 15" in keepalive.log()

        # Without the keepalive the very same registrations lapse within one TTL.
        wait_for(lambda: not held(emu), TTL + 1.5, message="every registration lapsed")
        assert read_health(work)["registrations_total"] == 3  # the ledger still knows them
