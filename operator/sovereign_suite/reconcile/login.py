"""Kopf's credentials: the hub client's own (credentials.py), never the ``kubernetes`` package's loader.

Kopf's default registry (kopf==1.45.2 kopf/_core/intents/registries.py, ``SmartOperatorRegistry``) tries
``import kubernetes`` when it is made, and adds the fallback login ``login_via_client``
(kopf/_core/intents/piggybacking.py), which loads the kubeconfig again through the official client: 27.5 MiB of
imports for credentials the operator already holds. Importing this module (handlers.py does, before its first
decorator) makes the default registry a plain ``OperatorRegistry`` (no fallback logins) and registers a login
that hands Kopf the hub client's configuration. Kopf calls it again after a 401, so a rotated ServiceAccount
token is read again then (apiclient.TokenFile). Kopf has no TLS server name: the hub's ``tls-server-name`` is not
given to Kopf, as it was not before.
"""

from __future__ import annotations

from typing import Any

from .kopf_import import kopf
from kopf._core.intents import registries

from .apiclient import ClientConfig

if registries._default_registry is None:  # not made yet: nothing registered on it would be dropped
    kopf.set_default_registry(kopf.OperatorRegistry())


def connection_info(cfg: ClientConfig, trust_env: bool = False) -> kopf.ConnectionInfo:
    """The hub's server, TLS files or data and bearer token, as Kopf takes them."""
    auth = cfg.authorization()
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert or None,
        ca_data=None if cfg.ssl_ca_cert else (cfg.ca_cert_data or None),
        insecure=not cfg.verify_ssl,
        scheme="Bearer" if auth else None,
        token=auth.split(" ", 1)[1] if auth else None,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
        trust_env=trust_env,
    )


@kopf.on.login()
def login(memo: kopf.Memo, logger: Any, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    cfg = memo.ctx.kube.api.configuration
    if isinstance(cfg, ClientConfig):
        return connection_info(cfg, settings.networking.trust_env)
    # the hub's kubeconfig needed the official loader (credentials.py): already imported, Kopf's own login reads it
    return kopf.login_via_client(logger=logger, settings=settings)
