{{- define "podnet.labels" -}}
app.kubernetes.io/name: podnet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "podnet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{/* The controller's Lease: passed as --lease-name, and the one Lease its Role may read and write. */}}
{{- define "podnet.leaseName" -}}
podnet-controller
{{- end -}}
{{/* The pool the controller makes from the values: passed as --default-pool, and the one pool whose spec it may patch. */}}
{{- define "podnet.defaultPool" -}}
default
{{- end -}}
{{- define "podnet.agentSA" -}}
system:serviceaccount:{{ .Release.Namespace }}:podnet-agent
{{- end -}}

{{/*
The API server's address for podnet's processes. Unset, in-cluster config uses the kubernetes Service's
ClusterIP, which needs kube-proxy (or a replacement) already running on the node; set apiServer.host where
nothing serves ClusterIPs before the pod network exists.
*/}}
{{- define "podnet.apiServerEnv" -}}
- {name: KUBERNETES_SERVICE_HOST, value: {{ .Values.apiServer.host | quote }}}
- {name: KUBERNETES_SERVICE_PORT, value: {{ .Values.apiServer.port | quote }}}
{{- end }}
