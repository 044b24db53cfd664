package sync

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// DecodeDocuments decodes a multi-document YAML (or JSON) file into objects. Empty documents are skipped; a List
// (kind List or *List) is expanded into its items. Every error names file and the 1-based document number.
func DecodeDocuments(file string, data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		decoded, err := decodeDocument(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		objs = append(objs, decoded...)
		if len(objs) > maxObjects {
			return nil, fmt.Errorf("%s: more than %d objects", file, maxObjects)
		}
	}
}

// decodeDocument turns one YAML document into zero (empty document), one, or several (List) objects.
func decodeDocument(raw []byte) ([]*unstructured.Unstructured, error) {
	if isBlank(raw) {
		return nil, nil
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if string(bytes.TrimSpace(js)) == "null" {
		return nil, nil
	}
	var content any
	if err := utiljson.Unmarshal(js, &content); err != nil {
		return nil, fmt.Errorf("invalid document: %w", err)
	}
	m, ok := content.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a manifest must be a mapping with apiVersion, kind and metadata, not %T", content)
	}
	obj := &unstructured.Unstructured{Object: m}
	if obj.IsList() {
		return listItems(obj)
	}
	if err := validateObject(obj); err != nil {
		return nil, err
	}
	return []*unstructured.Unstructured{obj}, nil
}

// isBlank reports whether a document holds only whitespace and comments.
func isBlank(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

// listItems expands a List into validated objects.
func listItems(list *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	items, ok := list.Object["items"].([]any)
	if !ok && list.Object["items"] != nil {
		return nil, fmt.Errorf("%s: items must be a list", list.GetKind())
	}
	objs := make([]*unstructured.Unstructured, 0, len(items))
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s item %d: not a mapping", list.GetKind(), i)
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.IsList() {
			return nil, fmt.Errorf("%s item %d: nested lists are not supported", list.GetKind(), i)
		}
		if err := validateObject(obj); err != nil {
			return nil, fmt.Errorf("%s item %d: %w", list.GetKind(), i, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// validateObject checks what apply needs before anything reaches a cluster: a parseable apiVersion, a kind, and
// a fixed name (generateName would create a new object on every sync).
func validateObject(obj *unstructured.Unstructured) error {
	apiVersion, ok := obj.Object["apiVersion"].(string)
	if !ok || apiVersion == "" {
		return errors.New("apiVersion: required string")
	}
	if _, err := schema.ParseGroupVersion(apiVersion); err != nil {
		return fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	kind, ok := obj.Object["kind"].(string)
	if !ok || kind == "" {
		return errors.New("kind: required string")
	}
	meta, ok := obj.Object["metadata"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: metadata: required mapping", kind)
	}
	name, ok := meta["name"].(string)
	if !ok || name == "" {
		if _, gen := meta["generateName"]; gen {
			return fmt.Errorf("%s: metadata.name: required (generateName is not supported: it would create a new object on every sync)", kind)
		}
		return fmt.Errorf("%s: metadata.name: required string", kind)
	}
	if ns, present := meta["namespace"]; present {
		if _, ok := ns.(string); !ok {
			return fmt.Errorf("%s %q: metadata.namespace: must be a string", kind, name)
		}
	}
	for _, field := range []string{"labels", "annotations"} {
		if err := checkStringMap(meta, field); err != nil {
			return fmt.Errorf("%s %q: %w", kind, name, err)
		}
	}
	return nil
}

// checkStringMap makes sure labels and annotations are string maps, so that setting ours cannot fail later.
func checkStringMap(meta map[string]any, field string) error {
	v, present := meta[field]
	if !present || v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("metadata.%s: must be a mapping of strings", field)
	}
	for k, val := range m {
		if _, ok := val.(string); !ok {
			return fmt.Errorf("metadata.%s[%s]: must be a string", field, k)
		}
	}
	return nil
}
