{{/* Names, labels and images of hami-monitor (the same helpers as hami-scheduler's, under
this chart's prefix: the subcharts of `hami` render together and share one namespace of
template names). */}}

{{- define "hami-monitor.prefix" -}}
{{- .Values.fullnameOverride | default .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "hami-monitor.name" -}}
{{- printf "%s-%s" (include "hami-monitor.prefix" .root) .component -}}
{{- end -}}

{{- define "hami-monitor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: hami-monitor
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hami
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hami-monitor.selector" -}}
app.kubernetes.io/name: hami-monitor
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata: name, namespace, labels (with the component), annotations. */}}
{{- define "hami-monitor.metadata" -}}
name: {{ include "hami-monitor.name" . }}
{{- if not .cluster }}
namespace: {{ .root.Release.Namespace }}
{{- end }}
labels:
  {{- include "hami-monitor.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.global.annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* An image reference: (list image root). The registry is global.imageRegistry when set;
the tag is the image's, else global.imageTag, else the chart's appVersion. */}}
{{- define "hami-monitor.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- $registry := $root.Values.global.imageRegistry | default $image.registry -}}
{{- $tag := $image.tag | default $root.Values.global.imageTag | default $root.Chart.AppVersion -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ $image.repository }}:{{ $tag }}
{{- end -}}
