# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Attributes of the modules that change registrations.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description:
      - Predicts the result from the ledger; neither the API nor the token endpoint is called.
      - Needs none of the required libraries and no O(ca_path) file, so that a check run works on a new host before
        the play has installed them; it warns about what a real run would lack.
    support: full
  diff_mode:
    description: Shows the registration before (as the ledger holds it, if live) and after.
    support: full
  platform:
    description: Runs on the host whose ledger it uses, the controller or a remote host with Python 3.8 or newer.
    platforms: posix
    support: full
  action_group:
    description: Use C(group/wgtwo.sipbreakout.sipbreakout) in C(module_defaults) to set the shared options once.
    membership:
      - wgtwo.sipbreakout.sipbreakout
    support: full
"""
