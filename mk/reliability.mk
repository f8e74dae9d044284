# Reliability runs (issue 8, RELIABILITY.md). Included by the main Makefile
# (-include mk/*.mk). All need root and real eBPF.
#
#   make reliability        the reliability tests CI runs (inside make test), alone, verbose
#   make churn              10-minute churn: bursts of 500 short-lived curl HTTPS
#                           clients, RSS and heap must stay flat
#                           (CHURN_MINUTES=10; built without -race, like production)
#   make startstop          Start/Shutdown 50 times in a row: nothing left in the
#                           kernel, goroutines/heap/RSS flat, Shutdown times
#   make reliability-long   every reliability test in its long form (TLSTAP_LONG=1),
#                           then every fuzz target for FUZZ_LONG (default 5m)

REL_ROOT      := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
GO            ?= go
CHURN_MINUTES ?= 10
FUZZ_LONG     ?= 5m
REL_TESTS     := Reliab|Hostile|Churn|Fault|StartStop|Unharmed|Security

.PHONY: reliability churn startstop reliability-long

reliability:
	cd $(REL_ROOT) && GOFLAGS=-mod=mod $(GO) test -race -count=1 -timeout 20m -v -run '$(REL_TESTS)' ./internal/engine/ 2>&1 | grep -v 'logger.go'; exit $${PIPESTATUS[0]}

churn:
	cd $(REL_ROOT) && TLSTAP_LONG=1 TLSTAP_CHURN_MINUTES=$(CHURN_MINUTES) GOFLAGS=-mod=mod \
	  $(GO) test -count=1 -timeout $$(( $(CHURN_MINUTES) + 10 ))m -v -run '^TestChurnLong$$' ./internal/engine/ 2>&1 | grep -v 'logger.go'; exit $${PIPESTATUS[0]}

startstop:
	cd $(REL_ROOT) && TLSTAP_LONG=1 GOFLAGS=-mod=mod \
	  $(GO) test -race -count=1 -timeout 30m -v -run '^TestStartStopRepeated$$' ./internal/engine/ 2>&1 | grep -v 'logger.go'; exit $${PIPESTATUS[0]}

reliability-long:
	cd $(REL_ROOT) && TLSTAP_LONG=1 GOFLAGS=-mod=mod \
	  $(GO) test -race -count=1 -timeout 60m -v -run '$(REL_TESTS)' ./internal/engine/ 2>&1 | grep -v 'logger.go'; exit $${PIPESTATUS[0]}
	$(MAKE) -C $(REL_ROOT) fuzz-smoke FUZZTIME=$(FUZZ_LONG)
