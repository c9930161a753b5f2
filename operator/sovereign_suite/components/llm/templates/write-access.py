"""Init step of the LLM gateway when it serves adapters: the access table of gateway_access.py, with key hashes.

Usage: python3 write-access.py ACCESS_YAML KEY_DIR ACCESS_MODULE RUNTIME_DIR

ACCESS_YAML (ConfigMap llm-gateway) names, for the master key, the models it may call, and for each consumer's key,
its file under KEY_DIR (the Secrets' keys mounted as files) and its models. Writes RUNTIME_DIR/access-keys.json
(SHA-256 of each full key, "sk-" + the file's content, with its models: no key in clear) and copies the custom_auth
module to RUNTIME_DIR, beside the config.yaml LiteLLM reads (LiteLLM loads custom_auth from the config's folder).
"""

import hashlib
import json
import os
import shutil
import sys

import yaml  # a dependency of LiteLLM, present in its image

source, key_dir, module, runtime = sys.argv[1:5]
with open(source, encoding="utf-8") as f:
    access = yaml.safe_load(f)


def digest(path):
    with open(os.path.join(key_dir, path), encoding="utf-8") as f:
        return hashlib.sha256(("sk-" + f.read()).encode()).hexdigest()


# the master key is the file write-config.py reads (secret_files.py MASTER_KEY_FILE)
keys = [{"sha256": digest("LITELLM_MASTER_KEY"), "models": access["master"], "admin": True}]
keys += [{"sha256": digest(k["file"]), "models": k["models"]} for k in access["keys"]]
fd = os.open(os.path.join(runtime, "access-keys.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump({"keys": keys}, f, sort_keys=True)
shutil.copyfile(module, os.path.join(runtime, "gateway_access.py"))
