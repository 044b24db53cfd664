package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: not root, with the uid distroless and most Kubernetes policies expect of "nonroot".
const (
	UID      = 65532
	UserName = "nonroot"
	// BinaryPath is where the controller lies in the image; it is the entrypoint.
	BinaryPath = "/usr/local/bin/ferry-controller"
	// CABundlePath is where Go's crypto/x509 looks first on Linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// DebianCADir is where Debian's ca-certificates package puts its certificates (one PEM file each).
const DebianCADir = "/usr/share/ca-certificates/mozilla"

// entry is one file or folder of a layer.
type entry struct {
	path     string // without leading slash
	mode     int64
	uid      int
	dir      bool
	contents []byte
}

// baseEntries is the whole base: folders, the users, name resolution and the CA bundle. /tmp is writable by
// everyone (sticky) because ferry-controller's --cache-dir defaults to a folder in it; the Deployment mounts an
// emptyDir at /var/cache/ferry instead, since its root file system is read-only.
func baseEntries(caBundle []byte) []entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n",
		UserName, UID, UID, UserName, UserName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, UID)
	return []entry{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/group", mode: 0o644, contents: []byte(group)},
		{path: "etc/nsswitch.conf", mode: 0o644, contents: []byte("hosts: files dns\n")},
		{path: "etc/passwd", mode: 0o644, contents: []byte(passwd)},
		{path: "etc/ssl", mode: 0o755, dir: true},
		{path: "etc/ssl/certs", mode: 0o755, dir: true},
		{path: strings.TrimPrefix(CABundlePath, "/"), mode: 0o644, contents: caBundle},
		{path: "home", mode: 0o755, dir: true},
		{path: "home/" + UserName, mode: 0o700, uid: UID, dir: true},
		{path: "root", mode: 0o700, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
		{path: "usr", mode: 0o755, dir: true},
		{path: "usr/local", mode: 0o755, dir: true},
		{path: "usr/local/bin", mode: 0o755, dir: true},
	}
}

// ReadCABundle concatenates the PEM certificates in dir (Debian's ca-certificates package: DebianCADir) in name
// order. Only the package's own files are read, never /etc/ssl/certs, so that certificates this machine's admin
// added locally do not end up in the image.
func ReadCABundle(dir string) ([]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no CA certificates in %s: install Debian's ca-certificates package", dir)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		pem, err := os.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("reading CA certificate: %w", err)
		}
		if !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, fmt.Errorf("%s is not a PEM certificate", n)
		}
		b.Write(bytes.TrimSpace(pem))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// BaseLayer is the layer every platform shares: the same bytes, so the same digest.
func BaseLayer(caBundle []byte, created time.Time) (v1.Layer, error) {
	return layerOf(baseEntries(caBundle), created)
}

// BinaryLayer holds the controller binary at BinaryPath, executable by everyone, owned by root so that the
// running user cannot change it.
func BinaryLayer(binary string, created time.Time) (v1.Layer, error) {
	b, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("reading the binary: %w", err)
	}
	return layerOf([]entry{{path: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, contents: b}}, created)
}

// layerOf writes the entries as an uncompressed tar with fixed times and owners, and makes a gzip OCI layer of
// it. Nothing of the building machine (time, user names, umask) enters the bytes.
func layerOf(entries []entry, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: created.UTC(), Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, e.path+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.contents))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing %s into the layer: %w", e.path, err)
		}
		if _, err := tw.Write(e.contents); err != nil {
			return nil, fmt.Errorf("writing %s into the layer: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
}
