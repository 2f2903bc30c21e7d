# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""wire.py on the oldest and the newest supported runtimes produce and accept the same bytes.

The oldest is Debian 12's /usr/bin/python3 with python3-protobuf 3.21 and python3-grpcio 1.51 (apt-get install
python3-protobuf python3-grpcio python3-requests-oauthlib); the newest is this venv. CI must have both: a missing
Debian package fails the test rather than skipping it.
"""

import binascii
import json
import os
import subprocess

import google.protobuf
import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration

import proto_contract
import wire_samples

PROBE = os.path.join(proto_contract.HERE, "wire_probe.py")
DEBIAN_PACKAGES = "python3-protobuf python3-grpcio python3-requests-oauthlib"


def _version(text):
    return tuple(int(part) for part in text.split(".")[:2])


@pytest.fixture(scope="module")
def venv_samples():
    return wire_samples.samples(wire, Registration)


@pytest.fixture(scope="module")
def debian(venv_samples):
    if not os.path.exists(proto_contract.DEBIAN_PYTHON):
        pytest.fail("%s is missing: these tests need Debian 12's python3 with %s"
                    % (proto_contract.DEBIAN_PYTHON, DEBIAN_PACKAGES))
    check = subprocess.run([proto_contract.DEBIAN_PYTHON, "-c", "import google.protobuf, grpc"],
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    if check.returncode:
        pytest.fail("%s cannot import protobuf/grpc; run: apt-get install -y %s\n%s"
                    % (proto_contract.DEBIAN_PYTHON, DEBIAN_PACKAGES, check.stderr))
    given = dict((name, binascii.hexlify(msg.SerializeToString()).decode()) for name, msg in venv_samples.items())
    # Only the collection on the path: nothing from the venv may leak into the Debian interpreter.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": proto_contract.collection_pythonpath(), "PYTHONNOUSERSITE": "1"}
    run = subprocess.run([proto_contract.DEBIAN_PYTHON, PROBE], input=json.dumps(given), capture_output=True,
                         text=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, "wire probe failed under %s:\n%s" % (proto_contract.DEBIAN_PYTHON, run.stderr)
    return json.loads(run.stdout)


def test_debian_side_is_really_the_old_runtime(debian):
    assert debian["protobuf_file"].startswith("/usr/lib/python3/dist-packages/"), debian["protobuf_file"]
    assert _version(debian["protobuf"]) < (4, 22), "expected Debian 12's python3-protobuf 3.21, got %s" % (
        debian["protobuf"])
    assert _version(debian["grpc"]) < (1, 52), "expected Debian 12's python3-grpcio 1.51, got %s" % debian["grpc"]
    assert _version(google.protobuf.__version__) >= (5, 0), "the venv should run a current protobuf"
    assert os.path.realpath(debian["wire_file"]) == os.path.realpath(wire.__file__)


def test_same_samples_on_both_ends(debian, venv_samples):
    assert sorted(debian["samples"]) == sorted(venv_samples)
    # Every field of every message class is set in the ".full" samples; none may serialize to nothing.
    for name, msg in venv_samples.items():
        if name.endswith(".full"):
            assert msg.ByteSize() > 0, name


def test_debian_bytes_equal_venv_bytes(debian, venv_samples):
    mismatched = dict(
        (name, (debian["samples"][name], binascii.hexlify(msg.SerializeToString()).decode()))
        for name, msg in venv_samples.items()
        if binascii.unhexlify(debian["samples"][name]) != msg.SerializeToString())
    assert not mismatched, "protobuf 3.21 and %s serialize differently: %r" % (google.protobuf.__version__, mismatched)


def test_debian_parses_venv_bytes_back(debian, venv_samples):
    for name, msg in venv_samples.items():
        assert binascii.unhexlify(debian["reparsed"][name]) == msg.SerializeToString(), name


def test_venv_parses_debian_bytes(debian, venv_samples):
    for name, msg in venv_samples.items():
        parsed = type(msg).FromString(binascii.unhexlify(debian["samples"][name]))
        assert parsed == msg, name
