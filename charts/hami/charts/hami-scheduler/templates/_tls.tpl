{{/* The certificates of the webhook and the extender, made once.

Three Secrets (type kubernetes.io/tls, keys tls.crt, tls.key, ca.crt):
  <p>-webhook-tls    the webhook's serving pair; its CA is the webhook configuration's caBundle
  <p>-extender-tls   the extender's serving pair; its CA signs kube-scheduler's client pair and
                     is the extender's --client-ca-file
  <p>-scheduler-tls  kube-scheduler's client pair for the extender, and that CA
The Secrets in the cluster are read back (lookup) and kept as they are, so `helm upgrade`
never issues new ones. New ones are made only when a Secret is missing or its
hami.io/tls-names annotation differs from the names the certificate must hold now (the
webhook's customURL host changed). No Job, no hook: nothing to pull or wait for at install.
The CA keys are used once, in this render, and kept nowhere. Deleting the Secrets and running
`helm upgrade` issues new certificates (the pods roll, through their checksum annotations).

The result is memoised in .Values.hamiSchedulerTLS so that every template of one render sees
the same certificates. */}}

{{- define "hami-scheduler.tlsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $webhook := include "hami-scheduler.name" (dict "root" . "component" "webhook") -}}
{{- $extender := include "hami-scheduler.name" (dict "root" . "component" "extender") -}}
{{- $hooks := list (printf "%s.%s.svc" $webhook $ns) (printf "%s.%s.svc.cluster.local" $webhook $ns) -}}
{{- $ips := list -}}
{{- if .Values.admissionWebhook.customURL.enabled -}}
{{- $host := .Values.admissionWebhook.customURL.host -}}
{{- if regexMatch "^[0-9.]+$|:" $host -}}
{{- $ips = append $ips $host -}}
{{- else -}}
{{- $hooks = append $hooks $host -}}
{{- end -}}
{{- end -}}
{{- $ext := list (printf "%s.%s.svc" $extender $ns) (printf "%s.%s.svc.cluster.local" $extender $ns) -}}
{{- toJson (dict "webhook" $hooks "webhookIPs" $ips "extender" $ext) -}}
{{- end -}}

{{- define "hami-scheduler.tls" -}}
{{- if not (hasKey .Values "hamiSchedulerTLS") -}}
{{- $ns := .Release.Namespace -}}
{{- $names := include "hami-scheduler.tlsNames" . | fromJson -}}
{{- $secrets := dict -}}
{{- range $part := list "webhook" "extender" "scheduler" -}}
{{- $name := include "hami-scheduler.name" (dict "root" $ "component" (printf "%s-tls" $part)) -}}
{{- $_ := set $secrets $part (lookup "v1" "Secret" $ns $name) -}}
{{- end -}}
{{- $tls := dict -}}
{{- $webhookNames := concat $names.webhook $names.webhookIPs | join "," -}}
{{- $old := $secrets.webhook -}}
{{- if and $old (eq (dig "metadata" "annotations" "hami.io/tls-names" "" $old) $webhookNames) (hasKey ($old.data | default dict) "ca.crt") -}}
{{- $_ := set $tls "webhook" $old.data -}}
{{- else -}}
{{- $ca := genCA "hami-webhook-ca" 3650 -}}
{{- $cert := genSignedCert (first $names.webhook) $names.webhookIPs $names.webhook 3650 $ca -}}
{{- $_ := set $tls "webhook" (dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc)) -}}
{{- end -}}
{{- $_ := set $tls "webhookNames" $webhookNames -}}
{{- $extenderNames := $names.extender | join "," -}}
{{- $ext := $secrets.extender -}}
{{- $client := $secrets.scheduler -}}
{{- if and $ext $client (eq (dig "metadata" "annotations" "hami.io/tls-names" "" $ext) $extenderNames) (hasKey ($ext.data | default dict) "ca.crt") (hasKey ($client.data | default dict) "ca.crt") -}}
{{- $_ := set $tls "extender" $ext.data -}}
{{- $_ := set $tls "scheduler" $client.data -}}
{{- else -}}
{{- $ca := genCA "hami-extender-ca" 3650 -}}
{{- $cert := genSignedCert (first $names.extender) nil $names.extender 3650 $ca -}}
{{- $clientCert := genSignedCert "hami-kube-scheduler" nil nil 3650 $ca -}}
{{- $_ := set $tls "extender" (dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc)) -}}
{{- $_ := set $tls "scheduler" (dict "tls.crt" ($clientCert.Cert | b64enc) "tls.key" ($clientCert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc)) -}}
{{- end -}}
{{- $_ := set $tls "extenderNames" $extenderNames -}}
{{- $_ := set .Values "hamiSchedulerTLS" $tls -}}
{{- end -}}
{{- end -}}

{{/* sha256 of a part's certificate: (dict "root" . "part" "webhook"), for pod annotations. */}}
{{- define "hami-scheduler.tlsChecksum" -}}
{{- include "hami-scheduler.tls" .root -}}
{{- index .root.Values.hamiSchedulerTLS .part "tls.crt" | sha256sum -}}
{{- end -}}
