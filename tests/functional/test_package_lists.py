# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Debian packages of the modules' Python libraries are named in three places that different tools read: bindep
(ansible-builder, ``bindep``), the pbx role (the registration module on the PBX host) and the keepalive role. They
must name the same packages."""

import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _yaml(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _bindep_dpkg():
    with open(os.path.join(ROOT, "bindep.txt"), encoding="utf-8") as handle:
        lines = [line.split("#", 1)[0].strip() for line in handle]
    # The default profile: what every host that runs the modules needs (the postgresql profile is the shared
    # ledger's driver).
    return sorted(line.split()[0] for line in lines if line and "platform:dpkg]" in line)


def test_the_three_package_lists_agree():
    bindep = _bindep_dpkg()
    assert bindep == ["python3-grpcio", "python3-protobuf", "python3-requests-oauthlib"]
    assert sorted(_yaml("roles/pbx/vars/main.yml")["__pbx_registration_packages"]) == bindep
    assert sorted(_yaml("roles/keepalive/defaults/main.yml")["keepalive_packages"]) == bindep
    spec = _yaml("roles/keepalive/meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(spec["keepalive_packages"]["default"]) == bindep
