# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A token endpoint that is down fails a bulk run once, quickly, instead of once per item."""

import time

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from sipbreakout_emulator.testing import running_emulator


def test_token_outage_fails_the_whole_bulk_run_at_once(tmp_path):
    with running_emulator(tmp_path / "emulator", clients=[("bulk-client", "bulk-secret")]) as emulator:
        emulator.faults(token_unavailable=100000)
        options = dict(
            api_endpoint=emulator.grpc_endpoint, ca_path=emulator.ca_path, token_url=emulator.token_url,
            client_id="bulk-client", client_secret="bulk-secret", timeout=3.0, retries=2,
            ledger_path=str(tmp_path / "ledger.json"), token_cache_path=str(tmp_path / "tokens.json"),
            registrations=[dict(phone_number="+47999%05d" % n, sip_uri="sips:pbx.example.com", route_type="loop")
                           for n in range(200)],
            concurrency=32)
        started = time.monotonic()
        result = ensure_from_options(options)
        elapsed = time.monotonic() - started
        calls = emulator.calls()
    # The first item fails for want of a token, and no other is started: one message names the cause and the option.
    assert result["failed"] and (result["summary"]["failed"], result["summary"]["not_sent"]) == (1, 199)
    assert result["msg"].startswith("The run stopped: the token endpoint %s did not give a token after 3 attempt(s)"
                                    % emulator.token_url)
    assert "check token_url" in result["msg"] and result["option"] == "token_url"
    assert len(result["results"]) == 10 and result["results_omitted"] == 190
    # One request and its two retries, not three per item: without the shared failure this takes minutes.
    assert calls["token_requests"] == 3
    assert calls["total"] == 0
    assert elapsed < 10
