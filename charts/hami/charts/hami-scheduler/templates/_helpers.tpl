{{/* Names, labels, images and the shared device config of hami-scheduler. Every define is
prefixed with the chart's name: the subcharts of `hami` render together and share one
namespace of template names. */}}

{{- define "hami-scheduler.prefix" -}}
{{- .Values.fullnameOverride | default .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "hami-scheduler.name" -}}
{{- printf "%s-%s" (include "hami-scheduler.prefix" .root) .component -}}
{{- end -}}

{{- define "hami-scheduler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: hami-scheduler
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hami
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hami-scheduler.selector" -}}
app.kubernetes.io/name: hami-scheduler
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata: name, namespace, labels (with the component), annotations. */}}
{{- define "hami-scheduler.metadata" -}}
name: {{ include "hami-scheduler.name" . }}
{{- if not .cluster }}
namespace: {{ .root.Release.Namespace }}
{{- end }}
labels:
  {{- include "hami-scheduler.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.global.annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* An image reference: (list image root). The registry is global.imageRegistry when set;
the tag is the image's, else global.imageTag, else the chart's appVersion. */}}
{{- define "hami-scheduler.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- $registry := $root.Values.global.imageRegistry | default $image.registry -}}
{{- $tag := $image.tag | default $root.Values.global.imageTag | default $root.Chart.AppVersion -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ $image.repository }}:{{ $tag }}
{{- end -}}

{{/* kube-scheduler's tag: the value, else the cluster's version without build suffixes
(v1.31.2+k3s1 -> v1.31.2, HAMi #642). */}}
{{- define "hami-scheduler.kubeSchedulerImage" -}}
{{- $image := .Values.kubeScheduler.image -}}
{{- $tag := $image.tag | default (regexFind "^v[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version) -}}
{{- $registry := .Values.global.imageRegistry | default $image.registry -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ $image.repository }}:{{ $tag }}
{{- end -}}

{{- define "hami-scheduler.pullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* HAMi's device-config.yaml: global.deviceConfig with the nvidia resource names from
global.resource*. The same define (under its own prefix) is in every subchart; a chart test
checks that they render the same file. */}}
{{- define "hami-scheduler.deviceConfig" -}}
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

{{/* The resources hami-rs places, as a list: NVIDIA's from global.resource*, Cambricon's
from deviceConfig.cambricon (HAMi's defaults), and with enableAscend (HAMi's --enable-ascend)
Ascend's from every deviceConfig.vnpus entry.
kube-scheduler leaves them to the extender and the webhook looks only at pods asking for them.
A name twice is refused here: kube-scheduler would crash on it (HAMi #485). */}}
{{- define "hami-scheduler.managedResources" -}}
{{- $g := .Values.global -}}
{{- $config := $g.deviceConfig | default dict -}}
{{- $names := list $g.resourceName $g.resourceMem $g.resourceMemPercentage $g.resourceCores $g.resourcePriority -}}
{{- $mlu := get $config "cambricon" | default dict -}}
{{- $names = append $names (get $mlu "resourceCountName" | default "cambricon.com/vmlu") -}}
{{- $names = append $names (get $mlu "resourceMemoryName" | default "cambricon.com/mlu.smlu.vmemory") -}}
{{- $names = append $names (get $mlu "resourceCoreName" | default "cambricon.com/mlu.smlu.vcore") -}}
{{- $vnpus := get $config "vnpus" | default dict -}}
{{- if kindIs "slice" $vnpus -}}{{- $vnpus = dict "configs" $vnpus -}}{{- end -}}
{{- range $chip := (ternary (get $vnpus "configs" | default list) (list) .Values.enableAscend) -}}
{{- $names = concat $names (list (get $chip "resourceName") (get $chip "resourceMemoryName") (get $chip "resourceCoreName")) -}}
{{- end -}}
{{- $seen := dict -}}
{{- $out := list -}}
{{- range $name := $names -}}
{{- if $name -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "resource name %q is given twice (global.resource* and global.deviceConfig): kube-scheduler refuses duplicate managed resources (HAMi #485); give each resource its own name" $name) -}}
{{- end -}}
{{- $_ := set $seen $name true -}}
{{- $out = append $out $name -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Checks of values that the schema cannot express; each says what to change. */}}
{{- define "hami-scheduler.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElect) -}}
{{- fail (printf "replicas is %d but leaderElect is false: several kube-schedulers and extenders without a leader would bind the same pods twice; set leaderElect=true or replicas=1" (int .Values.replicas)) -}}
{{- end -}}
{{- $nvidia := get (.Values.global.deviceConfig | default dict) "nvidia" | default dict -}}
{{- if and .Values.admissionWebhook.enabled .Values.admissionWebhook.onlyDevicePods -}}
{{- if get $nvidia "overwriteEnv" -}}
{{- fail "global.deviceConfig.nvidia.overwriteEnv is true, which makes the webhook change pods that ask for no device, but admissionWebhook.onlyDevicePods=true keeps those pods from it; set admissionWebhook.onlyDevicePods=false (consider admissionWebhook.failurePolicy=Ignore then) or overwriteEnv=false" -}}
{{- end -}}
{{- if not (has (get $nvidia "gpuCorePolicy" | default "default") (list "default")) -}}
{{- fail (printf "global.deviceConfig.nvidia.gpuCorePolicy is %q, which the webhook sets on every pod's containers, but admissionWebhook.onlyDevicePods=true keeps pods without devices from it; set admissionWebhook.onlyDevicePods=false or gpuCorePolicy=default" (get $nvidia "gpuCorePolicy")) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.admissionWebhook.customURL.enabled (not .Values.admissionWebhook.customURL.host) -}}
{{- fail "admissionWebhook.customURL.enabled is true but customURL.host is empty; set the address the API server reaches the webhook at" -}}
{{- end -}}
{{- end -}}

{{/* The pod's spread: one pod per node when there are several (preferred). */}}
{{- define "hami-scheduler.affinity" -}}
{{- if .root.Values.affinity }}
affinity:
  {{- toYaml .root.Values.affinity | nindent 2 }}
{{- else if gt (int .root.Values.replicas) 1 }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "hami-scheduler.selector" . | nindent 14 }}
{{- end }}
{{- end -}}

{{/* Pod-level placement and identity settings shared by the three Deployments. */}}
{{- define "hami-scheduler.podCommon" -}}
serviceAccountName: {{ include "hami-scheduler.name" . }}
priorityClassName: {{ .root.Values.priorityClassName }}
{{- include "hami-scheduler.pullSecrets" .root }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "hami-scheduler.affinity" . }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* A container that needs nothing of its host. */}}
{{- define "hami-scheduler.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}
