# The in-JVM part of Java (JSSE) capture, built from java/ with the JDK from
# Debian. Included by the main Makefile (-include mk/*.mk).
#
#   make java-agent   build/java/tlstap-agent.jar: the agent (java/agent),
#                     ASM from Debian's libasm-java, and the hook class
#                     (java/hook) as a resource the agent defines in java.base

JAVA_ROOT  := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
JAVA_OUT   := $(JAVA_ROOT)/build/java
JAVAC      ?= javac
JAR        ?= jar
ASM_JARS   := /usr/share/java/asm.jar /usr/share/java/asm-commons.jar /usr/share/java/asm-tree.jar
HOOK_SRC   := $(shell find $(JAVA_ROOT)/java/hook -name '*.java' 2>/dev/null)
AGENT_SRC  := $(shell find $(JAVA_ROOT)/java/agent -name '*.java' 2>/dev/null)

.PHONY: java-agent
java-agent: deps $(JAVA_OUT)/tlstap-agent.jar

# Class files for Java 17, loadable by any JVM from 17 on. The hook lives in
# java.base's sun.security.ssl, hence --patch-module (which --release forbids).
$(JAVA_OUT)/tlstap-agent.jar: $(AGENT_SRC) $(HOOK_SRC) $(JAVA_ROOT)/java/agent/MANIFEST.MF
	rm -rf $(JAVA_OUT)/agent $(JAVA_OUT)/hook && mkdir -p $(JAVA_OUT)/agent/tlstap/jsse $(JAVA_OUT)/hook
	$(JAVAC) -source 17 -target 17 -nowarn --patch-module java.base=$(JAVA_ROOT)/java/hook -d $(JAVA_OUT)/hook $(HOOK_SRC)
	for c in TlstapHook TlstapHook\$$Conn; do cp "$(JAVA_OUT)/hook/sun/security/ssl/$$c.class" "$(JAVA_OUT)/agent/tlstap/jsse/$$c.bin"; done
	$(JAVAC) --release 17 -nowarn -cp $(subst $(eval) ,:,$(ASM_JARS)) -d $(JAVA_OUT)/agent $(AGENT_SRC)
	cd $(JAVA_OUT)/agent && for j in $(ASM_JARS); do $(JAR) --extract --file $$j; done && rm -rf META-INF module-info.class
	$(JAR) --create --file $@.tmp --manifest $(JAVA_ROOT)/java/agent/MANIFEST.MF -C $(JAVA_OUT)/agent . && mv $@.tmp $@

test: java-agent

# Added cost per request of Java capture for a JDK HttpsServer under load,
# as a ratio to the same JVM without tlstap (BENCHMARKS.md). Root needed.
.PHONY: bench-java
bench-java: java-agent
	cd $(JAVA_ROOT) && GOFLAGS=-mod=mod $(GO) test -run '^$$' -bench BenchmarkJavaServer -benchtime 9x -count 1 -timeout 30m ./internal/engine
