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

{{/* A duration value in milliseconds; the values schema has checked its form (digits, then ms, s, m or h). */}}
{{- define "podnet.durationMs" -}}
{{- $digits := regexFind "^[0-9]+" . }}
{{- mul ($digits | int64) (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) (trimPrefix $digits .)) }}
{{- end -}}

{{/*
Fails on a CIDR with host bits set, which podnet refuses at start (list: the value's name, the CIDR). The schema
has checked the form. The address is split into groups (IPv4: 4 of 8 bits, IPv6: 8 of 16, "::" filled with
zeros); the bits of each group past the prefix must be 0.
*/}}
{{- define "podnet.refuseHostBits" -}}
{{- $name := index . 0 }}
{{- $cidr := index . 1 }}
{{- $address := index (splitList "/" $cidr) 0 }}
{{- $prefix := index (splitList "/" $cidr) 1 | int }}
{{- $groups := list }}
{{- $width := 8 }}
{{- if contains ":" $address }}
{{- $width = 16 }}
{{- $halves := splitList "::" $address }}
{{- $head := ternary list (splitList ":" (first $halves)) (eq (first $halves) "") }}
{{- $tail := ternary list (splitList ":" (last $halves)) (or (eq (len $halves) 1) (eq (last $halves) "")) }}
{{- range $head }}{{ $groups = append $groups (printf "0x%s" . | int64) }}{{ end }}
{{- if eq (len $halves) 2 }}{{ range until (sub 8 (add (len $head) (len $tail)) | int) }}{{ $groups = append $groups 0 }}{{ end }}{{ end }}
{{- range $tail }}{{ $groups = append $groups (printf "0x%s" . | int64) }}{{ end }}
{{- else }}
{{- range splitList "." $address }}{{ $groups = append $groups (atoi .) }}{{ end }}
{{- end }}
{{- $powersOfTwo := list 1 2 4 8 16 32 64 128 256 512 1024 2048 4096 8192 16384 32768 65536 }}
{{- range $i, $group := $groups }}
{{- $hostBits := min $width (max 0 (sub (mul (add $i 1) $width) $prefix)) }}
{{- if ne (mod $group (index $powersOfTwo $hostBits)) 0 }}
{{- fail (printf "%s: %s has host bits set past /%d (podnet refuses it at start)" $name $cidr $prefix) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A pod spec's pull secrets for a private registry (values imagePullSecrets), as a line of its own; nothing when there are none. */}}
{{- define "podnet.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
{{- end }}
{{- end -}}

{{/*
A CEL condition: the object's labels, annotations, owner references and finalizers are as they were. A write to
nodes/status keeps metadata too (only spec is reset), so a status policy that compared status alone let a
token relabel a Node (node-restriction.kubernetes.io/ labels included), pin it with a finalizer or give it an owner.
*/}}
{{- define "podnet.metadataKept" -}}
object.metadata.?labels.orValue({}) == oldObject.metadata.?labels.orValue({})
&& object.metadata.?annotations.orValue({}) == oldObject.metadata.?annotations.orValue({})
&& object.metadata.?ownerReferences.orValue([]) == oldObject.metadata.?ownerReferences.orValue([])
&& object.metadata.?finalizers.orValue([]) == oldObject.metadata.?finalizers.orValue([])
{{- end -}}
