"""Init container of the LLM gateway: LiteLLM's config.yaml with its keys, written to a memory-backed emptyDir.

Usage: python3 write-config.py CONFIG_YAML OUTPUT_YAML MASTER_KEY_FILE VLLM_KEY_FILE

CONFIG_YAML is the rendered configuration (ConfigMap llm-gateway: routes, no key). The two key files are the
Secrets' keys mounted as files (not environment variables, which /proc/<pid>/environ and every child process
show); their content is the key, byte for byte. LiteLLM v1.77.7 takes general_settings.master_key and each route's
litellm_params.api_key as written in its config (proxy_server.py load_config), so the output holds them: the
master key is "sk-" + the generated value (LiteLLM's keys start with sk-), every route (all of model_list is the
operator's) gets vLLM's key. The output is readable by the pod's user only.
"""

import json
import os
import sys

import yaml  # a dependency of LiteLLM, present in its image

source, target, master_file, vllm_file = sys.argv[1:5]
with open(source, encoding="utf-8") as f:
    config = yaml.safe_load(f)
with open(master_file, encoding="utf-8") as f:
    master = f.read()
with open(vllm_file, encoding="utf-8") as f:
    vllm_key = f.read()
config.setdefault("general_settings", {})["master_key"] = "sk-" + master
for route in config.get("model_list") or []:
    route["litellm_params"]["api_key"] = vllm_key
fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(config, f, sort_keys=True)  # JSON is YAML, and quotes every value safely
