{{/* Labels on every object. The names are fixed by the mesh (see values.yaml), not by the release. */}}
{{- define "weft.labels" -}}
app.kubernetes.io/name: weft
{{ include "weft.commonLabels" . }}
{{- end -}}

{{/* The labels of weft.labels other than the name, for pods (whose selector labels carry it). */}}
{{- define "weft.commonLabels" -}}
app.kubernetes.io/part-of: weft
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select Weft's pods (Deployment, Service, PodDisruptionBudget). */}}
{{- define "weft.selectorLabels" -}}
app.kubernetes.io/name: weft
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "weft.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
