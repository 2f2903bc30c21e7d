# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The written docs hold together: every relative link (Markdown, and RST in the generated reference and the
changelog) points at a file that exists and at a heading that exists, every guide is listed in docs/README.md, the
generated reference is where the guides say it is, and nothing links to an Ansible Galaxy page of the collection,
which is not published there."""

import glob
import os
import re

import ansible_collections

ROOT = os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections", "wgtwo",
                    "sipbreakout")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
RST_LINK = re.compile(r"<([^<>\s]+)>`_")
HEADING = re.compile(r"^#+\s+(.*?)\s*$", re.M)


def _pages():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def _rst_pages():
    return [os.path.join(ROOT, "CHANGELOG.rst")] + sorted(glob.glob(os.path.join(ROOT, "docs", "reference", "*.rst")))


def _read(path):
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read()


def _relative_links(path, anchors=False):
    """The relative link targets of a Markdown or RST page (with ``#anchor`` when ``anchors``)."""
    pattern = RST_LINK if path.endswith(".rst") else LINK
    for target in pattern.findall(_read(path)):
        if pattern is RST_LINK and target.endswith("_"):
            continue  # an RST reference to a target on the same page
        if not re.match(r"^[a-z]+:", target) and not target.startswith("#"):
            yield target if anchors else target.split("#", 1)[0]


def slug(heading):
    """The anchor a forge makes of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_relative_links_point_at_files_and_headings():
    broken = []
    for page in _pages() + _rst_pages():
        for target in _relative_links(page, anchors=True):
            path, _hash, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(page), path))
            if not os.path.exists(full):
                broken.append("%s -> %s" % (os.path.relpath(page, ROOT), target))
            elif anchor and full.endswith(".md") and anchor not in [slug(h) for h in HEADING.findall(_read(full))]:
                broken.append("%s -> %s (no such heading)" % (os.path.relpath(page, ROOT), target))
    assert broken == []


def test_nothing_links_to_a_galaxy_page():
    # The collection is installed from a release tarball or Git (README.md, Install); Galaxy has no page of it.
    linking = [os.path.relpath(page, ROOT) for page in _pages() + _rst_pages()
               if "galaxy.ansible.com" in _read(page)]
    assert linking == []


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
    page.write_text("[a](missing.md) [b](https://example.com) [c](#anchor) [d](other.md#after-make-demo)\n")
    assert list(_relative_links(str(page))) == ["missing.md", "other.md"]
    assert list(_relative_links(str(page), anchors=True)) == ["missing.md", "other.md#after-make-demo"]
    rst = tmp_path / "page.rst"
    rst.write_text("`a <../../README.md#install>`_ `b <https://example.com>`_ `c <#parameter-x>`_ `d <x_>`_\n")
    assert list(_relative_links(str(rst), anchors=True)) == ["../../README.md#install"]
    assert slug("After `make demo`") == "after-make-demo" and slug("Install") == "install"
