{{- define "tlstap.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tlstap.labels" -}}
app.kubernetes.io/name: tlstap
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "tlstap.selector" -}}
app.kubernetes.io/name: tlstap
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
