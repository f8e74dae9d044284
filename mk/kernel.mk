# Kernel matrix (issue 18): the kernel-sensitive capture tests on another
# Linux kernel. Included by the main Makefile (-include mk/*.mk); run on its
# own, not by `make test` for now (soft lockups in the 6.1 guest: README,
# Kernels). Root needed (the tests load eBPF programs inside the VM).
#
#   make test-kernel               Debian 12's stock 6.1: BTF, ring buffer,
#                                  bpf_loop, no uprobe_multi (one link per probe)
#   make test-kernel KERNEL=6.12   the 6.12 line from bookworm-security
#
# tools/kernel-vm/kernel-vm.sh fetches the kernel package with apt-get
# download, extracts it (never installs it) under build/kernel/$(KERNEL)/,
# builds a small initramfs and boots it under QEMU (software emulation) over
# this machine's root, shared read-only. The test binary and the Go TLS test
# programs are built here; inside, waits stretch by TLSTAP_TEST_TIME_SCALE.
# Output: one PASS/FAIL line per test and subtest, the per-probe link
# timings, the wall time; the whole log is in build/kernel/$(KERNEL)/test.log.

KERNEL          ?= 6.1
KVM_ROOT        := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
KERNEL_DIR      := $(KVM_ROOT)/build/kernel/$(KERNEL)
KERNEL_TIMEOUT  ?= 20m
KERNEL_DEPS_BIN := qemu-system-x86_64:qemu-system-x86 cpio:cpio depmod:kmod zstd:zstd xz:xz-utils file:file python3:python3
KERNEL_DEPS_PKG := busybox-static

# What runs inside: the helpers the kernel must offer, the uprobe link mode
# it allows and the per-probe link path end to end; OpenSSL clients (curl)
# and servers (python ssl, openssl s_server), SSL_free's probe, Go
# crypto/tls client and server, plain HTTP, HTTP/2 over TLS and cleartext,
# the in-kernel process filter, probes released per file and Shutdown
# leaving nothing attached. Every other engine test runs on the host in
# `make test`; KERNEL_TESTS='^(TestX|TestY)$$' picks others.
# TestGoTLS/local-stripped is left out: on a host loaded to 20× its cores its
# Go client's exchanges were split over two connection ids, on 6.1 and 6.12
# alike (never on an idle host); that is being looked into separately.
KERNEL_TESTS ?= ^(TestKernelFeatureCheck|TestUprobeLinkMode|TestPerProbeLinks|TestCurlHTTPSClient|TestPythonClientAndServer|TestOpenSSLServerCloseDelimited|TestSSLFreeProbeFires|TestPlainHTTP|TestGoTLS|TestHTTP2CurlToGoServer|TestH2CPriorKnowledge|TestExcludedProcessSkippedInKernel|TestProbesReleasedAfterExit|TestShutdownDetachesEverything)$$/^(local)?$$

.PHONY: test-kernel kernel-deps

kernel-deps:
	@missing=""; \
	for pair in $(KERNEL_DEPS_BIN); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || [ -x /sbin/$$bin ] || missing="$$missing $$pkg"; done; \
	for pkg in $(KERNEL_DEPS_PKG); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test-kernel: kernel-deps
	@cd $(KVM_ROOT) && tools/kernel-vm/kernel-vm.sh prepare $(KERNEL) $(KERNEL_DIR)
	cd $(KVM_ROOT) && $(GO) test -c -o $(KERNEL_DIR)/engine.test ./internal/engine
	cd $(KVM_ROOT) && CGO_ENABLED=0 $(GO) build -o $(KERNEL_DIR)/gotls/gotls-local-false internal/engine/testdata/gotls/main.go
	cd $(KVM_ROOT) && CGO_ENABLED=0 $(GO) build -ldflags='-s -w' -trimpath -o $(KERNEL_DIR)/gotls/gotls-local-true internal/engine/testdata/gotls/main.go
	@cd $(KVM_ROOT)/internal/engine && start=$$(date +%s); \
	  TLSTAP_TEST_GOTLS_DIR=$(KERNEL_DIR)/gotls timeout $(KERNEL_TIMEOUT) \
	    $(KVM_ROOT)/tools/kernel-vm/kernel-vm.sh run $(KERNEL_DIR) -- \
	    bash -c 'echo "kernel: $$(uname -r), waits ×$$TLSTAP_TEST_TIME_SCALE"; exec "$$0" "$$@"' $(KERNEL_DIR)/engine.test \
	    -test.v -test.count=1 -test.timeout $(KERNEL_TIMEOUT) -test.run '$(KERNEL_TESTS)' \
	    > $(KERNEL_DIR)/test.log 2>&1; rc=$$?; \
	  echo "== make test-kernel KERNEL=$(KERNEL): $$(grep -m1 '^kernel: ' $(KERNEL_DIR)/test.log), exit $$rc, $$(( $$(date +%s) - start )) s wall (log: $(KERNEL_DIR)/test.log)"; \
	  grep -E '^ *--- (PASS|FAIL|SKIP)|linkmode_test.go|^(PASS|FAIL|ok|panic)' $(KERNEL_DIR)/test.log; \
	  if [ $$rc -ne 0 ]; then echo "== failing output:"; grep -v 'logger.go:' $(KERNEL_DIR)/test.log | tail -n 80; fi; \
	  if grep -q -- '--- SKIP' $(KERNEL_DIR)/test.log; then echo "== a test skipped in the VM"; rc=1; fi; \
	  if ! grep -q -- '--- PASS' $(KERNEL_DIR)/test.log; then echo "== no test ran in the VM (KERNEL_TESTS matched nothing?)"; rc=1; fi; \
	  exit $$rc
