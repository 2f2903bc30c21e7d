# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files in the state directory; importable without grpc, so ``stop`` and ``show`` work anywhere."""

import json
import os

INFO_FILE = "emulator.json"
LOG_FILE = "emulator.log"


def info_path(state_dir):
    """Where the running emulator describes itself."""
    return os.path.join(state_dir, INFO_FILE)


def read_info(state_dir):
    """The content of ``emulator.json``, or None if there is none (or it cannot be read)."""
    try:
        with open(info_path(state_dir), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_json_private(path, data):
    """Write ``data`` as JSON, mode 0600 (it holds client secrets), atomically."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
