{{/* Names, labels, images and the shared device config of hami-ascend (the same helpers as
hami-scheduler's, under this chart's prefix: the subcharts of `hami` render together and share
one namespace of template names). */}}

{{- define "hami-ascend.prefix" -}}
{{- .Values.fullnameOverride | default .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "hami-ascend.name" -}}
{{- printf "%s-%s" (include "hami-ascend.prefix" .root) .component -}}
{{- end -}}

{{- define "hami-ascend.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: hami-ascend
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hami
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hami-ascend.selector" -}}
app.kubernetes.io/name: hami-ascend
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata: name, namespace, labels (with the component), annotations. */}}
{{- define "hami-ascend.metadata" -}}
name: {{ include "hami-ascend.name" . }}
{{- if not .cluster }}
namespace: {{ .root.Release.Namespace }}
{{- end }}
labels:
  {{- include "hami-ascend.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.global.annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* An image reference: (list image root). The registry is global.imageRegistry when set;
the tag is the image's, else global.imageTag, else the chart's appVersion. */}}
{{- define "hami-ascend.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- $registry := $root.Values.global.imageRegistry | default $image.registry -}}
{{- $tag := $image.tag | default $root.Values.global.imageTag | default $root.Chart.AppVersion -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ $image.repository }}:{{ $tag }}
{{- end -}}

{{/* HAMi's device-config.yaml: global.deviceConfig with the nvidia resource names from
global.resource*. The same define (under its own prefix) is in every subchart; a chart test
checks that they render the same file. */}}
{{- define "hami-ascend.deviceConfig" -}}
{{- $g := .Values.global -}}
{{- $config := deepCopy ($g.deviceConfig | default dict) -}}
{{- $nvidia := get $config "nvidia" | default dict -}}
{{- range $key := list "resourceCountName" "resourceMemoryName" "resourceMemoryPercentageName" "resourceCoreName" "resourcePriorityName" -}}
{{- if hasKey $nvidia $key -}}
{{- fail (printf "global.deviceConfig.nvidia.%s is set: the NVIDIA resource names are global.resourceName, global.resourceMem, global.resourceMemPercentage, global.resourceCores and global.resourcePriority (HAMi's value names); set those instead" $key) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $nvidia "resourceCountName" $g.resourceName -}}
{{- $_ := set $nvidia "resourceMemoryName" $g.resourceMem -}}
{{- $_ := set $nvidia "resourceMemoryPercentageName" $g.resourceMemPercentage -}}
{{- $_ := set $nvidia "resourceCoreName" $g.resourceCores -}}
{{- $_ := set $nvidia "resourcePriorityName" $g.resourcePriority -}}
{{- $_ := set $config "nvidia" $nvidia -}}
{{- toYaml $config -}}
{{- end -}}
