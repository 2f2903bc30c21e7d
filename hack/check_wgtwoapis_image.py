# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``check_wgtwoapis_image.py FILE``: exit 0 if FILE is a descriptor set holding the SIP breakout API.

`make wgtwoapis-image` runs it on a fresh download before keeping it: a download that went wrong can be an HTML
page or a truncated file, and the wire-contract tests must not compare against that.
"""

import sys

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

WANTED = "wgtwo/sipbreakout/v1/sipbreakout.proto"


def main(path):
    with open(path, "rb") as handle:
        data = handle.read()
    files = descriptor_pb2.FileDescriptorSet()
    try:
        files.ParseFromString(data)
    except DecodeError as exc:
        return "%s is not a protobuf descriptor set (%d bytes): %s" % (path, len(data), exc)
    names = [f.name for f in files.file]
    if WANTED not in names:
        return "%s is a descriptor set of %d files, but without %s" % (path, len(names), WANTED)
    print("%s: a descriptor set of %d files with %s" % (path, len(names), WANTED))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_wgtwoapis_image.py FILE")
    sys.exit(main(sys.argv[1]))
