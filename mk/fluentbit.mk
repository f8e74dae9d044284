# Fluent Bit Go input plugin: build/tlstap.so, loaded with fluent-bit -e build/tlstap.so.
# Included by the main Makefile (-include mk/*.mk).
#
#   make fluentbit        build build/tlstap.so (go build -buildmode=c-shared; needs cgo/gcc)
#   make fluentbit-host   build build/tlstap-fluentbit-host, the C test host (needs libmsgpack-dev)
#   make fluentbit-run    run the plugin in the test host as root, one JSON line per record

FLUENTBIT_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
FLUENTBIT_SO   := $(FLUENTBIT_ROOT)/build/tlstap.so
FLUENTBIT_HOST := $(FLUENTBIT_ROOT)/build/tlstap-fluentbit-host
GO             ?= go
CC             ?= gcc

.PHONY: fluentbit fluentbit-host fluentbit-run

fluentbit:
	@mkdir -p $(dir $(FLUENTBIT_SO))
	cd $(FLUENTBIT_ROOT) && CGO_ENABLED=1 GOFLAGS=-mod=mod $(GO) build -buildmode=c-shared -o $(FLUENTBIT_SO) ./fluentbit
	@echo "built $(FLUENTBIT_SO)"

fluentbit-host:
	@mkdir -p $(dir $(FLUENTBIT_HOST))
	$(CC) -O2 -Wall -Wextra -o $(FLUENTBIT_HOST) $(FLUENTBIT_ROOT)/fluentbit/testhost/host.c -ldl -lmsgpackc

fluentbit-run: fluentbit fluentbit-host
	$(FLUENTBIT_HOST) -i 1000 $(FLUENTBIT_SO)
