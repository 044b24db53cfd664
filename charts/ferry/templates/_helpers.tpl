{{/*
The release's name for Ferry's objects: "ferry" for `helm install ferry`, so that the names match config/ (the
Deployment ferry-controller, the ClusterRole ferry-manager-role, …). Cut so that "<name>-controller-metrics" fits a
Service name.
*/}}
{{- define "ferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.controller" -}}
{{- include "ferry.fullname" . }}-controller
{{- end -}}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: ferry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "ferry.labels" -}}
app.kubernetes.io/name: ferry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
The controller image, repository@digest. The chart deploys by digest only: a tag, a missing digest or one that is
not sha256:<64 hex digits> fails the render with a message naming the value.
*/}}
{{- define "ferry.image" -}}
{{- $image := .Values.image -}}
{{- if hasKey $image "tag" -}}
{{- fail (printf "image.tag (%v) is not supported: Ferry's chart deploys by digest only; set image.digest=sha256:<64 hex digits> instead" $image.tag) -}}
{{- end -}}
{{- if regexMatch "@|:[^/]*$" $image.repository -}}
{{- fail (printf "image.repository %q carries a tag or digest; give the repository alone and the digest in image.digest" $image.repository) -}}
{{- end -}}
{{- $digest := toString ($image.digest | default "") -}}
{{- if not $digest -}}
{{- fail "image.digest is required: Ferry's chart deploys by digest only, never a tag (set image.digest=sha256:<64 hex digits>; `make release` sets it in dist/charts/ferry)" -}}
{{- end -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $digest) -}}
{{- fail (printf "image.digest %q is not sha256:<64 lowercase hex digits>: Ferry's chart deploys by digest only, never a tag" $digest) -}}
{{- end -}}
{{- printf "%s@%s" $image.repository $digest -}}
{{- end -}}

{{/*
The rules of the object of kind $kind in $file, a verbatim copy of a config/ file under files/ (`make helm-sync`
copies them; internal/helmchart's tests fail when they differ). The chart's RBAC is config/rbac's by construction.
Call: include "ferry.rulesOf" (list $ "files/manager-role.yaml" "ClusterRole")
*/}}
{{- define "ferry.rulesOf" -}}
{{- $root := index . 0 -}}
{{- $file := index . 1 -}}
{{- $kind := index . 2 -}}
{{- $text := $root.Files.Get $file -}}
{{- if not $text -}}
{{- fail (printf "%s is missing from the chart: run `make helm-sync`" $file) -}}
{{- end -}}
{{- $rules := list -}}
{{- $found := false -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $text -1 -}}
{{- $obj := fromYaml $doc -}}
{{- if eq (toString (get $obj "kind")) $kind -}}
{{- $rules = get $obj "rules" -}}
{{- $found = true -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "%s holds no %s: run `make helm-sync`" $file $kind) -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/*
The audit webhook's serving certificate Secret.
*/}}
{{- define "ferry.auditSecret" -}}
{{- if eq .Values.auditWebhook.certificate.source "secret" -}}
{{- required "auditWebhook.certificate.existingSecret is required with auditWebhook.certificate.source=secret" .Values.auditWebhook.certificate.existingSecret -}}
{{- else -}}
{{- include "ferry.fullname" . }}-audit-webhook-tls
{{- end -}}
{{- end -}}
