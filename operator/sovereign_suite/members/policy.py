"""The ValidatingAdmissionPolicy ``cloud join`` installs in a member: the hub's ServiceAccount writes only in the
tenant namespaces (docs/multi-cluster.md, "What the hub can do in a member").

RBAC grants the hub its verbs cluster-wide (members/rbac.py); this policy, evaluated by the member's own API server
for every request of that ServiceAccount (one policy per joined cloud, matched on its user name), refuses:

- creating a Namespace without the tenant label ``sovereignsuite.io/suite``, and changing or deleting one that did
  not carry it before the request (``oldObject``): an existing namespace cannot be labelled into the hub's reach;
- a Namespace whose Pod Security ``enforce`` level is not one the member allows (``restricted`` unless join was
  told otherwise): a privileged pod would reach the node, beyond any namespace;
- any other write (create, update, delete, connect, subresources included) unless the request's namespace carries
  the tenant label (``namespaceObject``): cluster-scoped objects other than Namespaces are refused outright;
- a RoleBinding to any role but the tenant-admin and Secret-reader ClusterRoles, and a Secret-reader binding for
  anyone but the requesting ServiceAccount itself.

Admission does not see reads: the hub reads no Secret cluster-wide (members/rbac.py). Facts relied on, from
Kubernetes' admissionregistration.k8s.io/v1 API (k8s.io/api/admissionregistration/v1/types.go): ``namespaceObject``
is null for cluster-scoped resources; ``oldObject`` is null on CREATE; ``object`` is null on DELETE; a binding
without ``matchResources`` applies to everything the policy's ``matchConstraints`` match; ``resources: ["*/*"]``
matches every resource and subresource. The namespace of a request is looked up in the API server's cache and, when
not found there (a namespace created a moment ago), read from storage
(k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/namespace/matcher.go, GetNamespace).
"""

from __future__ import annotations

import json
from typing import Any

from ..components.base import LABEL_SUITE
from ..components.tenancy import TENANT_ADMIN_CLUSTER_ROLE
from . import names

API = "admissionregistration.k8s.io/v1"
ENFORCE = "pod-security.kubernetes.io/enforce"
RESTRICTED = ("restricted",)
WITH_PRIVILEGED = ("restricted", "privileged")  # Jitsi's JVB on host ports (components/tenancy: pod_security_level)


def _labelled(obj: str) -> str:
    return f"{obj} != null && has({obj}.metadata.labels) && {json.dumps(LABEL_SUITE)} in {obj}.metadata.labels"


def validations(levels: tuple[str, ...]) -> list[dict[str, str]]:
    roles = json.dumps([TENANT_ADMIN_CLUSTER_ROLE, names.SECRET_READER_ROLE])
    reader = json.dumps(names.SECRET_READER_ROLE)
    return [
        {"expression": f"!variables.isNamespace || request.operation != 'CREATE' || ({_labelled('object')})",
         "reason": "Forbidden", "message": f"the hub may create only tenant namespaces (labelled {LABEL_SUITE})"},
        {"expression": f"!variables.isNamespace || request.operation == 'CREATE' || ({_labelled('oldObject')})",
         "reason": "Forbidden", "message": f"the hub may change or delete only tenant namespaces (already labelled {LABEL_SUITE})"},
        {"expression": f"!variables.isNamespace || request.operation == 'DELETE' || (has(object.metadata.labels) && "
                       f"{json.dumps(ENFORCE)} in object.metadata.labels && "
                       f"object.metadata.labels[{json.dumps(ENFORCE)}] in {json.dumps(list(levels))})",
         "reason": "Forbidden", "message": f"a tenant namespace must enforce Pod Security {' or '.join(levels)} (label {ENFORCE}; "
                    "`cloud join --allow-privileged-tenants` allows privileged)"},
        {"expression": f"variables.isNamespace || ({_labelled('namespaceObject')})",
         "reason": "Forbidden", "message": f"the hub may write only in tenant namespaces (labelled {LABEL_SUITE}), and no cluster-scoped "
                    "object but those namespaces"},
        {"expression": f"!variables.isRoleBinding || request.operation == 'DELETE' || "
                       f"(object.roleRef.kind == 'ClusterRole' && object.roleRef.name in {roles})",
         "reason": "Forbidden", "message": f"the hub may bind only the ClusterRoles {TENANT_ADMIN_CLUSTER_ROLE} and "
                    f"{names.SECRET_READER_ROLE}"},
        {"expression": f"!variables.isRoleBinding || request.operation == 'DELETE' || object.roleRef.name != {reader} "
                       "|| (has(object.subjects) && object.subjects.all(s, s.kind == 'ServiceAccount' && "
                       "has(s.namespace) && 'system:serviceaccount:' + s.namespace + ':' + s.name == "
                       "request.userInfo.username))",
         "reason": "Forbidden", "message": f"the hub may bind {names.SECRET_READER_ROLE} only to its own ServiceAccount"},
    ]


def policy_objects(cloud: str, labels: dict[str, str], levels: tuple[str, ...] = RESTRICTED
                   ) -> list[dict[str, Any]]:
    """The policy and its binding for ``cloud``'s ServiceAccount."""
    name = names.policy(cloud)
    return [
        {"apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name, "labels": labels},
         "spec": {
             "failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"],
                                                     "resources": ["*/*"]}]},
             "matchConditions": [{"name": "the-hubs-serviceaccount",
                                  "expression": f"request.userInfo.username == {json.dumps(names.username(cloud))}"}],
             "variables": [
                 {"name": "isNamespace", "expression": "request.resource.group == '' && "
                                                     "request.resource.resource == 'namespaces' && "
                                                     "(!has(request.subResource) || request.subResource == '')"},
                 {"name": "isRoleBinding", "expression": "request.resource.group == 'rbac.authorization.k8s.io' && "
                                                       "request.resource.resource == 'rolebindings'"},
             ],
             "validations": validations(levels),
         }},
        {"apiVersion": API, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name, "labels": labels},
         "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]
