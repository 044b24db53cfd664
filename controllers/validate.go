package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/netaddr"
	"github.com/ferrycd/ferry/internal/tmpl"
)

// Condition and event reasons for bad input.
const (
	ReasonInvalidSpec       = "InvalidSpec"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonConfigMapNotFound = "ConfigMapNotFound"
	ReasonMissingKey        = "MissingKey"
	ReasonInvalidReference  = "InvalidReferencedData"
)

// validateSpec checks what the CRD schema cannot express: references, patterns and templates parse. It reads
// nothing from the cluster.
func validateSpec(p *ferryv1.Promotion) error {
	checks := []func(*ferryv1.Promotion) error{validateSource, validateVerification, validateGit, validateStages}
	for _, check := range checks {
		if err := check(p); err != nil {
			return err
		}
	}
	return nil
}

func validateSource(p *ferryv1.Promotion) error {
	src := p.Spec.Source
	if err := parseRepository(src.Image, src.Registry.Insecure); err != nil {
		return stalling(ReasonInvalidSpec, "spec.source.image", "%v", err)
	}
	if tp := src.TagPolicy; tp != nil {
		if tp.Semver != nil {
			if _, err := semver.NewConstraint(tp.Semver.Range); err != nil {
				return stalling(ReasonInvalidSpec, "spec.source.tagPolicy.semver.range", "%q is not a semantic-version range: %v", tp.Semver.Range, err)
			}
		}
		if tp.Regex != nil {
			if _, err := regexp.Compile(tp.Regex.Pattern); err != nil {
				return stalling(ReasonInvalidSpec, "spec.source.tagPolicy.regex.pattern", "%v", err)
			}
		}
	}
	return nil
}

func validateVerification(p *ferryv1.Promotion) error {
	for i, id := range p.Spec.Verification.Keyless {
		if id.SubjectRegex == "" {
			continue
		}
		if _, err := regexp.Compile(id.SubjectRegex); err != nil {
			return stalling(ReasonInvalidSpec, fmt.Sprintf("spec.verification.keyless[%d].subjectRegex", i), "%v", err)
		}
	}
	return nil
}

func validateGit(p *ferryv1.Promotion) error {
	g := p.Spec.Git
	if err := checkGitURL(g.URL); err != nil {
		return stalling(ReasonInvalidSpec, "spec.git.url", "%v", err)
	}
	if err := parseTemplate(g.CommitMessageTemplate); err != nil {
		return stalling(ReasonInvalidSpec, "spec.git.commitMessageTemplate", "%v", err)
	}
	return nil
}

func validateStages(p *ferryv1.Promotion) error {
	for i := range p.Spec.Stages {
		st := &p.Spec.Stages[i]
		field := fmt.Sprintf("spec.stages[%d]", i)
		if err := parseRepository(st.Registry.Repository, st.Registry.Insecure); err != nil {
			return stalling(ReasonInvalidSpec, field+".registry.repository", "%v", err)
		}
		if pr := st.Approval.PullRequest; pr != nil {
			if err := parseTemplate(pr.TitleTemplate); err != nil {
				return stalling(ReasonInvalidSpec, field+".approval.pullRequest.titleTemplate", "%v", err)
			}
		}
		if a := st.Analysis; a != nil {
			for j, m := range a.Metrics {
				if err := parseTemplate(m.Query); err != nil {
					return stalling(ReasonInvalidSpec, fmt.Sprintf("%s.analysis.metrics[%d].query", field, j), "%v", err)
				}
			}
		}
	}
	return nil
}

// parseRepository checks an image repository reference. Plain HTTP is allowed only for loopback registries or
// when the spec marks the registry insecure, so the reference itself must parse strictly.
func parseRepository(repo string, insecure bool) error {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	if _, err := name.NewRepository(repo, opts...); err != nil {
		return fmt.Errorf("%q is not an image repository: %w", repo, err)
	}
	return nil
}

// checkGitURL accepts https, ssh and scp-like URLs, and plain http only to a loopback host, where no credential
// can leak over the network.
func checkGitURL(raw string) error {
	if strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://") || strings.HasPrefix(raw, "ssh://") {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%q is not a URL: %w", raw, err)
		}
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
		if u.Scheme == "http" && !netaddr.IsLoopback(u.Hostname()) {
			return fmt.Errorf("%q uses plain http to a host that is not loopback; use https or ssh", raw)
		}
	}
	return nil
}

func parseTemplate(text string) error {
	if text == "" {
		return nil
	}
	// tmpl refuses what its renderers would: range, template, define, block, unbounded string building and
	// text over its size bound, so a template bomb stalls here, naming the field, before anything is rendered.
	if _, err := tmpl.Parse("template", text, tmpl.Options{}); err != nil {
		return fmt.Errorf("template is not accepted: %w", err)
	}
	return nil
}

// referenceData holds the data of every referenced object, by the spec field that refers to it
// (for example "spec.git.secretRef"). It lives only in memory for one reconcile.
type referenceData map[string]map[string][]byte

// loadReferences checks that every referenced Secret and ConfigMap exists in the Promotion's namespace and
// holds what the field needs, and returns their data. Reads go through reader, which must not cache Secrets
// cluster-wide.
func loadReferences(ctx context.Context, reader client.Reader, p *ferryv1.Promotion) (referenceData, error) {
	loaded := referenceData{}
	for _, ref := range references(p) {
		data, err := readData(ctx, reader, p.Namespace, ref)
		if apierrors.IsNotFound(err) {
			reason := ReasonSecretNotFound
			if ref.kind == ferryv1.ConfigMapKind {
				reason = ReasonConfigMapNotFound
			}
			return nil, stalling(reason, ref.field, "%s %q not found in namespace %q", ref.kind, ref.name, p.Namespace)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s/%s for %s: %w", ref.kind, p.Namespace, ref.name, ref.field, err)
		}
		if err := ref.check(data); err != nil {
			reason := ReasonInvalidReference
			var missing *missingKeyError
			if errors.As(err, &missing) {
				reason = ReasonMissingKey
			}
			return nil, stalling(reason, ref.field, "%s %q %v", ref.kind, ref.name, err)
		}
		loaded[ref.field] = data
	}
	return loaded, nil
}

// readData returns a Secret's or ConfigMap's data as bytes.
func readData(ctx context.Context, reader client.Reader, namespace string, ref reference) (map[string][]byte, error) {
	key := types.NamespacedName{Namespace: namespace, Name: ref.name}
	if ref.kind == ferryv1.SecretKind {
		var s corev1.Secret
		if err := reader.Get(ctx, key, &s); err != nil {
			return nil, err
		}
		return s.Data, nil
	}
	var cm corev1.ConfigMap
	if err := reader.Get(ctx, key, &cm); err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data, nil
}

// ReasonNotSupported stalls a Promotion that asks for something Ferry does not carry out yet.
const ReasonNotSupported = "NotSupported"

// refuseNotActedOn stalls a Promotion whose stage asks for behaviour this controller does not carry out: a field
// that is accepted and then ignored would promote a digest as if it were not there. It runs after every other
// check, so that bad references are reported first.
func refuseNotActedOn(p *ferryv1.Promotion) error {
	for i := range p.Spec.Stages {
		if err := refuseStageNotActedOn(&p.Spec.Stages[i], fmt.Sprintf("spec.stages[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func refuseStageNotActedOn(st *ferryv1.StageSpec, field string) error {
	if st.Gates.RequireHealthy != nil && !*st.Gates.RequireHealthy {
		return stalling(ReasonNotSupported, field+".gates.requireHealthy", "false is not supported: the next stage always "+
			"waits for this stage to be healthy and soaked")
	}
	if err := refuseRenderingFieldsOfExternalSync(st, field); err != nil {
		return err
	}
	if st.Canary != nil && st.Sync.Mode != "" && st.Sync.Mode != ferryv1.SyncFerry {
		return stalling(ReasonNotSupported, field+".canary", "a canary needs sync.mode Ferry: with %s, the external "+
			"controller applies Ferry's commit to the stable workload at once, so there is no step to hold; use analysis "+
			"(measured after the sync, rolled back through Git on failure) instead", st.Sync.Mode)
	}
	return nil
}

// refuseRenderingFieldsOfExternalSync stalls on the fields that say how Ferry renders and applies a stage when
// another controller does both: Argo CD and Flux render the chart with their own settings, and a Flux
// Kustomization prunes as its own spec.prune says, so these would be accepted and ignored.
func refuseRenderingFieldsOfExternalSync(st *ferryv1.StageSpec, field string) error {
	mode := st.Sync.Mode
	if mode == "" || mode == ferryv1.SyncFerry {
		return nil
	}
	if h := st.Manifest.Helm; h != nil && (h.Chart != "" || h.ReleaseName != "") {
		return stalling(ReasonNotSupported, field+".manifest.helm", "chart and releaseName say how Ferry renders the "+
			"chart, but with sync.mode %s the external controller renders it with its own settings; set them there", mode)
	}
	if mode == ferryv1.SyncFlux && st.Sync.Prune {
		return stalling(ReasonNotSupported, field+".sync.prune", "with sync.mode Flux the Kustomization's own "+
			"spec.prune decides what is pruned; set it there")
	}
	return nil
}
