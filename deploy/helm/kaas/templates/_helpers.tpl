{{/* Name of the chart. */}}
{{- define "kaas.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it contains the chart name, else <release>-<chart>. */}}
{{- define "kaas.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "kaas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kaas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kaas
{{- end }}

{{/* Selector labels of the operator pods (all shards). */}}
{{- define "kaas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kaas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "kaas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kaas.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Container image: repository@digest or repository:tag (default: appVersion). */}}
{{- define "kaas.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator instances: one per shard, or a single unsharded one. A list of
{name, suffix, providers, replicas, resources} as JSON (Helm templates return strings).
*/}}
{{- define "kaas.instances" -}}
{{- $out := list }}
{{- if .Values.shards }}
{{- $seen := dict }}
{{- range .Values.shards }}
{{- $name := required "shards[].name is required" .name }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "shards[].name %q is not a DNS label" $name) }}
{{- end }}
{{- if hasKey $seen $name }}
{{- fail (printf "shards[].name %q appears twice" $name) }}
{{- end }}
{{- $_ := set $seen $name true }}
{{- range .providers }}
{{- if hasKey $seen (printf "provider/%s" .) }}
{{- fail (printf "provider %q is in more than one shard" .) }}
{{- end }}
{{- $_ := set $seen (printf "provider/%s" .) true }}
{{- end }}
{{- if not .providers }}
{{- fail (printf "shard %q: providers must not be empty (an empty list means all providers)" $name) }}
{{- end }}
{{- $out = append $out (dict "name" $name "suffix" (printf "-%s" $name) "providers" .providers "replicas" (ternary .replicas $.Values.replicas (hasKey . "replicas")) "resources" (default $.Values.resources .resources)) }}
{{- end }}
{{- else }}
{{- $out = append $out (dict "name" "" "suffix" "" "providers" (default list .Values.providers) "replicas" .Values.replicas "resources" .Values.resources) }}
{{- end }}
{{- toJson $out }}
{{- end }}
