{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "trustpulse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the pods of one part: pass (dict "root" $ "part" "ingest"). */}}
{{- define "trustpulse.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .part }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "trustpulse.labels" -}}
{{ include "trustpulse.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: trustpulse
{{- end -}}

{{- define "trustpulse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "trustpulse.secretName" -}}
{{ .Values.secrets.name | default (include "trustpulse.fullname" .) }}
{{- end -}}

{{- define "trustpulse.sealKeySecretName" -}}
{{ .Values.sealKey.secretName | default (printf "%s-seal-key" (include "trustpulse.fullname" .)) }}
{{- end -}}

{{/* A variable from the chart's Secret: (dict "root" $ "name" "TRUSTPULSE_X" "key" "k" "optional" true). */}}
{{- define "trustpulse.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "trustpulse.secretName" .root }}
      key: {{ .key }}
      optional: {{ .optional }}
{{- end -}}

{{/* Variables from a map, sorted by name, as a YAML list (empty: nothing). */}}
{{- define "trustpulse.mapEnv" -}}
{{- $env := list -}}
{{- range $k, $v := . -}}
{{- $env = append $env (dict "name" $k "value" (toString $v)) -}}
{{- end -}}
{{- if $env }}{{ toYaml $env }}{{ end -}}
{{- end -}}

{{/*
The environment every part shares: the external NATS, the data directory,
metrics and partitions. ClickHouse is in trustpulse.clickhouseEnv (ingest does
not use it).
*/}}
{{- define "trustpulse.commonEnv" -}}
- name: TRUSTPULSE_NATS_URL
  value: {{ required "nats.url: the external JetStream cluster's URLs" .Values.nats.url | quote }}
- name: TRUSTPULSE_NATS_REPLICAS
  value: {{ .Values.nats.replicas | quote }}
- name: TRUSTPULSE_DATA_DIR
  value: /data
- name: TRUSTPULSE_THRESHOLD
  value: {{ .Values.threshold | quote }}
- name: TRUSTPULSE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: TRUSTPULSE_SHUTDOWN_TIMEOUT
  value: {{ .Values.shutdownTimeout | quote }}
{{- if .Values.metrics.enabled }}
- name: TRUSTPULSE_METRICS_ADDR
  value: {{ printf ":%v" .Values.metrics.port | quote }}
{{- end }}
{{- if gt (int .Values.projector.partitions) 1 }}
- name: TRUSTPULSE_PROJECTOR_PARTITIONS
  value: {{ .Values.projector.partitions | quote }}
{{- end }}
{{- if .Values.trustedProxyHeader }}
- name: TRUSTPULSE_TRUSTED_PROXY_HEADER
  value: {{ .Values.trustedProxyHeader | quote }}
{{- end }}
{{- end -}}

{{- define "trustpulse.clickhouseEnv" -}}
- name: TRUSTPULSE_CLICKHOUSE_ADDR
  value: {{ required "clickhouse.addr: the external ClickHouse's host:port" .Values.clickhouse.addr | quote }}
- name: TRUSTPULSE_CLICKHOUSE_DATABASE
  value: {{ .Values.clickhouse.database | quote }}
- name: TRUSTPULSE_CLICKHOUSE_USER
  value: {{ .Values.clickhouse.user | quote }}
{{ include "trustpulse.secretEnv" (dict "root" . "name" "TRUSTPULSE_CLICKHOUSE_PASSWORD" "key" "clickhouse-password" "optional" true) }}
{{- with .Values.clickhouse.cluster }}
- name: TRUSTPULSE_CLICKHOUSE_CLUSTER
  value: {{ . | quote }}
{{- end }}
{{- if gt (int .Values.clickhouse.insertQuorum) 0 }}
- name: TRUSTPULSE_CLICKHOUSE_INSERT_QUORUM
  value: {{ .Values.clickhouse.insertQuorum | quote }}
{{- end }}
{{- end -}}

{{/* The pod spec's shared part: security, scheduling, the data and tmp volumes. */}}
{{- define "trustpulse.podSpec" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "trustpulse.volumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataDir.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "trustpulse.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Probes on path /livez and /readyz of a named port. */}}
{{- define "trustpulse.probes" -}}
startupProbe:
  httpGet: {path: /livez, port: {{ . }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /livez, port: {{ . }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: {{ . }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{- define "trustpulse.metricsPort" -}}
{{- if .Values.metrics.enabled -}}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
{{- end }}
{{- end -}}
