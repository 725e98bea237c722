# Roster's build. Every tool it needs beyond Go and git is installed under bin/ by this
# Makefile or by hack/ scripts, pinned, so a fresh clone works on a machine with only Go.

CONTROLLER_TOOLS_VERSION ?= v0.23.0
K8S_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.6.16

BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GO_TEST_FLAGS ?= -count=1
export K8S_VERSION ETCD_VERSION

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the markers in api/ and controllers/.
	$(CONTROLLER_GEN) rbac:roleName=roster-manager crd webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook
	@$(MAKE) -s chart-files

# The Helm chart reads these from its own directory (Helm cannot reach outside the chart);
# they are copies of config/, kept in sync by `make manifests` and checked by `make verify`
# and by internal/install's test.
CHART := charts/roster

.PHONY: chart-files
chart-files: ## Copy the CRDs, generated RBAC and webhooks, alerts and dashboard from config/ into the chart.
	@rm -f $(CHART)/crds/*.yaml && mkdir -p $(CHART)/crds $(CHART)/files
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml
	cp config/webhook/manifests.yaml $(CHART)/files/webhooks.yaml
	cp config/prometheus/prometheusrule.yaml $(CHART)/files/prometheusrule.yaml
	cp config/prometheus/dashboard.json $(CHART)/files/dashboard.json

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/webhook/manifests.yaml \
	$(CHART)/crds $(CHART)/files

.PHONY: verify
verify: $(CONTROLLER_GEN) ## Fail when the generated files are not what the sources generate.
	@rm -rf $(BIN)/.verify && mkdir -p $(BIN)/.verify && cp -r --parents $(GENERATED) $(BIN)/.verify/
	@$(MAKE) -s manifests generate >/dev/null
	@for f in $(GENERATED); do \
		if ! diff -r -q $(BIN)/.verify/$$f $$f >/dev/null; then \
			echo "$$f was out of date; 'make manifests generate' rewrote it: commit the result"; diff -r $(BIN)/.verify/$$f $$f | head -40; exit 1; \
		fi; \
	done

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: envtest
envtest: ## Provide kube-apiserver and etcd for envtest under bin/k8s/.
	@hack/setup-envtest.sh >/dev/null

.PHONY: test
test: verify vet envtest ## Run every test against a real API server.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test $(GO_TEST_FLAGS) ./...

# `make bench` measures Roster as it runs in production (issue 12): the manager, portal and
# plugin binaries as their own processes on a local control plane, against the API server's
# own floor. It prints a table and writes results-<time>.json to BENCH_OUT. The full sizes
# (2,000 invitations, 100,000 members, ...) take long on a small machine; BENCH_QUICK=1
# scales them down to a run of minutes. BENCH_FLAGS passes more flags (go run ./hack/bench -h).
BENCH_OUT ?= $(BIN)/bench
BENCH_QUICK ?=
BENCH_FLAGS ?=

.PHONY: bench
bench: envtest ## Measure throughput vs the API server's floor, latency, memory, portal, import, shards; BENCH_QUICK=1 for a short run.
	BENCH_QUICK=$(BENCH_QUICK) KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go run ./hack/bench -out $(BENCH_OUT) $(BENCH_FLAGS)

.PHONY: bench-go
bench-go: envtest ## Run the packages' Go benchmarks (go test -bench).
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test -run '^$$' -bench . -benchmem ./...

# The fault tests (test/faults) run short in `make test`; ROSTER_CHAOS=1 gives the issue's
# full sizes: 500 invitations and 10 manager kills, a 20 s API server outage, a 30 s SMTP
# outage.
.PHONY: chaos
chaos: envtest ## Run the long fault tests: manager kills, API server and SMTP outages, concurrent writes.
	ROSTER_CHAOS=1 KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test $(GO_TEST_FLAGS) -timeout 30m -v ./test/faults/

FUZZTIME ?= 30s
# Each input that finds new code is minimized first, for up to this long, and the clock of
# FUZZTIME runs on meanwhile; Go's default of 60 s would spend a short run minimizing.
FUZZMINIMIZETIME ?= 10s
# package:target pairs; new inputs each finds are kept in the package's testdata/fuzz as
# regression cases, which plain `go test` then runs.
FUZZ_TARGETS := internal/bulk:FuzzReadClients internal/bulk:FuzzParse \
	internal/notify:FuzzRenderHostileNames internal/linktoken:FuzzToken \
	internal/webhook/v1alpha1:FuzzMemberAdmission internal/webhook/v1alpha1:FuzzInvitationAdmission \
	internal/webhook/v1alpha1:FuzzExternalUserAdmission internal/webhook/v1alpha1:FuzzCollaborationAdmission \
	internal/webhook/v1alpha1:FuzzOrganizationAdmission

.PHONY: fuzz
fuzz: ## Fuzz the CSV readers, message rendering, link tokens and admission webhooks for FUZZTIME each, keeping new inputs as regression cases.
	@for pt in $(FUZZ_TARGETS); do \
		pkg=$${pt%%:*}; f=$${pt##*:}; \
		go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg/ || exit 1; \
		corpus="$$(go env GOCACHE)/fuzz/github.com/roster-dev/roster/$$pkg/$$f"; \
		mkdir -p $$pkg/testdata/fuzz/$$f; \
		if [ -d "$$corpus" ]; then cp -n "$$corpus/"* $$pkg/testdata/fuzz/$$f/; fi; \
	done
	@echo "commit the new inputs under */testdata/fuzz"

.PHONY: demo
demo: manifests envtest ## Roster on a local control plane with the samples; prints how to use kubectl.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go run ./hack/demo -root .

##@ Deploy

.PHONY: deploy
deploy: ## Apply config/default to the current kubectl context (needs cert-manager there).
	kubectl apply --server-side -k config/default

##@ Build

IMG ?= ghcr.io/roster-dev/roster:latest

.PHONY: docker-build
docker-build: ## Build the image IMG with docker; needs a running Docker engine, so it is not part of `make test`.
	docker build -t $(IMG) .

.PHONY: build
build: ## Build the manager and the kubectl plugin.
	go build -o $(BIN)/manager ./cmd/manager
	go build -o $(BIN)/kubectl-roster ./cmd/kubectl-roster

INSTALL_DIR ?= $(shell d=$$(go env GOBIN); echo $${d:-$$(go env GOPATH)/bin})

.PHONY: install-plugin
install-plugin: ## Install kubectl-roster into INSTALL_DIR (GOBIN or GOPATH/bin), so that `kubectl roster` runs it.
	GOBIN=$(INSTALL_DIR) go install ./cmd/kubectl-roster
	@case ":$$PATH:" in \
		*":$(INSTALL_DIR):"*) echo "installed $(INSTALL_DIR)/kubectl-roster: try kubectl roster --help" ;; \
		*) echo "installed $(INSTALL_DIR)/kubectl-roster; $(INSTALL_DIR) is not on your PATH: export PATH=\"$(INSTALL_DIR):\$$PATH\"" ;; \
	esac

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
