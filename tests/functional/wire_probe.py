# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run under another interpreter (Debian's /usr/bin/python3) by test_wire_both_ends.py.

stdin: JSON {name: hex} of samples serialized by the test's own runtime.
stdout: JSON with this runtime's versions, its serialization of every sample, and its re-serialization of the
bytes it was given (parse, then serialize), so the test can compare both directions.
"""

import binascii
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    import google.protobuf
    from google.protobuf.internal import api_implementation
    import grpc

    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration
    import wire_samples

    given = json.load(sys.stdin)
    ours = wire_samples.samples(wire, Registration)
    reparsed = {}
    for name, data in given.items():
        cls = type(ours[name])
        reparsed[name] = binascii.hexlify(cls.FromString(binascii.unhexlify(data)).SerializeToString()).decode()
    json.dump({
        "python": sys.version.split()[0],
        "protobuf": google.protobuf.__version__,
        "protobuf_file": google.protobuf.__file__,
        "implementation": api_implementation.Type(),
        "grpc": grpc.__version__,
        "wire_file": wire.__file__,
        "samples": dict((name, binascii.hexlify(msg.SerializeToString()).decode()) for name, msg in ours.items()),
        "reparsed": reparsed,
    }, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
