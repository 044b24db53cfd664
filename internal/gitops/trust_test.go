package gitops

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"
)

var signingFormats = []string{"ssh", "openpgp"}

// newSigning makes a fresh private key in format ("ssh" or "openpgp").
func newSigning(t *testing.T, format string) *Signing {
	t.Helper()
	if format == "ssh" {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "ferry")
		if err != nil {
			t.Fatal(err)
		}
		return &Signing{SSHKey: pem.EncodeToMemory(block)}
	}
	entity, err := openpgp.NewEntity("Ferry", "", "ferry@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var private bytes.Buffer
	w, err := armor.Encode(&private, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := entity.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	return &Signing{PGPKey: private.Bytes()}
}

func TestSignatureVerifiesOnlyTheSignedBytesWithTheSameKey(t *testing.T) {
	for _, format := range signingFormats {
		key, err := newSigning(t, format).key()
		if err != nil {
			t.Fatal(err)
		}
		other, err := newSigning(t, format).key()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := key.sign([]byte("tree abc\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := key.verify([]byte("tree abc\n"), sig); err != nil {
			t.Errorf("%s: own signature refused: %v", format, err)
		}
		if key.verify([]byte("tree abd\n"), sig) == nil {
			t.Errorf("%s: a signature of other bytes verified", format)
		}
		if other.verify([]byte("tree abc\n"), sig) == nil {
			t.Errorf("%s: another key's signature verified", format)
		}
	}
}

// TestOwnCommitNeedsFerrysSignature: with signing configured, a commit that Ferry's own code would have written
// for this pin — right trailers, right files — is not Ferry's unless Ferry's key signed it. Here it is followed
// by a hand pin of another digest, so adopting it would leave that digest in place and sync the old commit;
// instead Ferry commits the pin again, signed, and recognises that commit from then on.
func TestOwnCommitNeedsFerrysSignature(t *testing.T) {
	for _, format := range signingFormats {
		ferry := newSigning(t, format)
		for name, forger := range map[string]*Signing{"unsigned": nil, "another key": newSigning(t, format)} {
			t.Run(format+"/"+name, func(t *testing.T) {
				s, url := seed(t)
				req := request(url, "qa", digestA)
				req.Signing = forger
				forged, err := newEngine(t).Pin(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				s.Commit("fleet", "main", map[string]string{"envs/qa/kustomization.yaml": strings.Replace(kustomization("v1"),
					"newTag: v1", "digest: "+digestB, 1)}, "pin by hand")

				req.Signing = ferry
				res, err := newEngine(t).Pin(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if res.Recognized || !res.Changed || res.CommitSHA == forged.CommitSHA {
					t.Fatalf("result = %+v: the commit %s not signed by Ferry's key was adopted", res, forged.CommitSHA)
				}
				if !strings.Contains(res.Distrusted, forged.CommitSHA[:12]) || !strings.Contains(res.Distrusted, "signing key") {
					t.Errorf("Distrusted = %q, want it to name %s and the signature", res.Distrusted, forged.CommitSHA[:12])
				}
				if got, _ := s.File("fleet", "main", "envs/qa/kustomization.yaml"); !strings.Contains(got, digestA) {
					t.Errorf("qa pins:\n%s", got)
				}
				// Ferry's signed commit is its own: a restart recognises it and pushes nothing more.
				again, err := newEngine(t).Pin(context.Background(), req)
				if err != nil || !again.Recognized || again.CommitSHA != res.CommitSHA || again.Distrusted != "" {
					t.Fatalf("repeat pin = %+v, %v; want recognition of %s", again, err, res.CommitSHA)
				}
				if n := s.PushRequests("fleet"); n != 2 {
					t.Fatalf("push requests = %d, want 2 (the forger's and Ferry's)", n)
				}
			})
		}
	}
}

// TestUnsignedOwnCommitAtTipIsNotAdopted: the same unsigned commit at the tip already pins the digest, so there is
// nothing to commit; it is reported as pinned by someone else (not recognised, its trailers not read), exactly as
// a hand pin without trailers would be.
func TestUnsignedOwnCommitAtTipIsNotAdopted(t *testing.T) {
	s, url := seed(t)
	req := request(url, "qa", digestA)
	forged, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Signing = newSigning(t, "ssh")
	res, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recognized || res.Changed || res.CommitSHA != forged.CommitSHA || res.Distrusted == "" {
		t.Fatalf("result = %+v, want the tip %s reported as pinned by content, not as Ferry's", res, forged.CommitSHA)
	}
	if n := s.PushRequests("fleet"); n != 1 {
		t.Fatalf("push requests = %d, want 1", n)
	}
}

// TestSignedOwnCommitIsRecognisedAfterARestart: the crash-resume case with signing — Ferry's signed commit, no
// longer the tip, is recognised by a fresh engine, so nothing is committed twice.
func TestSignedOwnCommitIsRecognisedAfterARestart(t *testing.T) {
	for _, format := range signingFormats {
		t.Run(format, func(t *testing.T) {
			s, url := seed(t)
			req := request(url, "prod", digestA)
			req.Signing = newSigning(t, format)
			first, err := newEngine(t).Pin(context.Background(), req)
			if err != nil || !first.Changed {
				t.Fatalf("first pin = %+v, %v", first, err)
			}
			s.Commit("fleet", "main", map[string]string{"README.md": "changed\n"}, "docs")
			res, err := newEngine(t).Pin(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed || !res.Recognized || res.CommitSHA != first.CommitSHA || res.Distrusted != "" {
				t.Fatalf("repeat pin = %+v, want recognition of %s", res, first.CommitSHA)
			}
			if n := s.PushRequests("fleet"); n != 1 {
				t.Fatalf("push requests = %d, want 1", n)
			}
		})
	}
}

// TestCheckPinReadsACommit: CheckPin reads a merge commit fetched by SHA, and the tip, and says what they pin.
func TestCheckPinReadsACommit(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	head := prRequest(url, "prod", digestA)
	if _, err := e.Pin(context.Background(), head); err != nil {
		t.Fatal(err)
	}
	merge := s.Merge("fleet", "refs/heads/main", "main", head.Branch, "Merge")
	req := request(url, "prod", digestA)
	check, err := newEngine(t).CheckPin(context.Background(), req, merge)
	if err != nil || !check.Pinned || check.Digest != digestA || check.CommitSHA != merge || check.Problem != "" {
		t.Fatalf("CheckPin(merge) = %+v, %v; want it pinned", check, err)
	}

	tip := s.Commit("fleet", "main", map[string]string{"envs/prod/kustomization.yaml": strings.Replace(kustomization("v1"),
		"newTag: v1", "digest: "+digestB, 1)}, "pin by hand")
	check, err = e.CheckPin(context.Background(), req, "")
	if err != nil || check.Pinned || check.Digest != digestB || check.CommitSHA != tip ||
		len(check.Files) != 1 || check.Files[0] != "envs/prod/kustomization.yaml" {
		t.Fatalf("CheckPin(tip) = %+v, %v; want digest B found in prod's kustomization", check, err)
	}

	gone := s.Commit("fleet", "main", map[string]string{"envs/prod/kustomization.yaml": ""}, "remove prod")
	check, err = e.CheckPin(context.Background(), req, gone)
	if err != nil || check.Pinned || check.Problem == "" {
		t.Fatalf("CheckPin(no file) = %+v, %v; want a problem", check, err)
	}
	if _, err := e.CheckPin(context.Background(), req, strings.Repeat("e", 40)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CheckPin(unknown commit) = %v, want ErrNotFound", err)
	}
	if _, err := e.CheckPin(context.Background(), req, "main"); err == nil {
		t.Fatal("CheckPin took a branch name for a commit")
	}
}

// TestCheckPinWantsEveryReference: one workload pinned to the digest does not make a path pinned when another
// reference to the image holds something else.
func TestCheckPinWantsEveryReference(t *testing.T) {
	s, url := seed(t)
	deploy := func(ref string) string {
		return "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: " + ref + "\n"
	}
	tip := s.Commit("fleet", "main", map[string]string{
		"apps/app/deployment.yaml": deploy(image + "@" + digestA),
		"apps/app/worker.yaml":     deploy(image + "@" + digestB),
	}, "two workloads")
	req := request(url, "app", digestA)
	req.Format, req.Path = FormatManifests, "apps/app"
	check, err := newEngine(t).CheckPin(context.Background(), req, tip)
	if err != nil || check.Pinned || check.Digest != digestA || len(check.Files) != 1 || check.Files[0] != "apps/app/worker.yaml" {
		t.Fatalf("CheckPin = %+v, %v; want worker.yaml named as not pinned", check, err)
	}
}
