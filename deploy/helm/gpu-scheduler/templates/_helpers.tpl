{{/* Names ---------------------------------------------------------------------------------- */}}

{{/* The chart name, or nameOverride. */}}
{{- define "gpu-scheduler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else <release>-<name>, or the release name
alone when it already contains the chart name. Kept to 55 characters so suffixes such as
"-agent" still fit a 63-character name.
*/}}
{{- define "gpu-scheduler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpu-scheduler.agentName" -}}
{{- printf "%s-agent" (include "gpu-scheduler.fullname" .) }}
{{- end }}

{{- define "gpu-scheduler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels --------------------------------------------------------------------------------- */}}

{{/* Labels every object carries. */}}
{{- define "gpu-scheduler.labels" -}}
helm.sh/chart: {{ include "gpu-scheduler.chart" . }}
app.kubernetes.io/name: {{ include "gpu-scheduler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ regexReplaceAll "[^-A-Za-z0-9_.]" (include "gpu-scheduler.imageTag" .) "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpu-scheduler
{{- end }}

{{- define "gpu-scheduler.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpu-scheduler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "gpu-scheduler.controller.labels" -}}
{{ include "gpu-scheduler.labels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "gpu-scheduler.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpu-scheduler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "gpu-scheduler.agent.labels" -}}
{{ include "gpu-scheduler.labels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{/* Image and accounts --------------------------------------------------------------------- */}}

{{- define "gpu-scheduler.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "gpu-scheduler.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "gpu-scheduler.imageTag" .) }}
{{- end }}

{{- define "gpu-scheduler.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "gpu-scheduler.fullname" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- required "controller.serviceAccount.name is required when controller.serviceAccount.create is false" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gpu-scheduler.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "gpu-scheduler.agentName" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Policy --------------------------------------------------------------------------------- */}}

{{/* The ConfigMap the controller mounts as its policy folder. */}}
{{- define "gpu-scheduler.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "gpu-scheduler.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/* Where the policy is mounted in the controller container (`--policy`). */}}
{{- define "gpu-scheduler.policyPath" -}}
/etc/gpu-scheduler/policies
{{- end }}

{{/* The name of the leader Lease; fixed in the daemon (scheduler/cli.py). */}}
{{- define "gpu-scheduler.leaseName" -}}
gpu-scheduler-leader
{{- end }}

{{/* Clusters ------------------------------------------------------------------------------- */}}

{{/* Where the kubeconfig of each remote cluster is mounted: <dir>/<name>/<key>. */}}
{{- define "gpu-scheduler.clustersPath" -}}
/etc/gpu-scheduler/clusters
{{- end }}

{{/*
clusters.remote with its defaults filled in, as a JSON list of {name, secretName, key, volume,
dir, path, apiServerCidrs}. A name listed twice, or also given as clusters.home, fails the render.
*/}}
{{- define "gpu-scheduler.remoteClusters" -}}
{{- $full := include "gpu-scheduler.fullname" . }}
{{- $root := include "gpu-scheduler.clustersPath" . }}
{{- $home := .Values.clusters.home }}
{{- $seen := dict }}
{{- $out := list }}
{{- range .Values.clusters.remote }}
{{- if hasKey $seen .name }}
{{- fail (printf "clusters.remote: cluster %q is listed twice" .name) }}
{{- end }}
{{- if eq .name $home }}
{{- fail (printf "clusters.remote: cluster %q is clusters.home, the cluster the controller runs in; it needs no kubeconfig" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $key := default "kubeconfig" .key }}
{{- $volume := printf "cluster-%s" .name }}
{{- if gt (len $volume) 63 }}
{{- $volume = printf "cluster-%s" (sha256sum .name | trunc 20) }}
{{- end }}
{{- $dir := printf "%s/%s" $root .name }}
{{- $out = append $out (dict "name" .name "secretName" (default (printf "%s-kubeconfig-%s" $full .name) .secretName)
      "key" $key "volume" $volume "dir" $dir "path" (printf "%s/%s" $dir $key)
      "apiServerCidrs" (.apiServerCidrs | default list)) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Remote mode: the Secret that holds the controller ServiceAccount's token. */}}
{{- define "gpu-scheduler.remoteTokenSecret" -}}
{{- printf "%s-token" (include "gpu-scheduler.fullname" .) }}
{{- end }}

{{/*
The controller's rules in a cluster it plans for: the home cluster's ClusterRole, and in remote
mode the only role the release grants (leader election stays in the home cluster).
*/}}
{{- define "gpu-scheduler.controller.clusterRules" -}}
# the snapshot and the watches read nodes; a taint patch re-reads the live node first;
# node labels, taints and drain annotations are merge patches
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch, patch]
{{- if .Values.createNamespaces }}
# namespace labels and the allocation annotation; createNamespaces: a consortium namespace the
# plan needs is created where it is missing (namespaces are never deleted)
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch, patch, create]
{{- else }}
# namespace labels and the allocation annotation (namespaces are never created or deleted)
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch, patch]
{{- end }}
# the ResourceQuota `gpu-scheduler` in each consortium namespace
- apiGroups: [""]
  resources: [resourcequotas]
  verbs: [list, watch, create, patch]
# GPU pods: who runs where (drains wait for them)
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# drains end with the Eviction API, which honours PodDisruptionBudgets
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
# Events on consortium namespaces (and PolicyInvalid in the release namespace); a retried
# create that answers 409 reads the Event back
- apiGroups: [""]
  resources: [events]
  verbs: [create, get]
{{- end }}

{{/* Pod helpers ----------------------------------------------------------------------------- */}}

{{/* env: from a name: value map, sorted by name. */}}
{{- define "gpu-scheduler.envFromMap" -}}
{{- range $name := keys . | sortAlpha }}
- name: {{ $name }}
  value: {{ index $ $name | toString | quote }}
{{- end }}
{{- end }}
