# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Ansible-aware util: the shared argument spec and an AnsibleModule that turns errors into failures."""

import os
import sys

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.parameters import AnsibleFallbackNotFound

from .auth import HAS_REQUESTS_OAUTHLIB, REQUESTS_OAUTHLIB_IMPORT_ERROR
from .client import GRPC_IMPORT_ERROR, HAS_GRPC
from .errors import SipBreakoutError, ValidationError
from .options import CONNECTION, LEDGER, options_in
from .wire import HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR


def env_fallback(*names):
    """Ansible's env_fallback, except that an empty variable counts as unset.

    AWX injects every variable of a credential type into a job, with an empty string for inputs left empty; those
    must not count as given (an empty WGTWO_ACCESS_TOKEN beside WGTWO_REFRESH_TOKEN is not a conflict).
    """
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


def shared_argument_spec(group):
    """The argument spec of a group of options.SHARED_OPTIONS, environment fallbacks and no_log included."""
    spec = {}
    for option in options_in(group):
        # no_log always given: Ansible warns about names like token_url that look secret but are not.
        entry = dict(type=option.type, no_log=option.secret)
        if option.default is not None:
            entry["default"] = option.default
        if option.choices:
            entry["choices"] = list(option.choices)
        if option.env:
            entry["fallback"] = (env_fallback, list(option.env))
        spec[option.name] = entry
    return spec


# Documented by the doc fragments wgtwo.sipbreakout.connection and wgtwo.sipbreakout.ledger, from the same table.
CONNECTION_ARGSPEC = shared_argument_spec(CONNECTION)
LEDGER_ARGSPEC = shared_argument_spec(LEDGER)

# The Debian 12 packages of the libraries the modules need (the pbx and keepalive roles install them).
DEBIAN_PACKAGES = {"grpcio": "python3-grpcio", "protobuf": "python3-protobuf",
                   "requests-oauthlib": "python3-requests-oauthlib"}


class SipBreakoutModule(AnsibleModule):
    """An AnsibleModule with the shared options, library checks and readable failures."""

    def __init__(self, argument_spec, **kwargs):
        spec = dict(CONNECTION_ARGSPEC)
        spec.update(LEDGER_ARGSPEC)
        spec.update(argument_spec)
        kwargs.setdefault("required_together", []).append(("client_id", "client_secret"))
        kwargs.setdefault("required_by", {}).update(refresh_token=("client_id", "client_secret"))
        kwargs.setdefault("mutually_exclusive", []).append(("access_token", "refresh_token"))
        super().__init__(argument_spec=spec, **kwargs)
        self._check_libraries()

    def _check_libraries(self):
        needed = [("grpcio", HAS_GRPC, GRPC_IMPORT_ERROR), ("protobuf", HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR)]
        if self.params.get("client_id"):
            needed.append(("requests-oauthlib", HAS_REQUESTS_OAUTHLIB, REQUESTS_OAUTHLIB_IMPORT_ERROR))
        missing = [(name, error) for name, present, error in needed if not present]
        if not missing:
            return
        if self.check_mode:
            # Check mode predicts from the ledger and sends nothing, so it runs without them (a new host's first
            # check run, before the play has installed them); a real run would fail, so say so.
            names = [name for name, _error in missing]
            self.warn("check mode without %s in %s: the result is predicted from the ledger alone, and a real run "
                      "needs them installed first (Debian 12: apt install %s)"
                      % (", ".join(names), sys.executable, " ".join(DEBIAN_PACKAGES[name] for name in names)))
            return
        name, error = missing[0]
        self.fail_json(msg=missing_required_lib(name), exception=error)

    def run(self, action):
        """``action(params, check_mode, diff, on_token, log)`` -> result dict; errors become a failed task."""
        try:
            result = action(self.params, check_mode=self.check_mode, diff=self._diff,
                            on_token=self.no_log_values.add, log=self.log)
        except SipBreakoutError as exc:
            details = dict(phone_number=exc.phone_number)
            if isinstance(exc, ValidationError):
                details["option"] = exc.option
            if getattr(exc, "code", None):
                details["code"] = exc.code
            self.fail_json(msg=str(exc), **details)
        for warning in result.pop("warnings", []):
            self.warn(warning)
        return result
