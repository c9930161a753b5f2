"""No component calls a third-party service by default (issue 14; the audit table in docs/components.md).

One test per setting; each names the upstream file that says what the default would call.
"""

from __future__ import annotations

import json

import yaml

from sovereign_suite.components import docs, llm, matrix
from sovereign_suite.components.base import build_contexts

from .helpers import load_example, suite_with


def fr_ctx(patch: dict | None = None):
    suite, clouds = load_example("four-countries")
    if patch:
        suite = suite_with("four-countries", patch)
    return build_contexts(suite, clouds)[0]


def config_map(objs: list[dict], name: str) -> dict:
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    return cm["data"]


def env_of(objs: list[dict], deployment: str) -> dict:
    (d,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment]
    return {e["name"]: e.get("value") for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}


def test_synapse_reports_no_stats_and_trusts_no_key_server() -> None:
    # element-hq/synapse docs/usage/configuration/config_documentation.md: report_stats sends usage statistics
    # to matrix.org; trusted_key_servers defaults to matrix.org.
    hs = yaml.safe_load(config_map(matrix.render(fr_ctx()), "synapse")["homeserver.yaml"])
    assert hs["report_stats"] is False
    assert hs["trusted_key_servers"] == []


def test_element_has_no_integration_manager_analytics_or_bug_reports() -> None:
    # element-web docs/config.md: integrations_* (scalar.vector.im in the sample config), posthog and
    # bug_report_endpoint_url are only used when set; jitsi.preferredDomain defaults to a public Jitsi.
    config = json.loads(config_map(matrix.render(fr_ctx()), "element-web")["config.json"])
    assert config["integrations_ui_url"] == "" and config["integrations_rest_url"] == ""
    assert config["integrations_widgets_urls"] == []
    for key in ("posthog", "bug_report_endpoint_url", "piwik", "sentry", "map_style_url"):
        assert key not in config, key
    assert config["jitsi"]["preferred_domain"].endswith(".workplace.example.eu")


def test_element_without_jitsi_hides_calls_instead_of_using_a_public_jitsi() -> None:
    config = json.loads(config_map(matrix.render(fr_ctx({"components": {"jitsi": {"enabled": False}}})),
                                   "element-web")["config.json"])
    assert "jitsi" not in config
    assert config["setting_defaults"] == {"UIFeature.voip": False}


def test_vllm_sends_no_usage_stats() -> None:
    # vllm-project/vllm vllm/usage/usage_lib.py (v0.x): usage reports are off with VLLM_NO_USAGE_STATS=1 or
    # DO_NOT_TRACK=1; huggingface_hub: HF_HUB_DISABLE_TELEMETRY=1.
    env = env_of(llm.render(fr_ctx()), "vllm-llama-70b")
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["DO_NOT_TRACK"] == "1"
    assert env["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_gateway_uses_the_bundled_cost_map() -> None:
    # BerriAI/litellm: the model cost map is downloaded from GitHub at start unless
    # LITELLM_LOCAL_MODEL_COST_MAP=True (docs/my-website/docs/proxy/config_settings.md).
    assert env_of(llm.render(fr_ctx()), "llm-gateway")["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_docs_enables_no_tracking_or_external_service() -> None:
    # suitenumerique/docs src/backend/impress/settings.py (v5.4.1): SENTRY_DSN, POSTHOG_KEY (PostHog is configured
    # only when it is set; POSTHOG_HOST alone calls nothing), OPENAI_SDK_BASE_URL (or the older AI_BASE_URL),
    # MISTRAL_SDK_BASE_URL, LANGFUSE_BASE_URL, INDEXING_URL and SEARCH_URL default to None (off);
    # AI_FEATURE_ENABLED is False; LASUITE_MARKETING's backend is a dummy and SIGNUP_NEW_USER_TO_MARKETING_EMAIL is
    # False; y-provider's SENTRY_DSN is empty (src/frontend/servers/y-provider/src/env.ts). CRISP_WEBSITE_ID is gone
    # since v4. The operator sets none of them.
    objs = docs.render(fr_ctx())
    env: dict = {}
    for o in objs:
        if o["kind"] == "ConfigMap":
            env.update(o.get("data", {}))
        for pod in ([o["spec"]["template"]["spec"]] if o["kind"] in ("Deployment", "Job", "StatefulSet") else []):
            for c in pod["containers"]:
                env.update({e["name"]: e.get("value") for e in c.get("env", [])})
    for name in ("SENTRY_DSN", "POSTHOG_KEY", "POSTHOG_HOST", "CRISP_WEBSITE_ID", "AI_BASE_URL", "OPENAI_SDK_BASE_URL",
                 "MISTRAL_SDK_BASE_URL", "LANGFUSE_BASE_URL", "INDEXING_URL", "SEARCH_URL", "AI_FEATURE_ENABLED",
                 "LASUITE_MARKETING_BACKEND", "SIGNUP_NEW_USER_TO_MARKETING_EMAIL"):
        assert name not in env, name
