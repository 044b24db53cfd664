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
manifests: ## Generate the CRD and RBAC from the API types and controller markers.
	$(CONTROLLER_GEN) crd rbac:roleName=ferry-manager-role paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

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
	@git diff --exit-code -- api config || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod is not tidy: run 'go mod tidy' and commit"; exit 1; }

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
	$(GO) test $(TEST_FLAGS) ./...

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
demo: build controlplane ## Run Ferry end to end on a local cluster: sign, promote dev -> staging -> prod, canary, roll back.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" FERRY_COSIGN="$$(hack/cosign.sh)" FERRY_KWOK="$$(hack/kwok.sh)" \
	FERRY_PROMETHEUS="$$(hack/prometheus.sh | sed -n 1p)" \
	$(GO) run ./hack/demo

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
