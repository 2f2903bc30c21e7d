# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The written docs hold together: every relative link points at a file that exists, every guide is listed in
docs/README.md, and the generated reference is where the guides say it is."""

import glob
import os
import re

import ansible_collections

ROOT = os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections", "wgtwo",
                    "sipbreakout")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _pages():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def _relative_links(path):
    with open(path, "r", encoding="utf-8") as handle:
        text = handle.read()
    for target in LINK.findall(text):
        if not re.match(r"^[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#", 1)[0]


def test_relative_links_point_at_files():
    broken = []
    for page in _pages():
        for target in _relative_links(page):
            if not os.path.exists(os.path.join(os.path.dirname(page), target)):
                broken.append("%s -> %s" % (os.path.relpath(page, ROOT), target))
    assert broken == []


def test_every_guide_is_listed_in_the_docs_index():
    listed = set(_relative_links(os.path.join(ROOT, "docs", "README.md")))
    guides = set(os.path.basename(path) for path in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    assert sorted(guides - listed - {"README.md"}) == []


def test_the_reference_is_generated_and_linked():
    index = os.path.join(ROOT, "docs", "reference", "index.rst")
    with open(index, "r", encoding="utf-8") as handle:
        assert handle.read().startswith(".. Created with antsibull-docs")
    assert "reference/index.rst" in set(_relative_links(os.path.join(ROOT, "docs", "README.md")))
    assert "docs/reference/index.rst" in set(_relative_links(os.path.join(ROOT, "README.md")))


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](missing.md) [b](https://example.com) [c](#anchor)\n")
    assert list(_relative_links(str(page))) == ["missing.md"]
