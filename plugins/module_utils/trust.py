# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which certificate authorities to trust, for the gRPC channel and the token endpoint alike.

gRPC ships its own root bundle and requests may use certifi's; operators expect the host's trust store (where
their private CA or a corporate proxy CA is installed), so both are pointed at it unless ``ca_path`` is given.
"""

import os
import re
import ssl

from .errors import ValidationError

# How gRPC (BoringSSL or OpenSSL) and requests word a peer certificate that does not chain to the trusted CAs or does
# not name the host. gRPC reports it as UNAVAILABLE, as it does a refused connection; only these words tell.
_UNTRUSTED = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|not in peer certificate|"
                        r"unable to get local issuer certificate|self.signed certificate", re.IGNORECASE)


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


def untrusted(details):
    """Whether an error's text says the peer's certificate was not trusted: the same certificate comes back on
    every attempt, so that is never worth a retry."""
    return bool(_UNTRUSTED.search(details or ""))
