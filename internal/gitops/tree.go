package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// treeFS shows a commit's tree as an fs.FS, so package pin reads a commit exactly as it reads a checkout.
// Callers hold the store lock while using it.
type treeFS struct{ root *object.Tree }

func (t treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &treeDir{info: info{name: ".", mode: fs.ModeDir}, tree: t.root}, nil
	}
	entry, err := t.root.FindEntry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	mode, _ := entry.Mode.ToOSFileMode()
	if entry.Mode == filemode.Dir {
		sub, err := t.root.Tree(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: info{name: path.Base(name), mode: mode}, tree: sub}, nil
	}
	f, err := t.root.File(name)
	if errors.Is(err, ErrTooLarge) { // the store refused the blob by its size: say so, not that it is missing
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	content, err := f.Contents()
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return &treeFile{info: info{name: path.Base(name), mode: mode, size: int64(len(content))},
		Reader: strings.NewReader(content)}, nil
}

type info struct {
	name string
	mode fs.FileMode
	size int64
}

func (i info) Name() string               { return i.name }
func (i info) Size() int64                { return i.size }
func (i info) Mode() fs.FileMode          { return i.mode }
func (i info) ModTime() time.Time         { return time.Time{} }
func (i info) IsDir() bool                { return i.mode.IsDir() }
func (i info) Sys() any                   { return nil }
func (i info) Type() fs.FileMode          { return i.mode.Type() }
func (i info) Info() (fs.FileInfo, error) { return i, nil }

type treeFile struct {
	info
	*strings.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Close() error               { return nil }

type treeDir struct {
	info
	tree *object.Tree
	read bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Close() error               { return nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}

func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.read {
		if n > 0 {
			return nil, io.EOF
		}
		return nil, nil
	}
	d.read = true
	out := make([]fs.DirEntry, 0, len(d.tree.Entries))
	for _, e := range d.tree.Entries {
		mode, _ := e.Mode.ToOSFileMode()
		out = append(out, info{name: e.Name, mode: mode})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// newObjects collects the objects a pin creates. They stay in memory until the push that carries them succeeds,
// so a failed attempt leaves nothing behind in the cache.
type newObjects struct {
	mem   *memory.Storage
	order []plumbing.Hash
}

func newObjectSet() *newObjects { return &newObjects{mem: memory.NewStorage()} }

func (n *newObjects) add(o plumbing.EncodedObject) plumbing.Hash {
	h := o.Hash()
	if n.mem.HasEncodedObject(h) != nil {
		_, _ = n.mem.SetEncodedObject(o) // the memory store cannot fail
		n.order = append(n.order, h)
	}
	return h
}

func (n *newObjects) blob(content []byte) (plumbing.Hash, error) {
	o := &plumbing.MemoryObject{}
	o.SetType(plumbing.BlobObject)
	if _, err := o.Write(content); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("writing blob: %w", err)
	}
	return n.add(o), nil
}

func (n *newObjects) encode(e interface {
	Encode(plumbing.EncodedObject) error
}) (plumbing.Hash, error) {
	o := &plumbing.MemoryObject{}
	if err := e.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return n.add(o), nil
}

// rewriteTree returns the hash of tree with the given files (paths relative to tree) replaced by new content.
// Only the trees on the way to a changed file are rewritten; every other entry keeps its hash, so the cost
// depends on the depth of the change, not on the size of the repository.
func (n *newObjects) rewriteTree(s storer.EncodedObjectStorer, tree *object.Tree, changes map[string][]byte) (plumbing.Hash, error) {
	entries := append([]object.TreeEntry(nil), tree.Entries...)
	byName := map[string]int{}
	for i, e := range entries {
		byName[e.Name] = i
	}
	nested := map[string]map[string][]byte{}
	for p, content := range changes {
		dir, rest, isNested := strings.Cut(p, "/")
		i, ok := byName[dir]
		if !ok {
			return plumbing.ZeroHash, fmt.Errorf("%s is not in the tree", p)
		}
		if isNested {
			if nested[dir] == nil {
				nested[dir] = map[string][]byte{}
			}
			nested[dir][rest] = content
			continue
		}
		h, err := n.blob(content)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[i].Hash = h
	}
	for dir, sub := range nested {
		i := byName[dir]
		subtree, err := object.GetTree(s, entries[i].Hash)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("reading tree %s: %w", dir, err)
		}
		if entries[i].Hash, err = n.rewriteTree(s, subtree, sub); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	return n.encode(&object.Tree{Entries: entries})
}

func contentOf(o plumbing.EncodedObject) ([]byte, error) {
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	var b bytes.Buffer
	_, err = io.Copy(&b, r)
	return b.Bytes(), err
}
