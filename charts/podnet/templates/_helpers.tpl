{{- define "podnet.labels" -}}
app.kubernetes.io/name: podnet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "podnet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- define "podnet.agentSA" -}}
system:serviceaccount:{{ .Release.Namespace }}:podnet-agent
{{- end -}}
