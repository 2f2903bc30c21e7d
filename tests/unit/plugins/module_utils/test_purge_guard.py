# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The purge guard's rule at its edges: the share (max_purge), the count (purge_allowance), and never all."""

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import purge_guard
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError


@pytest.mark.parametrize("deleting, holding, max_purge, allowance, expected", [
    (0, 0, 20, 1, True),
    (0, 3, 20, 1, True),
    (1, 3, 20, 1, True),         # a host of three loses one with the defaults (33 %)
    (2, 3, 20, 1, False),        # a list truncated to one of three
    (3, 3, 20, 1, False),        # an empty list
    (1, 1, 20, 1, False),        # an empty list on a host of one: never by the allowance
    (1, 1, 20, 5, False),
    (1, 1, 100, 1, True),        # ... only max_purge=100 deletes all
    (3, 3, 100, 0, True),
    (1, 2, 20, 1, True),
    (1, 3, 20, 0, False),        # no allowance: the share alone
    (2, 3, 20, 2, True),
    (6, 30, 20, 1, True),        # 20 %
    (7, 30, 20, 1, False),
    (20, 30, 20, 1, False),      # a third of 30 kept
    (600, 3000, 20, 1, True),
    (601, 3000, 20, 1, False),
    (2000, 3000, 20, 1, False),
    (3000, 3000, 20, 1, False),
    (5, 3000, 0, 5, True),       # the allowance does not depend on the share
    (6, 3000, 0, 5, False),
])
def test_allowed(deleting, holding, max_purge, allowance, expected):
    assert purge_guard.allowed(deleting, holding, max_purge, allowance) is expected


def test_defaults_let_a_host_of_three_lose_one_number():
    assert purge_guard.allowed(1, 3) and not purge_guard.allowed(2, 3) and not purge_guard.allowed(3, 3)


def test_refusals_say_why_and_what_to_do():
    with pytest.raises(ValidationError) as wiped:
        purge_guard.refuse(3, 3, "the ledger L holds for client:c at api:443")
    assert wiped.value.option == "max_purge"
    assert str(wiped.value) == (
        "max_purge: purge would delete 3 of the 3 registrations the ledger L holds for client:c at api:443 (100%): "
        "more than max_purge=20% and all of them, which purge_allowance never allows. If the list is really meant "
        "to name none of them, set max_purge=100, or list the numbers to remove with state=absent, which neither "
        "limit applies to.")
    with pytest.raises(ValidationError) as truncated:
        purge_guard.refuse(20, 30, "W", max_purge=10, purge_allowance=2)
    assert "delete 20 of the 30 registrations W (67%): more than max_purge=10% and more than purge_allowance=2. " \
           "If the list is really complete, raise max_purge or purge_allowance" in str(truncated.value)


@pytest.mark.parametrize("max_purge, allowance, option", [(-1, 1, "max_purge"), (100.5, 1, "max_purge"),
                                                          (20, -1, "purge_allowance")])
def test_limits_that_mean_nothing_are_refused(max_purge, allowance, option):
    with pytest.raises(ValidationError) as refused:
        purge_guard.check_limits(max_purge, allowance)
    assert refused.value.option == option


def test_limits_at_their_ends_are_accepted():
    purge_guard.check_limits(0, 0)
    purge_guard.check_limits(100, 10000)
