{{/* Names, labels and values derived from the config. */}}

{{- define "cosmolet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Every object's name: fullnameOverride as given, else the release name, suffixed with the
     chart's name (or nameOverride) unless it already contains it. */}}
{{- define "cosmolet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cosmolet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cosmolet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cosmolet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cosmolet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: bgp-speaker
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cosmolet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cosmolet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cosmolet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "cosmolet.frrImage" -}}
{{- $repository := default .Values.image.repository .Values.frr.image.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.frr.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{- define "cosmolet.hybrid" -}}
{{- if eq (.Values.config.mode | default "numbered") "hybrid" -}}true{{- end -}}
{{- end -}}

{{- define "cosmolet.bfd" -}}
{{- if dig "bgp" "bfd" "enabled" false .Values.config -}}true{{- end -}}
{{- end -}}

{{/* FRR runs on the node: in hybrid mode (zebra's router advertisements), and with BFD in
     either mode (bfdd, and the zebra it needs). */}}
{{- define "cosmolet.frr" -}}
{{- if or (include "cosmolet.hybrid" .) (include "cosmolet.bfd" .) -}}true{{- end -}}
{{- end -}}

{{/*
The HTTP port (probes, metrics) from config.http.listen. The kubelet probes the node's address
(the pod is on the host network), so a loopback listen address would fail every probe.
*/}}
{{- define "cosmolet.httpPort" -}}
{{- $listen := dig "http" "listen" "0.0.0.0:9179" .Values.config -}}
{{- $host := regexReplaceAll ":[0-9]+$" $listen "" | trimPrefix "[" | trimSuffix "]" -}}
{{- if or (hasPrefix "127." $host) (eq $host "::1") -}}
{{- fail (printf "config.http.listen: %s is a loopback address; the kubelet probes the node's address, so listen on 0.0.0.0, :: or a node address" $listen) -}}
{{- end -}}
{{- regexFind "[0-9]+$" $listen -}}
{{- end -}}

{{/* Long enough for the shutdown mode: a withdraw drain must finish before SIGKILL. */}}
{{- define "cosmolet.terminationGracePeriodSeconds" -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- else if eq (dig "shutdown" "mode" "graceful" .Values.config) "withdraw" -}}
{{- add (ceil (dig "shutdown" "drainSeconds" 10 .Values.config) | int) 20 -}}
{{- else -}}
30
{{- end -}}
{{- end -}}

{{- define "cosmolet.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The pod's identity from the downward API: the node's name (which Node to watch, its
     routes' owner) and its address (the BGP router id when none is configured). */}}
{{- define "cosmolet.downwardEnv" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: NODE_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}
