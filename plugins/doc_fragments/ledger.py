# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.options import LEDGER, doc_fragment


class ModuleDocFragment:
    # The ledger's options (which store, where, which scope), shared by the modules. Declared, with their argument
    # spec, environment variables and the keepalive's config keys, in plugins/module_utils/options.py.
    DOCUMENTATION = doc_fragment(LEDGER)
