# Container image and Linux package of the collector distribution.
# Included by the main Makefile (-include mk/*.mk).
#
#   make image         build the collector, then the image $(IMAGE) (FROM
#                      scratch: the static binary and deploy/config.yaml)
#   make package       build the collector, then build/tlstap-collector_<v>_<arch>.deb
#   make deploy-check  render the Helm chart and decode every object
#                      strictly into the Kubernetes API types (own module:
#                      deploy/chartcheck, Helm stays out of the product)
#
# image-only / package-only skip the collector build (the e2e tests build
# it once for all of them).

DEPLOY_ROOT    := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
GO             ?= go
IMAGE          ?= tlstap/tlstap-collector:0.1.0-dev
PKG_VERSION    ?= 0.1.0~dev
PKG_ARCH       ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB            := $(DEPLOY_ROOT)/build/tlstap-collector_$(PKG_VERSION)_$(PKG_ARCH).deb
DEPLOY_BIN     ?= $(DEPLOY_ROOT)/build/tlstap-collector/tlstap-collector

.PHONY: image image-only package package-only deploy-check

image: collector image-only
package: collector package-only

# The build context holds only what the image contains. Needs a running
# Docker daemon (the e2e test starts one when none answers).
image-only:
	rm -rf $(DEPLOY_ROOT)/build/image && mkdir -p $(DEPLOY_ROOT)/build/image
	cp $(DEPLOY_BIN) $(DEPLOY_ROOT)/build/image/tlstap-collector
	cp $(DEPLOY_ROOT)/deploy/config.yaml $(DEPLOY_ROOT)/build/image/config.yaml
	docker build -q -t $(IMAGE) -f $(DEPLOY_ROOT)/deploy/image/Dockerfile $(DEPLOY_ROOT)/build/image

# dpkg-deb from a staged tree: binary, conffile, unit, no maintainer
# scripts (the unit is not enabled at install).
package-only:
	rm -rf $(DEPLOY_ROOT)/build/deb && mkdir -p $(DEPLOY_ROOT)/build/deb/DEBIAN
	install -D -m 0755 $(DEPLOY_BIN) $(DEPLOY_ROOT)/build/deb/usr/bin/tlstap-collector
	install -D -m 0644 $(DEPLOY_ROOT)/deploy/config.yaml $(DEPLOY_ROOT)/build/deb/etc/tlstap/config.yaml
	install -D -m 0644 $(DEPLOY_ROOT)/deploy/package/tlstap-collector.service \
	  $(DEPLOY_ROOT)/build/deb/lib/systemd/system/tlstap-collector.service
	install -m 0644 $(DEPLOY_ROOT)/deploy/package/conffiles $(DEPLOY_ROOT)/build/deb/DEBIAN/conffiles
	sed -e 's/@VERSION@/$(PKG_VERSION)/' -e 's/@ARCH@/$(PKG_ARCH)/' \
	  $(DEPLOY_ROOT)/deploy/package/control > $(DEPLOY_ROOT)/build/deb/DEBIAN/control
	dpkg-deb --root-owner-group -Zgzip --build $(DEPLOY_ROOT)/build/deb $(DEB)
	@echo "built $(DEB)"

deploy-check:
	cd $(DEPLOY_ROOT)/deploy/chartcheck && GOFLAGS=-mod=mod $(GO) test -count=1 ./...
