# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A keepalive pointed at a ledger that holds nothing of its own (missing, empty, or only another principal's)
fails loudly instead of refreshing nothing successfully, unless it is told to expect that."""

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET, Workdir, read_health, register, run_once, write_config

OTHER = ("other-client", "other-Secret-4417")


def _blind(emu, work):
    """One --once pass at the default log level: its exit status and log, checked to be a loud failure."""
    status, log = run_once(work)
    assert status == 1, log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert errors and "holds no registration of %s as client:%s" % (emu.grpc_endpoint, CLIENT_ID) in errors[0], log
    assert work.ledger in errors[0] and "expect_empty" in errors[0]
    health = read_health(work)
    assert health["last_run"]["outcome"] == "failed" and "holds no registration" in health["last_run"]["error"]
    return log


def test_a_keepalive_with_nothing_to_refresh_fails_unless_told_to_expect_it(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET), OTHER]) as emu:
        # No ledger at all (a path that does not match the module's): nothing is created, nothing is sent.
        write_config(emu, work)
        _blind(emu, work)
        calls = emu.calls()
        assert calls["total"] == 0 and calls["token_requests"] == 0

        # A ledger that holds only another client's registration.
        register(emu, work, ["+4799995001"], client_id=OTHER[0], client_secret=OTHER[1])
        _blind(emu, work)
        assert emu.registrations()[0]["upserts"] == 1

        # Told that nothing is expected yet (a host that declares no numbers): an idle pass, exit 0.
        write_config(emu, work, expect_empty=True)
        status, log = run_once(work)
        assert status == 0 and " ERROR " not in log, log
        assert read_health(work)["last_run"]["outcome"] == "idle"

        # Its own registration in the ledger: an ordinary pass.
        write_config(emu, work)
        register(emu, work, ["+4799995002"])
        status, log = run_once(work, "--force")
        assert status == 0, log
        assert read_health(work)["last_run"]["refreshed"] == 1
