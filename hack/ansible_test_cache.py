# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put an offline stand-in for ansible-test's get-pip bootstrap script into its cache (`make ansible-test-cache`).

Before ansible-test installs anything into a virtual environment it creates (sanity tests, `--venv`), it runs a
get-pip script that it downloads from a host these machines cannot reach, unless a copy already sits at
~/.ansible/test/cache/get_pip_<version>.py. This writes a small script there instead: it installs pip from a
pip wheel downloaded from PyPI into the same folder, then runs that pip with the arguments ansible-test gives.

Run it with the Python whose ansible-test will be used; it reads the pip version ansible-test wants from there.
"""

import argparse
import glob
import os
import subprocess
import sys

DEFAULT_PIP_VERSION = "24.2"
CACHE_DIR = os.path.join("~", ".ansible", "test", "cache")

STAND_IN = '''\
# -*- coding: utf-8 -*-
# Written by hack/ansible_test_cache.py of the wgtwo.sipbreakout collection: an offline stand-in for get-pip.py.
"""Install pip {version} from the wheel beside this file, then the packages ansible-test asks for."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL = os.path.join(HERE, "{wheel}")
# get-pip.py options that only mean "do not add setuptools or wheel", which this script never adds.
DROPPED = ("--no-setuptools", "--no-wheel")


def main():
    if not os.path.isfile(WHEEL):
        sys.stderr.write("pip wheel missing: %s (run `make ansible-test-cache`)\\n" % WHEEL)
        return 1
    sys.path.insert(0, WHEEL)
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    args = [arg for arg in sys.argv[1:] if arg not in DROPPED]
    return pip_main(["install", "--upgrade", "--force-reinstall", "--find-links", HERE] + args)


if __name__ == "__main__":
    sys.exit(main())
'''


def wanted_pip_version():
    """Return the pip version the installed ansible-test bootstraps, or the one known when this was written."""
    try:
        # pylint: disable-next=import-outside-toplevel
        from ansible_test._internal.python_requirements import get_venv_packages
    except ImportError:
        return DEFAULT_PIP_VERSION

    class _Python:  # pylint: disable=too-few-public-methods
        version = "%d.%d" % sys.version_info[:2]

    try:
        return get_venv_packages(_Python())["pip"]
    except (KeyError, TypeError, AttributeError):
        return DEFAULT_PIP_VERSION


def ensure_wheel(cache_dir, version):
    """Download the pip wheel into cache_dir unless it is already there; return its file name."""
    pattern = os.path.join(cache_dir, "pip-%s-py3-none-any.whl" % version)
    found = glob.glob(pattern)
    if not found:
        subprocess.check_call([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                               "--no-deps", "--only-binary=:all:", "--dest", cache_dir, "pip==%s" % version])
        found = glob.glob(pattern)
    if not found:
        raise SystemExit("ansible_test_cache: pip download did not produce %s" % pattern)
    return os.path.basename(found[0])


def write_if_changed(path, text):
    """Write text to path atomically unless the file already holds exactly that; return True if written."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return True


def main():
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache-dir", default=os.path.expanduser(CACHE_DIR))
    parser.add_argument("--pip-version", default=None, help="default: the version the installed ansible-test wants")
    args = parser.parse_args()

    version = args.pip_version or wanted_pip_version()
    os.makedirs(args.cache_dir, exist_ok=True)
    wheel = ensure_wheel(args.cache_dir, version)
    target = os.path.join(args.cache_dir, "get_pip_%s.py" % version.replace(".", "_"))
    written = write_if_changed(target, STAND_IN.format(version=version, wheel=wheel))
    print("ansible-test-cache: %s %s (pip %s from %s)" % (target, "written" if written else "up to date", version, wheel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
