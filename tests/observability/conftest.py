# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The observability layer (`make observability`): Debian's promtool and node-exporter, and the keepalive's real
metrics in each scenario, taken once for all its tests."""

import shutil

import pytest

from scenarios import NODE_EXPORTER, run_scenarios


def _tool(name):
    path = shutil.which(name)
    # Not skipped: `make observability` installs them (Debian's prometheus and prometheus-node-exporter).
    assert path, "%s is not installed: run `make observability`, which installs it" % name
    return path


@pytest.fixture(name="promtool", scope="session")
def promtool_fixture():
    return _tool("promtool")


@pytest.fixture(name="snapshots", scope="session")
def snapshots_fixture(tmp_path_factory):
    _tool(NODE_EXPORTER)
    return run_scenarios(tmp_path_factory.mktemp("scenarios"))


@pytest.fixture(name="written_metrics", scope="session")
def written_metrics_fixture(snapshots):
    """The names of every series the keepalive wrote in the scenarios."""
    return set(name for taken in snapshots.values() for snapshot in taken
               for name, _labels, _value in snapshot.keepalive_samples())
