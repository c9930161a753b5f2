"""LiteLLM custom_auth: which key may call which model, without LiteLLM's database (components/llm/adapters.py).

LiteLLM v1.77.7 loads ``general_settings.custom_auth: gateway_access.user_api_key_auth`` from this file beside its
config (litellm/proxy/types_utils/utils.py get_instance_fn) and calls it for every authenticated route with the key
taken from the Authorization header (``Bearer `` removed) after reading and caching the request's body
(litellm/proxy/auth/user_api_key_auth.py: user_api_key_auth, then _user_api_key_auth_builder returns this
function's UserAPIKeyAuth as it is, with no model check of its own). So this function refuses a key it does not know,
and a model the key may not call: the one in the body (JSON or form) and the one in the path
(/openai/deployments/{model}/..., /engines/{model}/..., which LiteLLM prefers to the body's).

The table (``access-keys.json``, written beside this file by write-access.py) maps the SHA-256 of each full key
(``sk-...``) to the models it may call: the master key the base models, each consumer's key its adapter.
"""

import hashlib
import hmac
import json
import os

TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "access-keys.json")


def load_table(path=TABLE_FILE):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def allowed_models(table, api_key):
    """The models ``api_key`` may call, or None for an unknown key. Every entry is compared (no early exit)."""
    if not isinstance(api_key, str) or not api_key:
        return None
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    found = None
    for entry in table["keys"]:
        if hmac.compare_digest(entry["sha256"], digest):
            found = entry
    return None if found is None else (list(found["models"]), bool(found.get("admin")))


def refusal(table, api_key, requested):
    """Why the call is refused (None: allowed). ``requested``: every model name the request names."""
    allowed = allowed_models(table, api_key)
    if allowed is None:
        return 401, "invalid API key"
    models, _ = allowed
    for model in requested:
        if not isinstance(model, str) or model not in models:
            return 403, f"this key may not call model {model!r}"
    return None


def requested_models(body, path_params):
    out = []
    for source in (body or {}, path_params or {}):
        if "model" in source and source["model"] is not None:
            out.append(source["model"])
    return out


_TABLE = None


async def user_api_key_auth(request, api_key):
    global _TABLE
    from litellm.proxy._types import LiteLLMRoutes, LitellmUserRoles, ProxyException, UserAPIKeyAuth
    from litellm.proxy.auth.auth_utils import get_request_route
    from litellm.proxy.common_utils.http_parsing_utils import _read_request_body

    # LiteLLM's own public routes (/health/readiness, the probes' route, among them) pass without a key, as they
    # do without custom_auth: LiteLLM checks them only after calling this function
    if get_request_route(request=request) in LiteLLMRoutes.public_routes.value:
        return UserAPIKeyAuth(user_role=LitellmUserRoles.INTERNAL_USER_VIEW_ONLY)
    if _TABLE is None:
        _TABLE = load_table()
    body = await _read_request_body(request=request)  # cached by LiteLLM before this call
    refused = refusal(_TABLE, api_key, requested_models(body, getattr(request, "path_params", None)))
    if refused is not None:
        # a ProxyException, which LiteLLM passes on as it is (litellm-enterprise 0.1.20, installed by
        # litellm[proxy] 1.77.7: enterprise_custom_auth calls this function and re-raises a ProxyException even
        # in custom_auth_settings mode "auto", which the operator does not allow anyway)
        raise ProxyException(message=refused[1], type="auth_error", param=None, code=refused[0])
    models, admin = allowed_models(_TABLE, api_key)
    role = LitellmUserRoles.PROXY_ADMIN if admin else LitellmUserRoles.INTERNAL_USER
    return UserAPIKeyAuth(api_key=api_key, models=models, user_role=role)
