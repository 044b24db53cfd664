package sync

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/ignore"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// loadChart reads the chart folder (rel, inside stageDir) through fsys and loads it with every vendored
// dependency. Files are read as helm reads a chart folder — .helmignore applies — but through the checkout's
// root, so a symbolic link out of the checkout fails, and within maxChartSize.
func loadChart(fsys fs.FS, stageDir, rel string) (*chart.Chart, error) {
	dir, err := within(stageDir, rel)
	if err != nil {
		return nil, helmErrorf(HelmInputChart, "chart folder %v", err)
	}
	if info, err := fs.Stat(fsys, path.Join(dir, "Chart.yaml")); err != nil || !info.Mode().IsRegular() {
		return nil, helmErrorf(HelmInputChart, "no Chart.yaml in chart folder %s", dir)
	}
	files, err := chartFiles(fsys, dir)
	if err != nil {
		return nil, &HelmError{Input: HelmInputChart, Err: err}
	}
	chrt, err := loader.LoadFiles(files)
	if err != nil {
		return nil, helmErrorf(HelmInputChart, "loading chart %s: %v", dir, err)
	}
	if err := checkVendored(chrt, dir); err != nil {
		return nil, &HelmError{Input: HelmInputChart, Err: err}
	}
	return chrt, nil
}

// chartFiles reads every file of the chart folder that .helmignore keeps, named relative to the folder.
func chartFiles(fsys fs.FS, dir string) ([]*loader.BufferedFile, error) {
	rules, err := helmIgnore(fsys, dir)
	if err != nil {
		return nil, err
	}
	r := &chartReader{fsys: fsys, dir: dir, rules: rules}
	if err := fs.WalkDir(fsys, dir, r.visit); err != nil {
		return nil, err
	}
	return r.files, nil
}

// chartReader collects a chart folder's files as fs.WalkDir visits them.
type chartReader struct {
	fsys  fs.FS
	dir   string
	rules *ignore.Rules
	files []*loader.BufferedFile
	total int
}

func (r *chartReader) visit(p string, d fs.DirEntry, err error) error {
	if err != nil {
		return fmt.Errorf("reading chart at %s: %w", p, err)
	}
	if p == r.dir {
		return nil
	}
	name := p
	if r.dir != "." {
		name = strings.TrimPrefix(p, r.dir+"/")
	}
	info, err := fs.Stat(r.fsys, p) // follows a link, within the checkout only
	if err != nil {
		return fmt.Errorf("reading chart at %s: %w", p, err)
	}
	switch {
	case r.rules.Ignore(name, info) && d.IsDir():
		return fs.SkipDir
	case r.rules.Ignore(name, info) || d.IsDir():
		return nil
	case info.IsDir():
		return fmt.Errorf("%s: symbolic links to folders are not supported", p)
	}
	return r.read(p, name)
}

// read adds the file at p, within the chart's size bound.
func (r *chartReader) read(p, name string) error {
	data, err := readBounded(r.fsys, p)
	if err != nil {
		return err
	}
	if r.total += len(data); r.total > maxChartSize {
		return fmt.Errorf("chart %s holds more than %d bytes", r.dir, maxChartSize)
	}
	r.files = append(r.files, &loader.BufferedFile{Name: name, Data: bytes.TrimPrefix(data, utf8BOM)})
	return nil
}

// helmIgnore reads the chart's .helmignore, with helm's default rules.
func helmIgnore(fsys fs.FS, dir string) (*ignore.Rules, error) {
	rules := ignore.Empty()
	file := path.Join(dir, ignore.HelmIgnore)
	if _, err := fs.Stat(fsys, file); err == nil {
		data, err := readBounded(fsys, file)
		if err != nil {
			return nil, err
		}
		if rules, err = ignore.Parse(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	rules.AddDefaults()
	return rules, nil
}

// checkVendored requires every dependency a chart declares, at any depth, to be in its charts/ folder. helm would
// download a missing one; Ferry fetches nothing, so it names what is missing instead.
func checkVendored(c *chart.Chart, dir string) error {
	have := map[string]bool{}
	for _, sub := range c.Dependencies() {
		have[sub.Name()] = true
	}
	var errs []error
	for _, dep := range c.Metadata.Dependencies {
		if dep == nil || have[dep.Name] {
			continue
		}
		from := ""
		if dep.Repository != "" {
			from = " from " + dep.Repository
		}
		errs = append(errs, fmt.Errorf("chart %s depends on %s %s%s, which is not vendored in %s/: Ferry renders charts "+
			"offline and fetches nothing (run helm dependency build and commit the charts/ folder)",
			c.ChartFullPath(), dep.Name, dep.Version, from, path.Join(dir, chartsDir(c))))
	}
	for _, sub := range c.Dependencies() {
		if err := checkVendored(sub, dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// chartsDir is where a chart's dependencies are vendored, relative to the top chart's folder.
func chartsDir(c *chart.Chart) string {
	p := "charts"
	for parent := c.Parent(); parent != nil; c, parent = parent, parent.Parent() {
		p = path.Join("charts", c.Name(), p)
	}
	return p
}

// readValues reads the stage's values file, rel inside stageDir ("" for none).
func readValues(fsys fs.FS, stageDir, rel string) (chartutil.Values, error) {
	if rel == "" {
		return chartutil.Values{}, nil
	}
	file, err := within(stageDir, rel)
	if err != nil {
		return nil, helmErrorf(HelmInputValuesFile, "values file %v", err)
	}
	data, err := readBounded(fsys, file)
	if err != nil {
		return nil, helmErrorf(HelmInputValuesFile, "values file: %v", err)
	}
	values, err := chartutil.ReadValues(bytes.TrimPrefix(data, utf8BOM))
	if err != nil {
		return nil, helmErrorf(HelmInputValuesFile, "values file %s: %v", file, err)
	}
	return values, nil
}

// checkSchemas validates values against the values.schema.json of the chart and of each dependency given values,
// as helm does, except that a schema may refer to nothing outside itself: helm would fetch an http(s) $ref and read
// a file:// one from the controller's disk.
func checkSchemas(c *chart.Chart, values map[string]any) error {
	var errs []error
	if c.Schema != nil {
		if err := checkSchema(c.Schema, values); err != nil {
			errs = append(errs, fmt.Errorf("values do not match the schema of chart %s: %w", c.ChartFullPath(), err))
		}
	}
	for _, sub := range c.Dependencies() {
		subValues, ok := values[sub.Name()].(map[string]any)
		if !ok {
			continue
		}
		if err := checkSchemas(sub, subValues); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const schemaURL = "file:///values.schema.json"

func checkSchema(schema []byte, values map[string]any) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	compiler := jsonschema.NewCompiler()
	compiler.UseLoader(noSchemaLoader{})
	if err := compiler.AddResource(schemaURL, doc); err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	compiled, err := compiler.Compile(schemaURL)
	if err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	return compiled.Validate(values)
}

// noSchemaLoader loads no schema: every $ref must point inside values.schema.json.
type noSchemaLoader struct{}

func (noSchemaLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("values.schema.json refers to %s: Ferry loads no schema from elsewhere", url)
}
