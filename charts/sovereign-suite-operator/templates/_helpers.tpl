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

sso.tenantAdminRole: the ClusterRole that the tenant-admin RoleBinding of every tenant namespace references
(components/tenancy TENANT_ADMIN_CLUSTER_ROLE: a fixed, well-known name, so that `sovereign-suite render` needs
no cluster and no setting). The chart ships it; the operator may only bind it (sso.rules.bindTenantAdmin).
*/}}
{{- define "sso.tenantAdminRole" -}}
sovereign-suite-tenant-admin
{{- end }}

{{/*
sso.rules.bindTenantAdmin: Kubernetes lets a subject create a RoleBinding to a role only if it holds every right
the role grants, or holds "bind" on that role. "bind" restricted by resourceNames to the one tenant-admin
ClusterRole: the operator can hand out exactly those read rights, to the tenant's admin group, and no others;
it holds none of them itself (pods/log, endpoints, replicasets, pods delete).
*/}}
{{- define "sso.rules.bindTenantAdmin" -}}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{{ include "sso.tenantAdminRole" . }}]
{{- end }}

{{/*
sso.rules.children: the namespaced kinds of reconcile/pipeline.py CHILD_KINDS, the kinds the renderers produce.
The operator watches them by label (list, watch: its cache), reads some (get), applies them server-side (patch,
and create when absent), deletes orphans (delete).
*/}}
{{- define "sso.rules.children" -}}
- apiGroups: [""]
  resources: [configmaps, persistentvolumeclaims, services, secrets, resourcequotas, limitranges]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies, ingresses]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters, scheduledbackups]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [barmancloud.cnpg.io]
  resources: [objectstores]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, podmonitors]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{/*
sso.rules.namespaceContent: before it deletes a tenant namespace (deletionPolicy Delete), the operator lists
everything namespaced the API server serves there (reconcile/namespace_content.py, as `kubectl api-resources
--namespaced --verbs=list` finds it) and keeps the namespace if anything is not the suite's: a kind it may not
list is a doubt, and keeps the namespace. Off by default (no wildcard in the chart's rules): the tenant
namespaces are then kept on deletion, with an Event naming the kinds that could not be listed. List only.
*/}}
{{- define "sso.rules.namespaceContent" -}}
- apiGroups: ["*"]
  resources: ["*"]
  verbs: [list]
{{- end }}

{{/*
sso.rules.pods: the operator's cache watches pods that are not finished (reconcile/cache.py): the scheduler's
reasons for its own pending pods, and the GPUs that pods hold on GPU nodes. Cluster-wide in mode cluster; in
mode namespaces only in the tenant namespaces (GPU accounting then sees only those pods: docs/gpu-scheduling.md).
*/}}
{{- define "sso.rules.pods" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
{{- end }}

{{/*
sso.rules.suites: what the operator does in a suite's namespace. Kopf lists and watches the suites; the
handlers read a suite, patch its finalizer (patch) and its status (sovereignsuites/status), copy the Secrets
it references into the tenants (secrets get), create the rotation key's Secret once (secrets create:
reconcile/rotation_key.py) and post Events on the suite (events create). FineTunes the same way: Kopf lists and
watches them, the FineTune worker patches their finalizer and status (reconcile/finetune_worker.py).
*/}}
{{- define "sso.rules.suites" -}}
- apiGroups: [sovereignsuite.io]
  resources: [sovereignsuites]
  verbs: [get, list, watch, patch]
- apiGroups: [sovereignsuite.io]
  resources: [sovereignsuites/status]
  verbs: [patch]
- apiGroups: [sovereignsuite.io]
  resources: [finetunes]
  verbs: [get, list, watch, patch]
- apiGroups: [sovereignsuite.io]
  resources: [finetunes/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
sso.rules.clusterRead: cluster-scoped reads, in both modes. NationalClouds are cluster-scoped (Kopf watches
them, every pass lists them); Kopf lists and watches CRDs to notice API changes, and namespaces when it
serves a list of namespaces; the pipeline lists namespaces by label to find a suite's tenants and reads a
namespace before creating it; GPU placement (reconcile/gpu.py) watches nodes for their allocatable GPUs.
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
  resources: [nodes]
  verbs: [list, watch]
{{- end }}
