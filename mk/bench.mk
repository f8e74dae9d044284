# Benchmarks (issue 7): agent off vs on, on this machine. Not part of `make test`.
#
#   make bench        full run (about 13 minutes): results table on stdout,
#                     build/bench/results.{md,json}, CPU profiles of the
#                     user-space pipeline benchmarks and of the collector
#                     during each saturated run in build/bench/
#   make bench-quick  short durations, a smoke run (about 2 minutes)
#
# Root needed (the agent loads eBPF programs). Installs what is missing:
# nginx-light, wrk, nghttp2-client, gcc, libssl-dev, libgnutls28-dev. BENCH_FLAGS passes
# options to the driver (go run ./internal/benchrun -h).

BENCH_DEPS_BIN := nginx:nginx-light wrk:wrk h2load:nghttp2-client gcc:gcc
BENCH_DEPS_PKG := libssl-dev libgnutls28-dev
BENCH_OUT      ?= build/bench
BENCH_FLAGS    ?=

.PHONY: bench bench-quick bench-deps bench-exec

bench-deps:
	@missing=""; \
	for pair in $(BENCH_DEPS_BIN); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || missing="$$missing $$pkg"; done; \
	for pkg in $(BENCH_DEPS_PKG); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: bench-deps collector
	cd $(TLSTAP_ROOT) && PATH="$$PATH:/usr/sbin" GOFLAGS=-mod=mod $(GO) run ./internal/benchrun \
	  -collector $(COLLECTOR_BIN) -out $(BENCH_OUT) $(BENCH_FLAGS)
	$(MAKE) bench-exec

# The exec gate's cost (BENCHMARKS.md, "Exec gate"): added exec latency for a
# known file, a new non-TLS file and a new Go file, and /bin/true throughput,
# agent off vs on in one run.
bench-exec:
	@mkdir -p $(BENCH_OUT)
	cd $(TLSTAP_ROOT) && GOFLAGS=-mod=mod $(GO) test -count=1 -run '^$$' -bench '^BenchmarkExecGate$$' \
	  -benchtime 500x ./internal/engine/ | tee $(BENCH_OUT)/execgate.txt

bench-quick: bench-deps collector
	cd $(TLSTAP_ROOT) && PATH="$$PATH:/usr/sbin" GOFLAGS=-mod=mod $(GO) run ./internal/benchrun \
	  -collector $(COLLECTOR_BIN) -out $(BENCH_OUT)-quick -quick $(BENCH_FLAGS)
