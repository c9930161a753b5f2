{{/* Names and labels. */}}
{{- define "sso.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sso.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "sso.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "sso.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "sso.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sso.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sso.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sso.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sovereign-suite
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sso.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sso.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sso.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Tenant namespaces (scope namespaces): "<suite>-<country in lower case>", the operator's own naming rule
(components/base.py). One line per namespace: "<name> <suite> <suiteNamespace>".
*/}}
{{- define "sso.tenantNamespaces" -}}
{{- range .Values.tenants }}
{{- if not (has .suiteNamespace $.Values.watchNamespaces) }}
{{- fail (printf "tenants: suite %s is in namespace %q, which is not in watchNamespaces %v" .suite .suiteNamespace $.Values.watchNamespaces) }}
{{- end }}
{{- $t := . }}
{{- range .countries }}
{{ printf "%s-%s" $t.suite (lower .) }} {{ $t.suite }} {{ $t.suiteNamespace }}
{{- end }}
{{- end }}
{{- end }}

{{/*
RBAC, derived from the code (docs/install.md, "What the operator may do"). No wildcard anywhere.

sso.rules.children: the namespaced kinds of reconcile/pipeline.py CHILD_KINDS. The operator watches them by
label (list, watch: its cache), reads some (get), applies them server-side (patch, and create when absent),
deletes orphans (delete). Plus what the tenant-admin Role it creates grants (components/tenancy): Kubernetes refuses
to let anyone create a Role granting more than they hold, so the operator holds those read rights (watch,
pods/log, endpoints, replicasets, pods delete) rather than the "escalate" and "bind" verbs, which would let
it grant anything.
*/}}
{{- define "sso.rules.children" -}}
- apiGroups: [""]
  resources: [configmaps, persistentvolumeclaims, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [secrets, serviceaccounts, resourcequotas, limitranges]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [pods/log, endpoints, events]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies, ingresses]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, podmonitors, prometheusrules]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{/*
sso.rules.suites: what the operator does in a suite's namespace. Kopf lists and watches the suites; the
handlers read a suite, patch its finalizer (patch) and its status (sovereignsuites/status), copy the Secrets
it references into the tenants (secrets get) and post Events on it (events create).
*/}}
{{- define "sso.rules.suites" -}}
- apiGroups: [sovereignsuite.io]
  resources: [sovereignsuites]
  verbs: [get, list, watch, patch]
- apiGroups: [sovereignsuite.io]
  resources: [sovereignsuites/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
sso.rules.clusterRead: cluster-scoped reads, in both modes. NationalClouds are cluster-scoped (Kopf watches
them, every pass lists them); Kopf lists and watches CRDs to notice API changes, and namespaces when it
serves a list of namespaces; the pipeline lists namespaces by label to find a suite's tenants and reads a
namespace before creating it; GPU placement (reconcile/gpu.py) lists GPU nodes and the pods bound to them,
in every namespace, to count free GPUs.
*/}}
{{- define "sso.rules.clusterRead" -}}
- apiGroups: [sovereignsuite.io]
  resources: [nationalclouds]
  verbs: [get, list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [nodes, pods]
  verbs: [list, watch]
{{- end }}
