# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.options import CONNECTION, doc_fragment


class ModuleDocFragment:
    # Connection and authentication options shared by every module of the collection. Declared, with their
    # argument spec, environment variables and the keepalive's config keys, in plugins/module_utils/options.py.
    DOCUMENTATION = doc_fragment(CONNECTION)
