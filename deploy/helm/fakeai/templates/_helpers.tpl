{{/* The chart's name, or nameOverride. */}}
{{- define "fakeai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of the chart's objects: the release's name, with the chart's unless it holds it. */}}
{{- define "fakeai.fullname" -}}
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

{{- define "fakeai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fakeai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fakeai.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fakeai.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* A setting's value, or its default when the chart leaves it unset (null). */}}
{{- define "fakeai.setting" -}}
{{- $value := index (.root.Values.settings | default dict) .name }}
{{- if kindIs "invalid" $value }}{{ .default }}{{ else }}{{ $value }}{{ end }}
{{- end }}

{{/* fakeai serve's worker processes (settings.workers). */}}
{{- define "fakeai.workers" -}}
{{- include "fakeai.setting" (dict "root" . "name" "workers" "default" 1) | int }}
{{- end }}

{{/* The container's port: settings.port, else the image's FAKEAI_PORT (8000). */}}
{{- define "fakeai.port" -}}
{{- $port := include "fakeai.setting" (dict "root" . "name" "port" "default" 8000) | int }}
{{- if eq $port 0 }}
{{- fail "settings.port: a pod needs a fixed port (0 picks a free one, which no probe or Service can know)" }}
{{- end }}
{{- $port }}
{{- end }}

{{/* /dev/shm's size in MiB: room for every worker's metrics region (see values.yaml). */}}
{{- define "fakeai.shmMiB" -}}
{{- add .Values.shm.baseMiB (mul (include "fakeai.workers" . | int) .Values.shm.perWorkerMiB) }}
{{- end }}

{{/* A setting's value as its FAKEAI_* variable says it (fakeai.config.env_text): lists joined
with commas, booleans true or false, numbers in plain decimal (toJson: never 1e+07). */}}
{{- define "fakeai.envText" -}}
{{- if kindIs "string" . }}{{ . }}
{{- else if kindIs "slice" . }}{{ $items := list }}{{ range . }}{{ $items = append $items (include "fakeai.envText" .) }}{{ end }}{{ join "," $items }}
{{- else }}{{ toJson . }}
{{- end }}
{{- end }}

{{/* The container's requests and limits: .Values.resources, or computed for the workers. */}}
{{- define "fakeai.resources" -}}
{{- if .Values.resources }}
{{- toYaml .Values.resources }}
{{- else }}
{{- $workers := include "fakeai.workers" . | int }}
{{- $memory := add .Values.autoResources.memoryBaseMiB (mul $workers .Values.autoResources.memoryPerWorkerMiB) (include "fakeai.shmMiB" . | int) -}}
requests:
  cpu: {{ printf "%dm" (mul $workers .Values.autoResources.cpuPerWorkerMillicores | int) }}
  memory: {{ printf "%dMi" $memory }}
limits:
  memory: {{ printf "%dMi" (mul 2 $memory) }}
{{- end }}
{{- end }}
