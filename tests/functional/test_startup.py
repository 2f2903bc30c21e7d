# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start-up cost of a task: the OAuth libraries are imported only by a process that must fetch a token, so a re-run
on a cached token (and most keepalive passes) does not pay for them."""

import json
import subprocess
import sys

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET, SIP_URI, Workdir, held, module_options

# One task as its own process, as Ansible runs it: the options on stdin; prints what it returned, the token
# requests it caused, and whether the process imported requests or requests-oauthlib.
TASK = """
import json, sys
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options
result = ensure_from_options(json.load(sys.stdin))
print(json.dumps(dict(summary=result["summary"], failed=bool(result.get("failed")),
                      imported=sorted(name for name in ("requests", "requests_oauthlib") if name in sys.modules))))
"""


def _task(options):
    done = subprocess.run([sys.executable, "-c", TASK], input=json.dumps(options), capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_only_a_process_that_fetches_a_token_imports_the_oauth_libraries(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        registrations = [dict(phone_number="+4799996%03d" % index, sip_uri=SIP_URI, route_type="loop")
                         for index in range(20)]
        options = module_options(emu, work, registrations=registrations)
        first = _task(options)
        assert first["summary"]["created"] == 20 and not first["failed"]
        assert first["imported"] == ["requests", "requests_oauthlib"]
        assert emu.calls()["token_requests"] == 1

        registrations[0]["route_type"] = "fork"  # a real call on the cached token, not only a plan
        second = _task(options)
        assert second["summary"]["updated"] == 1 and not second["failed"]
        assert second["imported"] == []
        assert emu.calls()["token_requests"] == 1  # the second process used the cached token
        assert held(emu)["+4799996000"]["route_type"] == "ROUTE_TYPE_FORK"
