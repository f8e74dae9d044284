# Collector build: the custom OpenTelemetry Collector with the tlstap receiver.
# Included by the main Makefile (-include mk/*.mk); also usable on its own:
#   make -f mk/collector.mk collector
#
#   make collector   build build/tlstap-collector/tlstap-collector with ocb
#   make run         build, then run it with testdata/collector/default.yaml
#                    (root needed: the receiver loads eBPF programs)
#   make mdatagen    regenerate the receiver's generated files from metadata.yaml
#   make versitygw   install the S3-compatible test server (internal/e2e's S3
#                    test runs this itself); prints the binary's path

TLSTAP_ROOT      := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
GO               ?= go
OCB_VERSION      := v0.156.0
OCB_BIN_DIR      := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
OCB              := $(OCB_BIN_DIR)/builder
COLLECTOR_DIR    := $(TLSTAP_ROOT)/build/tlstap-collector
COLLECTOR_BIN    := $(COLLECTOR_DIR)/tlstap-collector
COLLECTOR_CONFIG ?= testdata/collector/default.yaml

VERSITYGW_VERSION := v1.8.0
VERSITYGW        := $(OCB_BIN_DIR)/versitygw

.PHONY: collector run mdatagen ocb versitygw

# ocb at the pinned version; (re)installed when missing or another version.
ocb:
	@if ! [ -x "$(OCB)" ] || ! "$(OCB)" version 2>&1 | grep -q "$(OCB_VERSION:v%=%)"; then \
	  echo "installing ocb $(OCB_VERSION)"; \
	  GOFLAGS=-mod=mod $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION); \
	fi

# ocb resolves the manifest's path and output_path against the current
# directory, so it runs from the repository root.
collector: ocb
	mkdir -p $(COLLECTOR_DIR)
	cd $(TLSTAP_ROOT) && GOFLAGS=-mod=mod "$(OCB)" --config builder-config.yaml
	@gofmt -w $(COLLECTOR_DIR)/*.go  # ocb's generated sources are not gofmt-clean
	@echo "built $(COLLECTOR_BIN)"

run: collector
	cd $(TLSTAP_ROOT) && "$(COLLECTOR_BIN)" --config $(COLLECTOR_CONFIG)

# mdatagen runs from the small tools module internal/tools (its own go.mod,
# so the generator's dependencies stay out of the main module).
# mdatagen v0.158.0 omits the import of go.opentelemetry.io/collector/filter
# from generated_config.go when a component declares events and resource
# attributes but no metrics; goimports (same tools module) adds it.
mdatagen:
	cd $(TLSTAP_ROOT)/receiver/tlstapreceiver && \
	  GOFLAGS=-mod=mod $(GO) tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml && \
	  GOFLAGS=-mod=mod $(GO) tool -modfile=../../internal/tools/go.mod goimports -w internal/metadata

# versitygw (Apache-2.0): an S3-compatible server over a directory, for the
# S3 pipeline test. (Re)installed when missing or built from another version;
# the last line of output is the binary's path.
versitygw:
	@if ! [ -x "$(VERSITYGW)" ] || ! $(GO) version -m "$(VERSITYGW)" 2>/dev/null | \
	    grep -Eq "mod[[:space:]]+github.com/versity/versitygw[[:space:]]+$(VERSITYGW_VERSION)([[:space:]]|$$)"; then \
	  echo "installing versitygw $(VERSITYGW_VERSION)"; \
	  GOFLAGS=-mod=mod $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi
	@echo "$(VERSITYGW)"
