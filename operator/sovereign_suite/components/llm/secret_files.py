"""The LLM component's secrets as files, not environment variables (issue 22, item 17).

vLLM v0.33.0 (the pinned image) reads its API key from ``--api-key`` or the VLLM_API_KEY variable
(vllm/entrypoints/serve/middleware/register.py: ``args.api_key or [envs.VLLM_API_KEY]``), and ``vllm serve
--config FILE`` reads any of its options from a YAML file (vllm/utils/argparse_utils.py,
FlexibleArgumentParser._pull_args_from_config / load_config_file: ``key: value`` -> ``--key value``, inserted
after the model; files ending .yaml/.yml). So an init container of the same image writes ``api-key: "<key>"``,
from the Secret's file, to a memory-backed emptyDir, and vLLM is started with ``--config`` on it: the key is in
neither the environment nor a command line (/proc/<pid>/cmdline shows the file's path).

The Hugging Face token: huggingface_hub reads the token from ``HF_TOKEN`` and, without it, from the file
``HF_TOKEN_PATH`` names (huggingface_hub constants.py and utils/_auth.py get_token / _get_token_from_file, in
1.31.0, the lowest version vLLM 0.33.0's metadata accepts: ``huggingface_hub>=1.31.0``; the variable exists
since 0.2x). vLLM itself never reads HF_TOKEN. So the token is a file of the user's Secret, named by
HF_TOKEN_PATH.

LiteLLM v1.77.7 reads ``general_settings.master_key`` and each route's ``litellm_params.api_key`` from its
config.yaml as written, or from the environment when the value is ``os.environ/<NAME>``
(litellm/proxy/proxy_server.py, load_config; litellm/secret_managers/main.py get_secret); it has no file form.
So an init container of the gateway's image (Python and PyYAML are LiteLLM dependencies) writes the complete
config, keys included, to a memory-backed emptyDir (``write-config.py``), as Synapse's init container does with
its database password.
"""

from __future__ import annotations

from typing import Any

from ..base import RenderContext, SecretKey, SecretSpec
from ..secret_files import SecretFile, mount, projected_volume
from .adapters import adapter_secrets

COMPONENT = "llm"
VLLM_PART = "vllm"
GATEWAY_PART = GATEWAY_NAME = "llm-gateway"
MASTER_KEY_SECRET_KEY = "master-key"

# vLLM
VLLM_KEY_SECRET = "vllm-api-key"
VLLM_KEY_SECRET_KEY = "api-key"
VLLM_KEY_DIR = "/run/secrets/vllm-api-key"  # the Secret's file, in the init container only
VLLM_RUNTIME = "/run/vllm"  # memory-backed emptyDir: the options file holding the key
VLLM_KEY_CONFIG = f"{VLLM_RUNTIME}/api-key.yaml"  # vLLM accepts only .yaml/.yml config files
HF_TOKEN_DIR = "/run/secrets/hugging-face"
HF_TOKEN_FILE = "HF_TOKEN"

# LiteLLM
GATEWAY_KEY_DIR = "/run/secrets/llm-gateway"
GATEWAY_RUNTIME = "/run/litellm"
GATEWAY_CONFIG_DIR = "/etc/litellm"  # ConfigMap: config.yaml without keys, and write-config.py
MASTER_KEY_FILE = "LITELLM_MASTER_KEY"
VLLM_KEY_FILE = "VLLM_API_KEY"

# the init containers' few needs: a shell or Python writing one small file
INIT_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


def memory_dir(name: str) -> dict[str, Any]:
    """An emptyDir in memory (never on a node's disk) for a file that holds a key."""
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}


def vllm_key_files() -> list[SecretFile]:
    return [SecretFile(VLLM_KEY_FILE, VLLM_KEY_SECRET, VLLM_KEY_SECRET_KEY)]


def vllm_key_script() -> str:
    """Writes ``api-key: "<key>"`` (the generated key is alphanumeric: safe inside YAML double quotes), readable
    by the pod's user only."""
    return (f"umask 077 && printf 'api-key: \"%s\"\\n' \"$(cat {VLLM_KEY_DIR}/{VLLM_KEY_FILE})\" "
            f"> {VLLM_KEY_CONFIG}")


def vllm_key_init(image: str, security: dict[str, Any]) -> dict[str, Any]:
    """The vLLM pod's init container: the key from the Secret's file into ``--config``'s YAML file."""
    return {
        "name": "api-key-config",
        "image": image,
        "command": ["/bin/sh", "-c", vllm_key_script()],
        "securityContext": security,
        "resources": INIT_RESOURCES,
        "volumeMounts": [mount("api-key", VLLM_KEY_DIR), {"name": "runtime", "mountPath": VLLM_RUNTIME}],
    }


def vllm_volumes(hf_ref: tuple[str, str] | None) -> list[dict[str, Any]]:
    volumes = [projected_volume("api-key", vllm_key_files()), memory_dir("runtime")]
    if hf_ref is not None:
        volumes.append(projected_volume("hf-token", [SecretFile(HF_TOKEN_FILE, *hf_ref)]))
    return volumes


def vllm_mounts(hf_ref: tuple[str, str] | None) -> list[dict[str, Any]]:
    mounts = [mount("runtime", VLLM_RUNTIME)]
    if hf_ref is not None:
        mounts.append(mount("hf-token", HF_TOKEN_DIR))
    return mounts


def hf_token_env() -> dict[str, str]:
    return {"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/{HF_TOKEN_FILE}"}


def gateway_files(master_secret: str, master_key: str) -> list[SecretFile]:
    return [SecretFile(MASTER_KEY_FILE, master_secret, master_key), *vllm_key_files()]


def gateway_init_command() -> list[str]:
    return ["python3", f"{GATEWAY_CONFIG_DIR}/write-config.py", f"{GATEWAY_CONFIG_DIR}/config.yaml",
            f"{GATEWAY_RUNTIME}/config.yaml", f"{GATEWAY_KEY_DIR}/{MASTER_KEY_FILE}", f"{GATEWAY_KEY_DIR}/{VLLM_KEY_FILE}"]


def secrets(ctx: RenderContext) -> list[SecretSpec]:
    """The gateway's master key, and vLLM's API key. LiteLLM wants keys starting with ``sk-``: the gateway's init
    container writes ``sk-<value>`` as the master key, so clients use ``sk-`` + this value. vLLM's key is used as it
    is (a Bearer token between the gateway and vLLM). With adapters, one key per adapter and consumer
    (adapters.py)."""
    return [
        SecretSpec(
            name=VLLM_KEY_SECRET,
            namespace=ctx.namespace,
            component=COMPONENT,
            keys={VLLM_KEY_SECRET_KEY: SecretKey("random", 48)},
            labels=ctx.labels(COMPONENT, VLLM_PART),
        ),
        SecretSpec(
            name=GATEWAY_NAME,
            namespace=ctx.namespace,
            component=COMPONENT,
            keys={MASTER_KEY_SECRET_KEY: SecretKey("random", 48)},
            labels=ctx.labels(COMPONENT, GATEWAY_PART),
        )
    ] + adapter_secrets(ctx, COMPONENT, ctx.labels(COMPONENT, GATEWAY_PART))
