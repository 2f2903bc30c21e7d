# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the wire-contract tests find the operator's descriptor set, and what they do without it.

A user's lone clone has no ../shared/reference/: its `make test` must pass, skipping those tests with a reason that
says how to get the file, and say so in the summary; CI (SIPBREAKOUT_REQUIRE_WGTWOAPIS) must fail instead.
"""

import os
import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2, duration_pb2

import conftest
import proto_contract

CHECK = os.path.join(proto_contract.REPO, "hack", "check_wgtwoapis_image.py")
LAYERS = os.path.join(proto_contract.REPO, "hack", "layers.sh")


@pytest.fixture
def places(tmp_path):
    named, shared, downloaded = (tmp_path / name for name in ("named.bin", "shared.bin", "downloaded.bin"))
    for path in (named, shared, downloaded):
        path.write_bytes(b"")
    return dict(named=str(named), shared=str(shared), downloaded=str(downloaded))


@pytest.fixture
def use(monkeypatch):
    fresh = {"path": None, "skipped": 0}
    monkeypatch.setattr(proto_contract, "reference_use", fresh)
    return fresh


def test_the_variable_comes_first_then_shared_then_the_download(places):
    environ = {proto_contract.IMAGE_ENV: places["named"]}
    assert proto_contract.find_reference_image(environ, places["shared"], places["downloaded"]) == places["named"]
    assert proto_contract.find_reference_image({}, places["shared"], places["downloaded"]) == places["shared"]
    os.unlink(places["shared"])
    assert proto_contract.find_reference_image({}, places["shared"], places["downloaded"]) == places["downloaded"]
    os.unlink(places["downloaded"])
    assert proto_contract.find_reference_image({}, places["shared"], places["downloaded"]) is None


def test_a_variable_naming_a_missing_file_is_an_error_not_a_skip(places, tmp_path):
    environ = {proto_contract.IMAGE_ENV: str(tmp_path / "typo.bin")}
    with pytest.raises(RuntimeError, match="typo.bin, which is not a file"):
        proto_contract.find_reference_image(environ, places["shared"], places["downloaded"])


def test_without_the_set_the_test_skips_saying_how_to_get_it(tmp_path, use):
    missing = dict(shared=str(tmp_path / "no1"), downloaded=str(tmp_path / "no2"))
    with pytest.raises(pytest.skip.Exception) as skipped:
        proto_contract.reference_image_path({}, **missing)
    assert "make wgtwoapis-image" in str(skipped.value)
    assert proto_contract.IMAGE_ENV in str(skipped.value)
    assert use == {"path": None, "skipped": 0}
    note = conftest.wire_contract_note({"path": None, "skipped": 3})
    assert note.startswith("wire contract: NOT checked against the operator's descriptor set (3 tests skipped): ")


def test_ci_requires_the_set(tmp_path, use):
    missing = dict(shared=str(tmp_path / "no1"), downloaded=str(tmp_path / "no2"))
    with pytest.raises(pytest.fail.Exception, match=proto_contract.REQUIRE_ENV):
        proto_contract.reference_image_path({proto_contract.REQUIRE_ENV: "1"}, **missing)
    assert use["skipped"] == 0


def test_a_found_set_is_named_in_the_summary(places, use):
    assert proto_contract.reference_image_path({}, shared=places["shared"], downloaded=places["downloaded"]) \
        == places["shared"]
    assert conftest.wire_contract_note(use) == \
        "wire contract: checked against the operator's descriptor set %s" % places["shared"]
    assert conftest.wire_contract_note({"path": None, "skipped": 0}) is None


def _check(path):
    return subprocess.run([sys.executable, CHECK, str(path)], capture_output=True, text=True, check=False)


def test_the_download_check_refuses_what_is_not_the_operators_set(tmp_path):
    page = tmp_path / "page.bin"
    page.write_text("<html><body>rate limited</body></html>")
    run = _check(page)
    assert run.returncode != 0 and "is not a protobuf descriptor set" in run.stderr

    other = descriptor_pb2.FileDescriptorSet()
    other.file.add().ParseFromString(duration_pb2.DESCRIPTOR.serialized_pb)
    unrelated = tmp_path / "unrelated.bin"
    unrelated.write_bytes(other.SerializeToString())
    run = _check(unrelated)
    assert run.returncode != 0 and "without wgtwo/sipbreakout/v1/sipbreakout.proto" in run.stderr


def test_the_download_check_takes_the_operators_set():
    run = _check(proto_contract.reference_image_path())
    assert run.returncode == 0, run.stderr


def test_the_summary_prints_the_notes_of_this_run_only(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "stale.txt").write_text("a note from an earlier run\n")
    layer = tmp_path / "make"
    layer.write_text('#!/bin/sh\necho "wire contract: a note of layer $2" > "$SIPBREAKOUT_SUMMARY_NOTES/$2.txt"\n')
    layer.chmod(0o755)
    run = subprocess.run(["bash", LAYERS, "functional"], capture_output=True, text=True, check=False,
                         env=dict(os.environ, MAKE=str(layer), SIPBREAKOUT_SUMMARY_NOTES=str(notes)))
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.split("######## summary", 1)[1]
    assert "wire contract: a note of layer functional" in summary
    assert "earlier run" not in run.stdout
