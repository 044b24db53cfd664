// Command helmlint checks a chart as `helm lint --strict` followed by `helm template` would, with Helm's Go SDK,
// so that `make helm-lint` needs no helm binary: it fails on any lint warning or error, and on a render that fails
// (Helm's lint only logs a template's `fail`). Ferry's chart needs image.digest; without -set image.digest=…, a
// placeholder digest is used, since only the chart is being checked.
//
//	go run ./hack/helmlint [-set key=value]… CHART_DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/strvals"
)

const placeholderDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var sets setFlags
	flag.Var(&sets, "set", "a value, as helm's --set (repeatable)")
	namespace := flag.String("namespace", "ferry-system", "the release namespace")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helmlint [-set key=value]… CHART_DIR")
		os.Exit(2)
	}
	if err := check(flag.Arg(0), *namespace, sets); err != nil {
		fmt.Fprintln(os.Stderr, "helmlint:", err)
		os.Exit(1)
	}
}

func check(dir, namespace string, sets []string) error {
	values := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, values); err != nil {
			return fmt.Errorf("-set %s: %w", s, err)
		}
	}
	if image, _ := values["image"].(map[string]any); image == nil || image["digest"] == nil {
		fmt.Printf("image.digest not set: checking with the placeholder %s\n", placeholderDigest)
		if err := strvals.ParseInto("image.digest="+placeholderDigest, values); err != nil {
			return err
		}
	}

	linter := lint.AllWithKubeVersionAndSchemaValidation(dir, values, namespace, nil, false)
	problems := 0
	for _, m := range linter.Messages {
		fmt.Println(m)
		if m.Severity > support.InfoSev {
			problems++
		}
	}
	if problems > 0 {
		return fmt.Errorf("%s: %d lint warnings or errors", dir, problems)
	}

	chrt, err := loader.Load(dir)
	if err != nil {
		return fmt.Errorf("loading %s: %w", dir, err)
	}
	options := chartutil.ReleaseOptions{Name: chrt.Name(), Namespace: namespace, Revision: 1, IsInstall: true}
	renderValues, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, values, options, chartutil.DefaultCapabilities.Copy(), false)
	if err != nil {
		return fmt.Errorf("rendering %s: %w", dir, err)
	}
	if _, err := engine.Render(chrt, renderValues); err != nil {
		return fmt.Errorf("rendering %s: %w", dir, err)
	}
	fmt.Printf("%s: lint clean (strict) and renders\n", dir)
	return nil
}
