package controllers

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/signature"
)

// engineInputs are the plain inputs the engines take, built from the spec and the referenced Secrets and
// ConfigMaps. They hold credentials: they live in memory for one reconcile and are never logged or stored.
type engineInputs struct {
	source registry.Options
	stages []registry.Options
	policy signature.Policy
	git    gitops.Remote
	author gitops.Author
	sign   *gitops.Signing
	// pullRequests holds each stage's forge configuration, nil for stages approved automatically.
	pullRequests []*scm.Config
	// keyNames maps public key fingerprints to the names spec.verification.keys gives them.
	keyNames map[string]string
}

// buildInputs turns the spec and the loaded references into engine inputs.
func buildInputs(p *ferryv1.Promotion, refs referenceData) (*engineInputs, error) {
	spec := &p.Spec
	in := &engineInputs{
		stages:       make([]registry.Options, len(spec.Stages)),
		pullRequests: make([]*scm.Config, len(spec.Stages)),
		author:       gitops.Author{Name: orDefault(spec.Git.Author.Name, "Ferry"), Email: orDefault(spec.Git.Author.Email, "ferry@ferry.dev")},
	}
	var err error
	if in.source, err = registryOptions("spec.source.registry", spec.Source.Image, spec.Source.Registry, refs); err != nil {
		return nil, err
	}
	for i, st := range spec.Stages {
		field := fmt.Sprintf("spec.stages[%d].registry", i)
		if in.stages[i], err = registryOptions(field, st.Registry.Repository, st.Registry.RegistryAccess, refs); err != nil {
			return nil, err
		}
		if pr := st.Approval.PullRequest; pr != nil && st.Approval.Mode == ferryv1.ApprovalPullRequest {
			token := refs[fmt.Sprintf("spec.stages[%d].approval.pullRequest.tokenSecretRef", i)][orDefault(pr.TokenSecretRef.Key, keyToken)]
			in.pullRequests[i] = &scm.Config{Provider: scmProviderName(pr.Provider), APIURL: pr.APIURL, Token: string(token)}
		}
	}
	in.policy = verificationPolicy(&spec.Verification, refs)
	in.keyNames = map[string]string{}
	for i, k := range spec.Verification.Keys {
		if fp, err := signature.KeyFingerprint(in.policy.Keys[i]); err == nil {
			in.keyNames[fp] = k.Name
		}
	}
	in.git = gitRemote(&spec.Git, refs)
	in.sign = commitSigning(spec.Git.Signing, refs)
	return in, nil
}

// registryOptions builds the options for one registry: credentials, extra trust, and plain HTTP when allowed.
func registryOptions(field, repo string, a ferryv1.RegistryAccess, refs referenceData) (registry.Options, error) {
	var o registry.Options
	if a.SecretRef != nil {
		kc, err := registry.KeychainFromDockerConfigJSON(refs[field+".secretRef"][keyDockerConfig])
		if err != nil {
			return o, stalling(ReasonInvalidReference, field+".secretRef", "%v", err)
		}
		o.Keychain = kc
	}
	if a.CABundleRef != nil {
		o.CABundle = refs[field+".caBundleRef"][orDefault(a.CABundleRef.Key, keyCABundle)]
	}
	if a.Insecure {
		r, err := name.NewRepository(repo, name.Insecure)
		if err != nil {
			return o, stalling(ReasonInvalidSpec, field, "%v", err)
		}
		o.Insecure = []string{r.RegistryStr()}
	}
	return o, nil
}

func verificationPolicy(v *ferryv1.VerificationSpec, refs referenceData) signature.Policy {
	pol := signature.Policy{Threshold: int(v.Threshold)}
	for i, k := range v.Keys {
		pol.Keys = append(pol.Keys, refs[fmt.Sprintf("spec.verification.keys[%d].secretRef", i)][orDefault(k.SecretRef.Key, keyCosignPub)])
	}
	for _, id := range v.Keyless {
		pol.Identities = append(pol.Identities, signature.Identity{Issuer: id.Issuer, Subject: id.Subject, SubjectRegexp: id.SubjectRegex})
	}
	if tr := v.TrustedRootRef; tr != nil {
		pol.TrustedRoot = refs["spec.verification.trustedRootRef"][orDefault(tr.Key, keyTrustedRoot)]
	}
	for _, a := range v.RequiredAttestations {
		pol.RequiredAttestations = append(pol.RequiredAttestations, a.PredicateType)
	}
	return pol
}

func gitRemote(g *ferryv1.GitSpec, refs referenceData) gitops.Remote {
	r := gitops.Remote{URL: g.URL, Branch: g.Branch}
	if g.SecretRef != nil {
		data := refs["spec.git.secretRef"]
		r.Auth = gitops.Auth{
			Username: string(data["username"]), Password: string(data["password"]),
			SSHKey: data["identity"], SSHKnownHosts: data["known_hosts"],
		}
	}
	return r
}

func commitSigning(s *ferryv1.CommitSigning, refs referenceData) *gitops.Signing {
	if s == nil {
		return nil
	}
	data := refs["spec.git.signing.secretRef"]
	key := data[orDefault(s.SecretRef.Key, keySigning)]
	sign := &gitops.Signing{KeyPassphrase: string(data["passphrase"])}
	if s.Format == ferryv1.SigningSSH {
		sign.SSHKey = key
	} else {
		sign.PGPKey = key
	}
	return sign
}

func scmProviderName(p ferryv1.SCMProvider) string {
	switch p {
	case ferryv1.ProviderGitHub:
		return "github"
	case ferryv1.ProviderGitLab:
		return "gitlab"
	default:
		return "gitea"
	}
}
