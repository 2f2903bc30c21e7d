# Build, test and demo entry points of the wgtwo.sipbreakout collection. `make help` lists the targets.
#
# Everything a test needs is installed from here (Debian packages, virtual environments, the offline
# ansible-test bootstrap), so a fresh Debian 12 machine, as root, needs only `make test` or `make demo`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(abspath $(dir $(firstword $(MAKEFILE_LIST))))
# The Python that creates .venv (3.11: ansible-core 2.19 runs on it, ansible-test is told --python 3.11).
PYTHON ?= python3
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
# Debian 12's own Python: the oldest end the modules support (python3-grpcio 1.51, python3-protobuf 3.21).
DEBIAN_PYTHON ?= /usr/bin/python3
BUILD := $(ROOT)/.build
VENV_DEBIAN := $(BUILD)/venv-debian
# ansible-test needs the collection at .../ansible_collections/wgtwo/sipbreakout: `make collection` copies it here.
COLLECTION := $(BUILD)/ansible_collections/wgtwo/sipbreakout
# Plain pytest imports the work tree itself through this symlink (the functional tests insist on that).
DEV_ROOT := $(BUILD)/dev
ANSIBLE_TEST_PYTHON := 3.11
# Layers leave one-line notes here that `make test`'s summary prints (hack/layers.sh), such as whether the wire
# contract was checked against the operator's descriptor set.
export SIPBREAKOUT_SUMMARY_NOTES ?= $(BUILD)/summary-notes
# The operator's published descriptor set, as its docs download it for grpcurl; `make wgtwoapis-image` puts it
# where the wire-contract tests look after SIPBREAKOUT_WGTWOAPIS_IMAGE and ../shared/reference/.
WGTWOAPIS_IMAGE_URL ?= https://github.com/working-group-two/wgtwoapis/blob/master/image.bin?raw=true
WGTWOAPIS_IMAGE := $(ROOT)/.cache/wgtwoapis/image.bin
# The test PostgreSQL (hack/postgresql.py): its folder, and the description the tests read
# (tests/postgresql_support.py; `ansible-test units` drops this variable and finds the file there instead).
POSTGRESQL := $(BUILD)/postgresql
export SIPBREAKOUT_TEST_POSTGRESQL := $(POSTGRESQL)/postgresql.json
# The release tarball `make dist` builds from the work tree (galaxy.yml's build_ignore keeps the tooling out).
VERSION := $(shell sed -n 's/^version: *//p' $(ROOT)/galaxy.yml)
DIST := $(BUILD)/dist
TARBALL := $(DIST)/wgtwo-sipbreakout-$(VERSION).tar.gz

# `make emulator`: the offline API emulator for your own playbooks, its state, variables file and client secret in
# EMULATOR_DIR; run by the demo's virtual environment unless EMULATOR_PYTHON names another Python that has grpcio,
# protobuf and cryptography.
EMULATOR_DIR ?= $(BUILD)/emulator
EMULATOR_PYTHON ?=
DEMO_VENV := $(BUILD)/demo/venv

# Debian packages the tests need: git and tar for the build copy; python3-venv for the Debian-end venv;
# Debian's grpcio/protobuf/requests-oauthlib/psycopg for the tests of that end; shellcheck for the sanity test of
# the same name (without it, ansible-test skips that test with only a warning); PostgreSQL 15's server and client
# for the test cluster (hack/postgresql.py runs /usr/lib/postgresql/15/bin).
DEB_PACKAGES := git tar ca-certificates python3 python3-venv python3-grpcio python3-protobuf \
	python3-requests-oauthlib python3-psycopg shellcheck systemd postgresql-15 postgresql-client-15
# The observability layer's own: promtool (in Debian's prometheus) and node-exporter, whose textfile collector
# serves the keepalive's metrics to the tests. Where invoke-rc.d may start services (no policy-rc.d), installing
# them starts their daemons too (ports 9090 and 9100); the tests start node-exporter on a port of their own.
OBSERVABILITY_PACKAGES := prometheus prometheus-node-exporter

# `make test` runs these in this order: cheap and static first. The integration tests run in release-check, from
# the installed release tarball (`make integration` runs them from the build copy, for development).
LAYERS := changelog-lint ee-check docs-check protos-check lint sanity units units-debian functional observability awx \
	release-check
# The molecule layer joins once the tree has scenarios.
ifneq ($(wildcard $(ROOT)/extensions/molecule/*/molecule.yml),)
LAYERS += molecule
endif

define banner
printf '\n==> %s [%s]\n' "$(1)" "$$(date +%T)"
endef

.PHONY: help
help:
	@cat <<'EOF'
	Targets of wgtwo.sipbreakout (the Quick start in README.md needs only the first two):
	  make demo            own venv, build + install the collection, emulator, playbooks/register.yml, show, stop
	  make emulator        start the API emulator for your playbooks; vars file $(EMULATOR_DIR:$(ROOT)/%=%)/vars.yml
	  make emulator-status whether it runs, where, and how many registrations it holds
	  make emulator-stop   stop it (its vars file and client secret go with it)
	  make test            every test layer in order: $(LAYERS)
	  make deps            install the Debian packages the tests need (as root; apt runs only if one is missing)
	  make venv            .venv with the pinned tools of tests/requirements-dev.txt + tests/constraints.txt
	  make venv-debian     .build/venv-debian: Debian's Python with python3-grpcio/protobuf, plus test tools only
	  make collection      copy the work tree (tracked + new files) to .build/ansible_collections/wgtwo/sipbreakout
	  make ansible-test-cache  offline stand-in for ansible-test's get-pip bootstrap (~/.ansible/test/cache)
	  make sanity          ansible-test sanity, all tests, no ignore files
	  make units           ansible-test units on tests/unit (.venv: newest grpcio/protobuf)
	  make units-debian    the same unit tests on Debian's python3-grpcio 1.51 / python3-protobuf 3.21
	  make functional      pytest tests/functional
	  make postgresql      the test PostgreSQL (.build/postgresql): create once, start or reuse (make postgresql-stop)
	  make observability   alerting rules (promtool test rules) and dashboard of extensions/observability against the keepalive's real metrics
	  make integration     emulator + ansible-test integration of the build copy; the emulator is stopped afterwards
	  make awx             AWX-like jobs: the credential type, ansible-runner with the emulator, job slicing (tests/awx)
	  make release-check   install the release tarball into an empty path: ansible-doc of everything, integration tests
	  make molecule        molecule test --all (podman; image and containers.podman built locally)
	  make lint            ansible-lint, production profile
	  make benchmark       bulk task vs raw client vs per-item loop (1,000, 10,000), a file of 10,000 and 100,000 on SQLite and on the test PostgreSQL (BENCHMARK_ARGS=--million: 1,000,000 too)
	  make changelog-lint  antsibull-changelog lint of the fragments and changelog.yaml
	  make ee-check        ansible-builder: introspect, and a build context from extensions/awx/execution-environment.yml
	  make docs-check      lint the plugin docs; fail if the doc fragments, docs/reference/ or docs/troubleshooting.md are stale
	  make docs            regenerate the shared options' doc fragments (options.py), then docs/reference/ (antsibull-docs)
	  make dist            the release tarball: $(TARBALL:$(ROOT)/%=%)
	  make protos-check    fail if plugins/module_utils/generated/ is stale
	  make protos          regenerate plugins/module_utils/generated/ from protos/
	  make wgtwoapis-image download the operator's descriptor set for the wire-contract tests (.cache/wgtwoapis/)
	  make lock            re-pin tests/constraints.txt from a fresh venv
	  make clean           stop emulators and the test PostgreSQL, remove .build (venvs of the demo and the Debian end too) and test output (make distclean: .venv too)
	EOF

# ---------------------------------------------------------------------------------------------------------
# Machine and environments

.PHONY: deps
deps:
	@$(call banner,deps: Debian packages)
	"$(ROOT)/hack/deps.sh" $(DEB_PACKAGES)

$(VENV)/.stamp-dev: $(ROOT)/requirements.txt $(ROOT)/tests/requirements-dev.txt $(ROOT)/tests/constraints.txt | deps
	@$(call banner,venv: $(VENV))
	if [[ ! -x "$(BIN)/python" ]]; then "$(PYTHON)" -m venv "$(VENV)"; fi
	"$(BIN)/python" -m pip install --quiet --disable-pip-version-check \
		-r "$(ROOT)/tests/requirements-dev.txt" -c "$(ROOT)/tests/constraints.txt"
	touch "$@"

.PHONY: venv
venv: $(VENV)/.stamp-dev

$(VENV_DEBIAN)/.stamp: $(ROOT)/tests/requirements-debian.txt | deps
	@$(call banner,venv-debian: $(VENV_DEBIAN))
	cd "$(ROOT)" && DEBIAN_PYTHON="$(DEBIAN_PYTHON)" hack/venv-debian.sh "$(VENV_DEBIAN)"
	touch "$@"

.PHONY: venv-debian
venv-debian: $(VENV_DEBIAN)/.stamp

.PHONY: lock
lock:
	@$(call banner,lock: tests/constraints.txt)
	cd "$(ROOT)" && PYTHON="$(PYTHON)" hack/lock.sh

.PHONY: collection
collection:
	@$(call banner,collection: $(COLLECTION))
	"$(ROOT)/hack/collection.sh" "$(BUILD)"

.PHONY: dev-link
dev-link:
	@mkdir -p "$(DEV_ROOT)/ansible_collections/wgtwo"
	ln -sfn "$(ROOT)" "$(DEV_ROOT)/ansible_collections/wgtwo/sipbreakout"

.PHONY: postgresql
postgresql: venv
	@$(call banner,postgresql: the test PostgreSQL in $(POSTGRESQL:$(ROOT)/%=%))
	"$(BIN)/python" "$(ROOT)/hack/postgresql.py" start "$(POSTGRESQL)"

.PHONY: postgresql-stop
postgresql-stop:
	@$(call banner,postgresql-stop)
	"$(PYTHON)" "$(ROOT)/hack/postgresql.py" stop "$(POSTGRESQL)"

.PHONY: ansible-test-cache
ansible-test-cache: venv
	@$(call banner,ansible-test-cache)
	"$(BIN)/python" "$(ROOT)/hack/ansible_test_cache.py"

# ---------------------------------------------------------------------------------------------------------
# Test layers

.PHONY: test
test: deps venv
	@$(call banner,test: $(LAYERS))
	rc=0
	MAKE="$(MAKE)" "$(ROOT)/hack/layers.sh" $(LAYERS) || rc=$$?
	# The layers that need the test PostgreSQL start it (or reuse it); it ends with the run.
	"$(MAKE)" postgresql-stop || true
	exit $$rc

.PHONY: changelog-lint
changelog-lint: venv
	@$(call banner,changelog-lint)
	cd "$(ROOT)"
	"$(BIN)/antsibull-changelog" lint
	"$(BIN)/antsibull-changelog" lint-changelog-yaml changelogs/changelog.yaml
	# CHANGELOG.rst must be what antsibull-changelog renders from changelogs/changelog.yaml (`release` writes both).
	rendered=$$(mktemp -d)
	trap 'rm -rf "$$rendered"' EXIT
	mkdir "$$rendered/changelogs"
	cp galaxy.yml "$$rendered/"
	cp changelogs/config.yaml changelogs/changelog.yaml "$$rendered/changelogs/"
	(cd "$$rendered" && "$(BIN)/antsibull-changelog" generate)
	if ! diff -u --label CHANGELOG.rst --label rendered CHANGELOG.rst "$$rendered/CHANGELOG.rst"; then
		echo "changelog-lint: CHANGELOG.rst is not what changelogs/changelog.yaml renders; run" \
			"'antsibull-changelog generate' (docs/release.md)" >&2
		exit 1
	fi
	echo "changelog-lint: fragments and changelogs/changelog.yaml are valid; CHANGELOG.rst is rendered from it"

.PHONY: ee-check
ee-check: venv collection dist dev-link
	@$(call banner,ee-check: ansible-builder introspect and create)
	deps=$$("$(BIN)/ansible-builder" introspect --sanitize "$(BUILD)")
	echo "$$deps"
	for wanted in "'grpcio>=" "'protobuf>=" "'requests-oauthlib>=" "'python3-grpcio \[platform:dpkg\]"; do
		if ! grep -q "^- $$wanted" <<<"$$deps"; then
			echo "ee-check: ansible-builder does not see $$wanted from meta/execution-environment.yml" >&2
			exit 1
		fi
	done
	echo "ee-check: ansible-builder picks up requirements.txt and bindep.txt"
	# The example execution environment, from the release tarball: ansible-builder create, then its galaxy and
	# builder stages replayed without a container engine.
	cd "$(ROOT)"
	PATH="$(BIN):$$PATH" PYTHONPATH="$(DEV_ROOT):$(ROOT)/tests/emulator" SIPBREAKOUT_TARBALL="$(TARBALL)" \
		"$(BIN)/python" -m pytest -ra -p no:cacheprovider tests/awx/test_execution_environment.py

.PHONY: docs
docs: venv
	@$(call banner,docs: doc fragments from options.py; antsibull-docs into docs/reference/)
	cd "$(ROOT)" && "$(BIN)/python" hack/doc_fragments.py
	# The build copy is made after the fragments are, so that antsibull-docs documents the new ones.
	$(MAKE) collection
	PATH="$(BIN):$$PATH" "$(ROOT)/hack/docs.sh" generate "$(BUILD)"

.PHONY: docs-check
docs-check: venv collection dev-link
	@$(call banner,docs-check: doc fragments and docs/reference/ up to date, antsibull-docs lint; troubleshooting page complete; links; README's install and versions)
	cd "$(ROOT)" && "$(BIN)/python" hack/doc_fragments.py --check
	PATH="$(BIN):$$PATH" "$(ROOT)/hack/docs.sh" check "$(BUILD)"
	cd "$(ROOT)"
	PATH="$(BIN):$$PATH" PYTHONPATH="$(DEV_ROOT)" \
		"$(BIN)/python" -m pytest -ra -p no:cacheprovider tests/functional/test_docs_troubleshooting.py \
		tests/functional/test_docs_links.py tests/functional/test_docs_install.py

.PHONY: protos-check
protos-check: venv
	@$(call banner,protos-check)
	cd "$(ROOT)" && "$(BIN)/python" protos/generate.py --check

.PHONY: wgtwoapis-image
wgtwoapis-image: venv
	@$(call banner,wgtwoapis-image: the operator's descriptor set into $(WGTWOAPIS_IMAGE:$(ROOT)/%=%))
	if ! command -v curl >/dev/null; then "$(ROOT)/hack/deps.sh" curl; fi
	mkdir -p "$(dir $(WGTWOAPIS_IMAGE))"
	# Kept only if it is a descriptor set with the SIP breakout API (a failed download can be an HTML page).
	if ! curl -sL --fail "$(WGTWOAPIS_IMAGE_URL)" -o "$(WGTWOAPIS_IMAGE).download" \
		|| ! "$(BIN)/python" "$(ROOT)/hack/check_wgtwoapis_image.py" "$(WGTWOAPIS_IMAGE).download"; then
		rm -f "$(WGTWOAPIS_IMAGE).download"
		echo "wgtwoapis-image: could not download the descriptor set from $(WGTWOAPIS_IMAGE_URL)" >&2
		exit 1
	fi
	mv "$(WGTWOAPIS_IMAGE).download" "$(WGTWOAPIS_IMAGE)"

.PHONY: protos
protos: venv
	@$(call banner,protos)
	cd "$(ROOT)" && "$(BIN)/python" protos/generate.py

.PHONY: lint
lint: venv
	@$(call banner,lint: ansible-lint --profile production)
	cd "$(ROOT)" && PATH="$(BIN):$$PATH" ansible-lint --profile production

.PHONY: sanity
sanity: venv collection ansible-test-cache
	@$(call banner,sanity: ansible-test sanity --python $(ANSIBLE_TEST_PYTHON) --venv)
	# Findings get fixed, never ignored: no ignore file may hold an entry.
	entries=$$(cat "$(ROOT)"/tests/sanity/ignore-*.txt 2>/dev/null | grep -cv '^[[:space:]]*\(#\|$$\)' || true)
	if [[ $$entries -ne 0 ]]; then
		echo "sanity: tests/sanity/ignore-*.txt hold $$entries entries; fix the findings instead" >&2
		exit 1
	fi
	PATH="$(BIN):$$PATH" "$(ROOT)/hack/ansible-test.sh" "$(COLLECTION)" sanity \
		--python $(ANSIBLE_TEST_PYTHON) --venv

.PHONY: units
units: venv collection postgresql
	@$(call banner,units: ansible-test units --python $(ANSIBLE_TEST_PYTHON) --local)
	PATH="$(BIN):$$PATH" "$(ROOT)/hack/ansible-test.sh" "$(COLLECTION)" units \
		--python $(ANSIBLE_TEST_PYTHON) --local

.PHONY: units-debian
units-debian: venv venv-debian collection postgresql
	@$(call banner,units-debian: ansible-test units on $(DEBIAN_PYTHON) with Debian's grpcio/protobuf)
	PATH="$(BIN):$$PATH" "$(ROOT)/hack/ansible-test.sh" "$(COLLECTION)" units \
		--python $(ANSIBLE_TEST_PYTHON) --local --python-interpreter "$(VENV_DEBIAN)/bin/python"

.PHONY: functional
functional: venv dev-link postgresql
	@$(call banner,functional: pytest tests/functional)
	cd "$(ROOT)"
	PATH="$(BIN):$$PATH" PYTHONPATH="$(DEV_ROOT):$(ROOT)/tests/emulator" \
		"$(BIN)/python" -m pytest -ra -p no:cacheprovider tests/functional

.PHONY: observability
observability: venv dev-link
	@$(call banner,observability: extensions/observability against the keepalive's metrics, with promtool)
	"$(ROOT)/hack/deps.sh" $(OBSERVABILITY_PACKAGES)
	cd "$(ROOT)"
	PATH="$(BIN):$$PATH" PYTHONPATH="$(DEV_ROOT):$(ROOT)/tests/emulator:$(ROOT)/tests/functional:$(ROOT)/tests/observability" \
		"$(BIN)/python" -m pytest -ra -p no:cacheprovider tests/observability

.PHONY: integration
integration: venv collection
	@$(call banner,integration: emulator + ansible-test integration --python $(ANSIBLE_TEST_PYTHON) --local)
	PATH="$(BIN):$$PATH" PYTHON="$(BIN)/python" ANSIBLE_TEST_PYTHON=$(ANSIBLE_TEST_PYTHON) \
		"$(ROOT)/hack/integration.sh" "$(BUILD)"

.PHONY: dist
dist: venv
	@$(call banner,dist: ansible-galaxy collection build of the work tree)
	rm -rf "$(DIST)"
	mkdir -p "$(DIST)"
	"$(BIN)/ansible-galaxy" collection build "$(ROOT)" --output-path "$(DIST)"
	test -s "$(TARBALL)"

.PHONY: awx
awx: venv dist dev-link postgresql
	@$(call banner,awx: credential type and ansible-runner jobs against the emulator (sliced too))
	cd "$(ROOT)"
	PATH="$(BIN):$$PATH" PYTHONPATH="$(DEV_ROOT):$(ROOT)/tests/emulator" SIPBREAKOUT_TARBALL="$(TARBALL)" \
		"$(BIN)/python" -m pytest -ra -p no:cacheprovider tests/awx --ignore=tests/awx/test_execution_environment.py

.PHONY: release-check
release-check: venv dist postgresql
	@$(call banner,release-check: the installed tarball: ansible-doc and integration tests)
	PATH="$(BIN):$$PATH" PYTHON="$(BIN)/python" ANSIBLE_TEST_PYTHON=$(ANSIBLE_TEST_PYTHON) \
		"$(ROOT)/hack/release-check.sh" "$(TARBALL)" "$(BUILD)"

.PHONY: molecule
molecule: venv
	@$(call banner,molecule: molecule test --all)
	# hack/molecule/molecule.sh (the roles' own runner) installs podman/runc/debootstrap, builds the local
	# Debian 12 image and extracts containers.podman before it runs molecule.
	MOLECULE="$(BIN)/molecule" PYTHON="$(BIN)/python" "$(ROOT)/hack/molecule/molecule.sh" test --all

# ---------------------------------------------------------------------------------------------------------
# Demo and housekeeping

.PHONY: benchmark
benchmark: venv dev-link postgresql
	@$(call banner,benchmark: hack/benchmark.py against a fresh emulator)
	"$(BIN)/python" "$(ROOT)/hack/benchmark.py" $(BENCHMARK_ARGS)

.PHONY: demo
demo: deps collection
	@$(call banner,demo)
	PYTHON="$(PYTHON)" "$(ROOT)/hack/demo.sh" "$(BUILD)"

.PHONY: emulator
emulator: deps dev-link
	@$(call banner,emulator: the API emulator in $(EMULATOR_DIR))
	python="$(EMULATOR_PYTHON)"
	if [[ -z $$python ]]; then
		PYTHON="$(PYTHON)" "$(ROOT)/hack/demo-venv.sh" "$(DEMO_VENV)"
		python="$(DEMO_VENV)/bin/python"
	fi
	PYTHONPATH="$(ROOT)/tests/emulator:$(DEV_ROOT)" "$$python" "$(ROOT)/hack/emulator_user.py" up "$(EMULATOR_DIR)"

.PHONY: emulator-status emulator-stop
emulator-status emulator-stop:
	@python="$(EMULATOR_PYTHON)"
	if [[ -z $$python ]]; then python=$$([[ -x "$(DEMO_VENV)/bin/python" ]] && echo "$(DEMO_VENV)/bin/python" || echo "$(PYTHON)"); fi
	PYTHONPATH="$(ROOT)/tests/emulator:$(DEV_ROOT)" "$$python" "$(ROOT)/hack/emulator_user.py" \
		$(if $(filter emulator-stop,$@),down,status) "$(EMULATOR_DIR)"

.PHONY: clean
clean:
	@$(call banner,clean)
	for state in "$(EMULATOR_DIR)" "$(BUILD)/demo/emulator" "$(BUILD)/release/collections/emulator"; do
		if [[ -f "$$state/emulator.json" ]]; then
			PYTHON="$$( [[ -x "$(BIN)/python" ]] && echo "$(BIN)/python" || echo "$(PYTHON)")" \
				"$(ROOT)/hack/emulator.sh" stop "$$state" || true
		fi
	done
	"$(PYTHON)" "$(ROOT)/hack/postgresql.py" clean "$(POSTGRESQL)"
	rm -rf "$(BUILD)" "$(ROOT)/tests/output" "$(ROOT)/.ansible" "$(ROOT)/.pytest_cache"
	find "$(ROOT)" -path "$(VENV)" -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean
	rm -rf "$(VENV)" "$(ROOT)/.cache"
