# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Connection and authentication options shared by every module of the collection.
    # The argument spec is CONNECTION_ARGSPEC in plugins/module_utils/ansible_module.py.
    # Every environment variable named here counts as unset when it is empty (AWX injects empty ones).
    DOCUMENTATION = r"""
options:
  api_endpoint:
    description:
      - The gRPC endpoint of the API, as V(HOST:PORT). Port 443 is assumed when left out.
      - The public sandbox is V(sandbox.api.wgtwo.com:443); it accepts calls without credentials.
      - If not set, the environment variable E(WGTWO_API_ENDPOINT) is used; an empty one counts as unset.
      - The connection is always TLS; there is no plaintext mode.
    type: str
    default: api.wgtwo.com:443
  client_id:
    description:
      - OAuth 2.0 client id, used with O(client_secret) to get client-credentials tokens with scope
        V(call.routing:write) from O(token_url), or with O(refresh_token).
      - With client-credentials tokens every registration needs a O(ignore:phone_number).
      - If not set, the environment variable E(WGTWO_CLIENT_ID) is used; an empty one counts as unset.
    type: str
  client_secret:
    description:
      - OAuth 2.0 client secret, sent to O(token_url) only, as HTTP basic auth.
      - If not set, the environment variable E(WGTWO_CLIENT_SECRET) is used; an empty one counts as unset.
      - Never written to the token cache, the ledger or any output.
    type: str
  access_token:
    description:
      - An access token obtained elsewhere, for example a user token from the authorization-code flow, which
        belongs to one subscription so that O(ignore:phone_number) may be left out. Given or not, the number is
        the token's, so the same O(ignore:sip_uri) with and without it is one registration.
      - Cannot be renewed; when the API rejects it the task fails and says so.
      - Mutually exclusive with O(refresh_token) and O(client_id).
      - If not set, the environment variable E(WGTWO_ACCESS_TOKEN) is used; an empty one counts as unset.
    type: str
  refresh_token:
    description:
      - A refresh token (authorization-code flow with scope V(offline_access)), traded at O(token_url) for access
        tokens with O(client_id) and O(client_secret).
      - The operator rotates refresh tokens; the newest is kept in O(token_cache_path) and used from then on.
      - If not set, the environment variable E(WGTWO_REFRESH_TOKEN) is used; an empty one counts as unset.
    type: str
  token_url:
    description:
      - The OAuth 2.0 token endpoint. Must be C(https://).
      - If not set, the environment variable E(WGTWO_TOKEN_URL) is used; an empty one counts as unset.
    type: str
    default: https://id.wgtwo.com/oauth2/token
  ca_path:
    description:
      - A PEM file of CA certificates to trust for the API and the token endpoint, for a private CA.
      - When not set, the host's system trust store is used.
      - If not set, the environment variable E(WGTWO_CA_PATH) is used; an empty one counts as unset.
    type: path
  token_cache_path:
    description:
      - File where access tokens (and rotated refresh tokens) are kept between tasks, so that a play asks the
        token endpoint once rather than once per task. Created with mode 0600 in a 0700 directory.
      - It never holds the client secret. Entries are keyed by a digest of the token URL, client and credentials.
      - If not set, the environment variable E(WGTWO_TOKEN_CACHE_PATH) is used; an empty one counts as unset.
    type: path
    default: ~/.cache/wgtwo.sipbreakout/tokens.json
  timeout:
    description:
      - Seconds one operation may take in all, retries and token requests included.
    type: float
    default: 10.0
  retries:
    description:
      - How many times a transient failure (V(UNAVAILABLE), V(DEADLINE_EXCEEDED), V(RESOURCE_EXHAUSTED), token
        endpoint errors 5xx and connection errors) is retried, with exponential backoff and jitter, within
        O(timeout).
      - Rejections (V(STATUS_CODE_NOT_ACCEPTABLE)) and invalid input are never retried.
    type: int
    default: 5
"""
