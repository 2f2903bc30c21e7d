# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack the collection's module utilities for the keepalive program: ``bundle_module_utils.py SOURCE TARBALL``.

Runs on the controller. The tarball holds ``ansible_collections/wgtwo/sipbreakout/plugins/module_utils/...`` with
an ``__init__.py`` at every package level (so the host's copy is a regular package that no other
``ansible_collections`` on its ``sys.path`` can mix into), no bytecode, root ownership and the sources' own
modification times, so that unpacking the same sources again changes nothing. Prints each file it packed as
``MODE OWNER:GROUP DIGEST  NAME`` (``find -printf '%m %u:%g ' -exec sha256sum``), so that the role can tell, in
check mode too, whether a host's copy differs.
"""

import hashlib
import io
import os
import sys
import tarfile

PACKAGE = "ansible_collections/wgtwo/sipbreakout/plugins/module_utils"
FILE_MODE = 0o644


def _info(name, mode, mtime, size=0, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.size = size
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def collect(source):
    """Archive name -> source path (None for an empty ``__init__.py``), and the package directories."""
    files = {}
    directories = set()
    parts = PACKAGE.split("/")
    for depth in range(1, len(parts) + 1):
        directory = "/".join(parts[:depth])
        directories.add(directory)
        files[directory + "/__init__.py"] = None
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(name for name in dirnames if name != "__pycache__")
        relative = os.path.relpath(dirpath, source)
        base = PACKAGE if relative == "." else PACKAGE + "/" + relative.replace(os.sep, "/")
        directories.add(base)
        for name in filenames:
            if name.endswith(".py"):
                files[base + "/" + name] = os.path.join(dirpath, name)
    return files, directories


def pack(source, target):
    """Write the tarball; returns (name, sha256 hex digest) of every file in it, sorted by name."""
    files, directories = collect(source)
    digests = []
    with tarfile.open(target, "w:gz") as tar:
        for directory in sorted(directories):
            tar.addfile(_info(directory, 0o755, 0, kind=tarfile.DIRTYPE))
        for name in sorted(files):
            path = files[name]
            data = b""
            mtime = 0
            if path is not None:
                with open(path, "rb") as handle:
                    data = handle.read()
                mtime = int(os.stat(path).st_mtime)
            tar.addfile(_info(name, FILE_MODE, mtime, len(data)), io.BytesIO(data))
            digests.append((name, hashlib.sha256(data).hexdigest()))
    return digests


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: bundle_module_utils.py SOURCE_DIR TARBALL")
    for packed, digest in pack(sys.argv[1], sys.argv[2]):
        print("%o root:root %s  %s" % (FILE_MODE, digest, packed))
