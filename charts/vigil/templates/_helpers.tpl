{{/* Names are cut to 63 characters: the longest a label value or a DNS label may be. */}}

{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Component names: the suffix leaves room within 63 characters. */}}
{{- define "vigil.agent.fullname" -}}
{{- printf "%s-agent" (include "vigil.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "vigil.operator.fullname" -}}
{{- printf "%s-operator" (include "vigil.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end }}

{{/* Selector labels of one component; a selector is immutable, so it holds nothing that
changes with an upgrade (no version). */}}
{{- define "vigil.agent.selectorLabels" -}}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "vigil.operator.selectorLabels" -}}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "vigil.agent.labels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "vigil.operator.labels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* "repository:tag", the tag defaulting to the chart's appVersion. Argument: the image dict
and the root context, as (list $image $). */}}
{{- define "vigil.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* Where the Secrets that outputs read their credentials from are mounted. */}}
{{- define "vigil.wazuhPasswordDir" -}}/etc/vigil/wazuh/password{{- end }}
{{- define "vigil.wazuhCADir" -}}/etc/vigil/wazuh/ca{{- end }}
{{- define "vigil.rulesDir" -}}/etc/vigil/rules{{- end }}
{{- define "vigil.consoleCADir" -}}/etc/vigil/console-ca{{- end }}

{{/* The outputs, the same for the agents and the webhook collector: the Wazuh manager, the
extra outputs as given, and stdout when asked for or when nothing else would receive the
events. Credentials are file paths into mounted Secrets, never values. */}}
{{- define "vigil.outputs" -}}
{{- $outputs := list }}
{{- with .Values.outputs.wazuh }}
{{- if .enabled }}
{{- $enrollment := dict "port" (int .enrollment.port) }}
{{- with .enrollment.host }}{{ $_ := set $enrollment "host" . }}{{ end }}
{{- with .enrollment.groups }}{{ $_ := set $enrollment "groups" . }}{{ end }}
{{- with .enrollment.passwordSecret.name }}
{{- $_ := set $enrollment "password_file" (printf "%s/%s" (include "vigil.wazuhPasswordDir" $) $.Values.outputs.wazuh.enrollment.passwordSecret.key) }}
{{- end }}
{{- with .enrollment.caSecret.name }}
{{- $_ := set $enrollment "tls" (dict "ca_file" (printf "%s/%s" (include "vigil.wazuhCADir" $) $.Values.outputs.wazuh.enrollment.caSecret.key)) }}
{{- end }}
{{- $wazuh := dict "type" "wazuh" "manager" (required "outputs.wazuh.manager: the Wazuh manager's address is required with outputs.wazuh.enabled" .manager) "port" (int .port) "max_eps" (int .maxEps) "enrollment" $enrollment "spool" (dict "max_mib" (int .spool.maxMiB) "when_full" .spool.whenFull) }}
{{- $outputs = append $outputs $wazuh }}
{{- end }}
{{- end }}
{{- with .Values.operator }}
{{- if and .enabled .console.enabled }}
{{- $url := printf "https://%s-console.%s.svc:%d" (include "vigil.operator.fullname" $) $.Release.Namespace (int .console.service.port) }}
{{- $outputs = append $outputs (dict "type" "vigil" "url" $url "tls" (dict "ca_file" (printf "%s/ca.crt" (include "vigil.consoleCADir" $)))) }}
{{- end }}
{{- end }}
{{- $outputs = concat $outputs .Values.outputs.extra }}
{{- $stdout := false }}
{{- range .Values.outputs.extra }}{{ if eq .type "stdout" }}{{ $stdout = true }}{{ end }}{{ end }}
{{- if and (not $stdout) (or .Values.outputs.stdout (empty $outputs)) }}
{{- $outputs = append $outputs (dict "type" "stdout") }}
{{- end }}
{{- toYaml $outputs }}
{{- end }}

{{/* The rules block, shared by the agents and the webhook collector. */}}
{{- define "vigil.rules" -}}
builtin: {{ .Values.rules.builtin }}
{{- if .Values.rules.custom }}
paths:
  - {{ include "vigil.rulesDir" . }}
{{- end }}
{{- with .Values.rules.allowedRegistries }}
allowed_registries:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Volumes of the Secrets that outputs read (Wazuh enrollment, secretMounts) and of the
custom rules; used by both pods with the matching "vigil.outputVolumeMounts". */}}
{{- define "vigil.outputVolumes" -}}
{{- with .Values.outputs.wazuh }}
{{- if and .enabled .enrollment.passwordSecret.name }}
- name: wazuh-password
  secret:
    secretName: {{ .enrollment.passwordSecret.name }}
    items:
      - key: {{ .enrollment.passwordSecret.key }}
        path: {{ .enrollment.passwordSecret.key }}
{{- end }}
{{- if and .enabled .enrollment.caSecret.name }}
- name: wazuh-ca
  secret:
    secretName: {{ .enrollment.caSecret.name }}
    items:
      - key: {{ .enrollment.caSecret.key }}
        path: {{ .enrollment.caSecret.key }}
{{- end }}
{{- end }}
{{- range .Values.outputs.secretMounts }}
- name: secret-{{ .name }}
  secret:
    secretName: {{ .secretName }}
{{- end }}
{{- if and .Values.operator.enabled .Values.operator.console.enabled }}
- name: console-ca
  secret:
    secretName: {{ .Values.operator.console.tls.secretName }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if .Values.rules.custom }}
- name: rules
  configMap:
    name: {{ include "vigil.fullname" . }}-rules
{{- end }}
{{- end }}

{{- define "vigil.outputVolumeMounts" -}}
{{- with .Values.outputs.wazuh }}
{{- if and .enabled .enrollment.passwordSecret.name }}
- name: wazuh-password
  mountPath: {{ include "vigil.wazuhPasswordDir" $ }}
  readOnly: true
{{- end }}
{{- if and .enabled .enrollment.caSecret.name }}
- name: wazuh-ca
  mountPath: {{ include "vigil.wazuhCADir" $ }}
  readOnly: true
{{- end }}
{{- end }}
{{- range .Values.outputs.secretMounts }}
- name: secret-{{ .name }}
  mountPath: {{ .mountPath }}
  readOnly: true
{{- end }}
{{- if and .Values.operator.enabled .Values.operator.console.enabled }}
- name: console-ca
  mountPath: {{ include "vigil.consoleCADir" . }}
  readOnly: true
{{- end }}
{{- if .Values.rules.custom }}
- name: rules
  mountPath: {{ include "vigil.rulesDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Environment shared by both programs. */}}
{{- define "vigil.logEnv" -}}
- name: VIGIL_LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
- name: VIGIL_LOG
  value: {{ .Values.logging.level | quote }}
{{- end }}

{{/* A restricted container security context (Pod Security Standards "restricted"). */}}
{{- define "vigil.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}
