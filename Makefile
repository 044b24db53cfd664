# Ferry's build. Two commands matter on a fresh machine: `make demo` and `make test`.
# Every tool is built from a Go module (go.mod `tool` lines or hack/tools/*) into the git-ignored bin/ folder.

SHELL := /usr/bin/env bash -o pipefail
GO ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
# Tests that need a real tool fail instead of skipping when this is set.
export FERRY_REQUIRE_TOOLS ?= 1
# `make test` budget: CI has 90 minutes on 2 cores.
TEST_TIMEOUT ?= 30m
TEST_FLAGS ?= -race -count=1 -timeout $(TEST_TIMEOUT)

.PHONY: all
all: build

##@ Development

.PHONY: generate
generate: ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: manifests
manifests: ## Generate the CRD and RBAC from the API types and controller markers (and copy them into charts/ferry).
	$(CONTROLLER_GEN) crd rbac:roleName=ferry-manager-role paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@$(MAKE) --no-print-directory helm-sync

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet the module.
	$(GO) vet ./...

.PHONY: build
build: generate manifests ## Build ferry and ferry-controller into bin/.
	$(GO) build -o bin/ferry ./cmd/ferry
	$(GO) build -o bin/ferry-controller ./cmd/ferry-controller
	ln -sf ferry bin/kubectl-ferry

.PHONY: verify
verify: generate manifests ## Fail when generated files are stale, Go files unformatted or go.mod untidy.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod is not tidy: run 'go mod tidy' and commit"; exit 1; }

##@ Helm chart (charts/ferry)

# The chart's copies of config/ files; internal/helmchart's tests fail when one differs from its source.
HELM_COPIES := config/crd/bases/ferry.dev_promotions.yaml:charts/ferry/crds/ferry.dev_promotions.yaml \
	config/rbac/role.yaml:charts/ferry/files/manager-role.yaml \
	config/rbac/leader_election_role.yaml:charts/ferry/files/leader-election-role.yaml \
	config/rbac/sync_role.yaml:charts/ferry/files/sync-role.yaml \
	config/default/metrics_auth_role.yaml:charts/ferry/files/metrics-auth-role.yaml \
	config/default/metrics_reader_role.yaml:charts/ferry/files/metrics-reader-role.yaml \
	config/prometheus/rules.yaml:charts/ferry/files/prometheus-rules.yaml \
	config/prometheus/dashboard.json:charts/ferry/files/dashboard.json

.PHONY: helm-sync
helm-sync: ## Copy config/'s CRD, RBAC, alerts and dashboard into charts/ferry (`make manifests` runs it).
	@for pair in $(HELM_COPIES); do cp "$${pair%%:*}" "$${pair##*:}"; done

.PHONY: helm-lint
helm-lint: ## Lint charts/ferry strictly and render it with the Helm SDK (no helm binary needed).
	$(GO) run ./hack/helmlint charts/ferry

##@ Real parts for tests (built once, cached under bin/)

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler from their Go modules.
	hack/controlplane.sh >/dev/null

.PHONY: test-tools
test-tools: controlplane ## Build or install every real tool the tests use.
	hack/cosign.sh >/dev/null
	hack/kwok.sh >/dev/null
	hack/promtool.sh >/dev/null
	hack/gitea.sh >/dev/null
	hack/registry.sh >/dev/null
	hack/prometheus.sh >/dev/null
	hack/flux.sh >/dev/null
	hack/argocd.sh >/dev/null
	hack/chromium.sh >/dev/null

##@ Tests

.PHONY: test
test: vet test-tools ## Run every test (race detector on) against real parts.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" \
	FERRY_COSIGN="$$(hack/cosign.sh)" \
	FERRY_KWOK="$$(hack/kwok.sh)" \
	FERRY_PROMTOOL="$$(hack/promtool.sh)" \
	FERRY_GITEA="$$(hack/gitea.sh)" \
	FERRY_DOCKER_REGISTRY="$$(hack/registry.sh)" \
	FERRY_PROMETHEUS="$$(hack/prometheus.sh | sed -n 1p)" \
	FERRY_PUSHGATEWAY="$$(hack/prometheus.sh | sed -n 2p)" \
	FERRY_FLUX="$$(hack/flux.sh)" FERRY_ARGOCD="$$(hack/argocd.sh)" \
	FERRY_CHROMIUM="$$(hack/chromium.sh)" \
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: dashboard-screenshot
dashboard-screenshot: controlplane ## Drive the dashboard in headless Chromium and save the README's screenshot to docs/images/dashboard.png.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" FERRY_CHROMIUM="$$(hack/chromium.sh)" FERRY_REQUIRE_TOOLS=1 \
	FERRY_DASHBOARD_SCREENSHOT="$(CURDIR)/docs/images/dashboard.png" \
	$(GO) test -count=1 -run 'TestBrowserPagesActionsAndLiveUpdates' ./internal/dashboard/

.PHONY: e2e
e2e: test-tools ## Run only the end-to-end tests (the controller as a process on a local cluster); `make test` runs them too.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" \
	FERRY_COSIGN="$$(hack/cosign.sh)" \
	FERRY_KWOK="$$(hack/kwok.sh)" \
	FERRY_GITEA="$$(hack/gitea.sh)" \
	FERRY_DOCKER_REGISTRY="$$(hack/registry.sh)" \
	FERRY_PROMETHEUS="$$(hack/prometheus.sh | sed -n 1p)" \
	FERRY_PUSHGATEWAY="$$(hack/prometheus.sh | sed -n 2p)" \
	$(GO) test -race -count=1 -timeout 40m ./e2e/...

.PHONY: bench
bench: test-tools ## Run the benchmarks that check Ferry's speed and memory targets, printing ratios against the peers.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" FERRY_KWOK="$$(hack/kwok.sh)" \
	FERRY_DOCKER_REGISTRY="$$(hack/registry.sh)" FERRY_GITEA="$$(hack/gitea.sh)" \
	FERRY_FLUX="$$(hack/flux.sh)" FERRY_ARGOCD="$$(hack/argocd.sh)" \
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/... ./controllers/...
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./hack/bench-controller

.PHONY: demo
demo: build controlplane image ## Run Ferry end to end on a local cluster: install Ferry from its verified image, sign, promote dev -> staging -> prod, canary, roll back.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" FERRY_COSIGN="$$(hack/cosign.sh)" FERRY_KWOK="$$(hack/kwok.sh)" \
	FERRY_PROMETHEUS="$$(hack/prometheus.sh | sed -n 1p)" \
	$(GO) run ./hack/demo

##@ Release (docs/release.md)

# The version stamped into the binaries and the image's tag; empty: `git describe --tags` (v0.0.0-<commit> untagged).
VERSION ?=
# Where `make release` pushes: host[:port]/path; the image goes to $(REGISTRY)/ferry-controller.
REGISTRY ?=

.PHONY: image
image: ## Build ferry-controller's linux/amd64+arm64 OCI image without Docker: dist/image (OCI layout), dist/sbom.spdx.json.
	$(GO) run ./hack/release image $(if $(VERSION),--version "$(VERSION)")

.PHONY: release
release: ## Build the image, push it to REGISTRY=host[:port]/path, sign and attest it; write dist/install.yaml and dist/charts/ferry pinned by digest.
	@test -n "$(REGISTRY)" || { echo "usage: make release REGISTRY=host[:port]/path (key: FERRY_RELEASE_KEY, FERRY_RELEASE_PUB, COSIGN_PASSWORD)"; exit 1; }
	@$(MAKE) --no-print-directory image
	FERRY_COSIGN="$$(hack/cosign.sh)" $(GO) run ./hack/release release --registry "$(REGISTRY)"

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
