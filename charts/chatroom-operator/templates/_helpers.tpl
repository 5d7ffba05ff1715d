{{- define "chatroom-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chatroom-operator.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "chatroom-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chatroom-operator.serviceAccountName" -}}
{{- default (include "chatroom-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "chatroom-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 requires leaderElection.enabled=true: two replicas without a leader would reconcile the same rooms at once" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (eq .Values.provider "local") -}}
{{- fail "replicaCount > 1 requires provider=aws: the local provider serves rooms from one pod's memory" -}}
{{- end -}}
{{- end -}}

{{- define "chatroom-operator.managementSecret" -}}
{{- default (printf "%s-management" (include "chatroom-operator.fullname" .)) .Values.local.management.existingSecret -}}
{{- end -}}

{{/* Where back ends in the cluster reach @connections: the ClusterIP management Service. */}}
{{- define "chatroom-operator.managementUrl" -}}
{{- printf "http://%s-management.%s.svc:%v" (include "chatroom-operator.fullname" .) .Release.Namespace .Values.local.management.port -}}
{{- end -}}
