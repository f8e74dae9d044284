# Go TLS analysis (internal/goinfo). Included by the main Makefile
# (-include mk/*.mk).
#
#   make go-offsets   rebuild internal/goinfo/offsets_table.go: builds a probe
#                     program with every Go toolchain listed in
#                     internal/goinfo/gen (fetched through the module proxy)
#                     and reads the struct offsets from its DWARF

GOINFO_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
GO          ?= go

.PHONY: go-offsets

go-offsets:
	cd $(GOINFO_ROOT) && GOFLAGS=-mod=mod $(GO) run ./internal/goinfo/gen -o internal/goinfo/offsets_table.go
