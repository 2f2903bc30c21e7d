#!/usr/bin/env bash
# Create (or refresh) VENV: a venv of Debian's /usr/bin/python3 that sees Debian's packages
# (python3-grpcio 1.51, python3-protobuf 3.21, python3-requests-oauthlib 1.3, python3-psycopg 3.1), with only the
# test tools of tests/requirements-debian.txt installed into it. Then prove that those modules really come from Debian.
set -euo pipefail

venv=${1:?usage: venv-debian.sh VENV}
python=${DEBIAN_PYTHON:-/usr/bin/python3}

if [[ ! -x $venv/bin/python ]]; then
    "$python" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements-debian.txt

"$venv/bin/python" - <<'PY'
import sys

import google.protobuf
import grpc
import psycopg
import requests_oauthlib

problems = []
for name, module in (("grpc", grpc), ("google.protobuf", google.protobuf), ("requests_oauthlib", requests_oauthlib),
                     ("psycopg", psycopg)):
    if not module.__file__.startswith("/usr/lib/python3/dist-packages/"):
        problems.append("%s comes from %s, not from a Debian package" % (name, module.__file__))
if problems:
    sys.exit("venv-debian: " + "; ".join(problems))
print("venv-debian: Python %s, grpcio %s, protobuf %s, requests-oauthlib %s, psycopg %s on libpq %s (Debian packages)"
      % (sys.version.split()[0], grpc.__version__, google.protobuf.__version__, requests_oauthlib.__version__,
         psycopg.__version__, psycopg.pq.version()))
PY
