"""Extra Ingress annotations per component (``spec.components.<component>.ingressAnnotations``), and the keys
nobody but the operator or the NationalCloud may set.

A user adds annotations for the cloud's ingress controller (rate limits, CORS, an allow-list, ...). Keys are
checked with the API server's own rule (k8s.io/apimachinery pkg/api/validation/objectmeta.go,
``ValidateAnnotations``: ``IsQualifiedName(strings.ToLower(key))``, and the sum of the keys' and values' bytes at
most ``TotalAnnotationSizeLimitB`` = 256 KiB per object). Values are any string: they are printed into the YAML
through ``tojson`` like every other value (components/base.py).

Refused, whatever the controller (so that the rule does not depend on which cloud a tenant is on):
- the annotations the operator renders itself (components/ingress.py): they follow fields of the suite or the
  cloud, and two sources for one key would fight. The request-size and timeout keys are the operator's on Matrix,
  Docs and the LLM gateway only: Jitsi's Ingress has none of its own, and a longer read timeout for its
  WebSocket is the user's to add (docs/components/jitsi.md);
- ``kubernetes.io/ingress.class``: the operator always sets ``spec.ingressClassName`` from the NationalCloud; the
  API server refuses the annotation unless it repeats that value (kubernetes v1.37.2 pkg/apis/networking/
  validation/validation.go, ``ValidateIngressCreate``: "must match `ingressClassName` when both are specified";
  older releases refused any value), so it could only fail or say nothing;
- ``kubernetes.io/tls-acme``: asks cert-manager's ingress-shim for its default issuer; which issuer signs a
  country's hosts is the platform team's choice (NationalCloud ``spec.certManager``);
- ingress-nginx's ``*-snippet`` annotations: raw nginx configuration in the controller shared by every tenant,
  which can read the controller's credentials (CVE-2021-25742; ingress-nginx rates them "Critical" and turns
  them off by default since v1.9). A suite editor may not inject into generated files (docs/security.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from .kubenames import dns1123_subdomain_problem, LABEL_NAME_MAX, LABEL_VALUE_RE

NGINX = "nginx.ingress.kubernetes.io/"
CERT_MANAGER = "cert-manager.io/"
PROXY_BODY_SIZE = NGINX + "proxy-body-size"
PROXY_READ_TIMEOUT = NGINX + "proxy-read-timeout"
PROXY_SEND_TIMEOUT = NGINX + "proxy-send-timeout"
# ingress-nginx's client allow-list (kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/
# #whitelist-source-range; ``allowlist-source-range`` is the newer spelling of the same annotation). The operator
# writes it on Docs' admin Ingress only (components/docs: docs.admin.sourceRanges).
WHITELIST_SOURCE_RANGE = NGINX + "whitelist-source-range"
ALLOWLIST_KEYS = (WHITELIST_SOURCE_RANGE, NGINX + "allowlist-source-range")
CERT_MANAGER_ISSUER_KEYS = tuple(CERT_MANAGER + k for k in ("issuer", "cluster-issuer", "issuer-kind", "issuer-group"))

# Why each refused key is refused (the error message after the field path).
LIMIT_REASON = ("is set by the operator for ingress-nginx (from matrix.maxUploadSize, llm.gateway.maxBodySize and "
                "timeoutSeconds, and Docs' and Synapse's own limits: components/ingress.py)")
LIMIT_KEYS = (PROXY_BODY_SIZE, PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT)
REFUSED_KEYS: dict[str, str] = {
    **{k: "is set by the operator from the NationalCloud's spec.certManager.issuerRef (the platform team chooses "
          "the issuer)" for k in CERT_MANAGER_ISSUER_KEYS},
    "kubernetes.io/tls-acme": "would ask cert-manager for its default issuer; the issuer is the NationalCloud's "
                              "spec.certManager.issuerRef",
    "kubernetes.io/ingress.class": "the class is spec.ingressClassName, set by the operator from the "
                                   "NationalCloud's ingressClass (the API server refuses a different value here)",
}
SNIPPET_REASON = ("is raw nginx configuration in the ingress controller every tenant shares (CVE-2021-25742): "
                  "not accepted from a suite")

MAX_ANNOTATIONS = 32
MAX_VALUE_LENGTH = 4096
# 32 keys of at most 317 characters and values of 4096 characters could reach 540 KB in UTF-8 (4 bytes per
# character); the API server refuses an object whose annotations exceed 256 KiB. Bounded well below that, so that
# the operator's own annotations always fit beside them.
MAX_TOTAL_BYTES = 64 * 1024
MAX_KEY_LENGTH = 253 + 1 + LABEL_NAME_MAX


def key_problem(key: str, limits_owned: bool = True) -> str | None:
    """The problem with an annotation key, or None: the API server's syntax, then the refused keys.
    ``limits_owned``: the operator writes the request-size and timeout keys on the component's Ingresses."""
    prefix, slash, name = key.lower().rpartition("/")
    if slash and (not prefix or dns1123_subdomain_problem(prefix)):
        return f"{key!r} is not an annotation key: its prefix {prefix!r} must be a DNS-1123 subdomain"
    if not name or len(name) > LABEL_NAME_MAX or not LABEL_VALUE_RE.match(name):
        return (f"{key!r} is not an annotation key: the name after the optional '<prefix>/' must have 1 to "
                f"{LABEL_NAME_MAX} letters, digits, '-', '_' or '.', beginning and ending with a letter or digit")
    lowered = key.lower()
    if lowered in REFUSED_KEYS:
        return REFUSED_KEYS[lowered]
    if limits_owned and lowered in LIMIT_KEYS:
        return LIMIT_REASON
    if lowered.startswith(NGINX) and lowered.endswith("-snippet"):
        return SNIPPET_REASON
    return None


def _key(value: str) -> str:
    problem = key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _jitsi_key(value: str) -> str:
    problem = key_problem(value, limits_owned=False)
    if problem:
        raise ValueError(problem)
    return value


def _total(value: dict[str, str]) -> dict[str, str]:
    size = sum(len(k.encode()) + len(v.encode("utf-8", "surrogatepass")) for k, v in value.items())
    if size > MAX_TOTAL_BYTES:
        raise ValueError(f"the keys and values take {size} bytes; at most {MAX_TOTAL_BYTES} (the API server refuses "
                         "an object whose annotations exceed 256 KiB, and the operator adds its own)")
    return value


AnnotationKey = Annotated[str, AfterValidator(_key), Field(min_length=1, max_length=MAX_KEY_LENGTH)]
AnnotationValue = Annotated[str, Field(max_length=MAX_VALUE_LENGTH)]
IngressAnnotations = Annotated[dict[AnnotationKey, AnnotationValue], AfterValidator(_total)]
JitsiAnnotationKey = Annotated[str, AfterValidator(_jitsi_key), Field(min_length=1, max_length=MAX_KEY_LENGTH)]
JitsiIngressAnnotations = Annotated[dict[JitsiAnnotationKey, AnnotationValue], AfterValidator(_total)]


def ingress_annotations_field(limits_owned: bool = True) -> object:
    """The ``ingressAnnotations`` field of a component."""
    limits = ("proxy-body-size, proxy-read-timeout, proxy-send-timeout, " if limits_owned else "")
    return Field(
        default_factory=dict,
        max_length=MAX_ANNOTATIONS,
        description="Extra annotations on the component's Ingresses, for the cloud's ingress controller. Keys: "
        f"annotation keys ([<DNS prefix>/]<name>); not one the operator sets ({limits}cert-manager.io issuer keys), "
        "kubernetes.io/ingress.class, kubernetes.io/tls-acme or an ingress-nginx *-snippet. Values: strings of at "
        "most 4096 characters, 64 KiB in all.",
    )
