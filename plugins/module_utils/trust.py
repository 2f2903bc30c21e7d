# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which certificate authorities to trust, for the gRPC channel and the token endpoint alike.

gRPC ships its own root bundle and requests may use certifi's; operators expect the host's trust store (where
their private CA or a corporate proxy CA is installed), so both are pointed at it unless ``ca_path`` is given.
"""

import os
import ssl

from .errors import ValidationError


def ca_bundle_path(ca_path=None):
    """The PEM file to trust: ``ca_path`` when given, else the system bundle, else None (library default)."""
    if ca_path:
        if not os.path.isfile(ca_path):
            raise ValidationError("ca_path", "'%s' is not a readable file of PEM CA certificates" % ca_path)
        return ca_path
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt",
                      "/etc/pki/tls/certs/ca-bundle.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def root_certificates(ca_path=None):
    """The trusted roots as PEM bytes for ``grpc.ssl_channel_credentials``; None lets gRPC use its own."""
    path = ca_bundle_path(ca_path)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise ValidationError("ca_path", "cannot read '%s': %s" % (path, exc.strerror or exc))
