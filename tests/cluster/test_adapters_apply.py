"""A suite serving LoRA adapters on the real API server: every rendered object (the loader sidecar, the adapters'
ConfigMap, the Secrets named llm-adapter-key.<adapter>.<consumer>, the projected keys volume, the policy selecting
the models' pods) is admitted, under Pod Security and strict field validation, and applied for real; the keys
exist afterwards with a value (docs/llm-finetuning.md, "Serving adapters")."""

from __future__ import annotations

import base64

from sovereign_suite.api.loader import load_files
from sovereign_suite.components.llm.adapters import served_adapters_from
from sovereign_suite.reconcile.kube import ApiError, ref
from sovereign_suite.render import render_suite, with_secrets
from sovereign_suite.secretgen import missing_keys

from ..golden_refresh import ADAPTERS
from .test_render_dryrun import FIELD_MANAGER, dry_run_apply, kube  # noqa: F401 (kube: the module's fixture)


def test_adapters_apply_and_their_keys_exist(kube):  # noqa: F811
    import yaml

    client, recorder = kube
    suites, clouds = load_files([ADAPTERS / "suite.yaml", ADAPTERS / "cloud.yaml"])
    adapters = served_adapters_from(yaml.safe_load((ADAPTERS / "adapters.yaml").read_text()), "adapters.yaml")
    result = render_suite(suites[0], clouds, adapters=adapters)
    objs = with_secrets(result, {(s.namespace, s.name): missing_keys(s, None) for s in result.secrets})
    ns = next(o for o in objs if o["kind"] == "Namespace")
    client.apply(ns, FIELD_MANAGER)
    try:
        rejected, warned = [], []
        for obj in objs[1:]:
            recorder.warnings.clear()
            try:
                dry_run_apply(client, obj)
                client.apply(obj, FIELD_MANAGER)
            except ApiError as err:
                rejected.append(str(err))
            warned += [f"{ref(obj)}: {w}" for w in recorder.warnings]
        assert not rejected, "\n".join(rejected)
        assert not warned, "\n".join(warned)
        name = ns["metadata"]["name"]
        for secret in ("llm-adapter-key.impots-courriers.dgfip", "llm-adapter-key.sante-resume.dgs",
                       "llm-adapter-key.sante-resume.ars-idf"):
            live = client.get("v1", "Secret", secret, name)
            assert live is not None, secret
            assert len(base64.b64decode(live["data"]["api-key"])) == 48
        dep = client.get("apps/v1", "Deployment", "vllm-small", name)
        assert [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]] == ["vllm", "adapter-loader"]
        assert client.get("v1", "ConfigMap", "vllm-small-adapters", name) is not None
    finally:
        client.delete(ns)
