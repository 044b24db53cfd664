package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxExtractBytes bounds a file read out of an image: the controller binary is well under it.
const maxExtractBytes = 512 << 20

// ExtractFile returns the contents of the regular file at path (absolute, as in the image) from the image's
// layers, the topmost layer that has it winning. Whiteouts are not followed: Ferry's images have none.
func ExtractFile(img v1.Image, path string) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	want := strings.TrimPrefix(path, "/")
	for i := len(layers) - 1; i >= 0; i-- {
		b, found, err := fileInLayer(layers[i], want)
		if err != nil {
			return nil, fmt.Errorf("reading layer %d: %w", i, err)
		}
		if found {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s is not in the image", path)
}

func fileInLayer(l v1.Layer, name string) ([]byte, bool, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if strings.TrimPrefix(h.Name, "./") != name || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxExtractBytes {
			return nil, false, fmt.Errorf("%s is %d bytes, more than %d", name, h.Size, maxExtractBytes)
		}
		b, err := io.ReadAll(tr)
		return b, true, err
	}
}
