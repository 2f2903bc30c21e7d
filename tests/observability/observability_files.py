# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the collection under test and its observability files are."""

import os

import ansible_collections

ROOT = os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections", "wgtwo",
                    "sipbreakout")
OBSERVABILITY = os.path.join(ROOT, "extensions", "observability")
RULES = os.path.join(OBSERVABILITY, "prometheus", "wgtwo_sipbreakout_alerts.yml")
DASHBOARD = os.path.join(OBSERVABILITY, "grafana", "wgtwo_sipbreakout_dashboard.json")
