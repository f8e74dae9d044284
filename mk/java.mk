# The in-JVM part of Java (JSSE) capture, built from java/ with the JDK from
# Debian. Included by the main Makefile (-include mk/*.mk).
#
#   make java-agent   build/java/tlstap-agent.jar (agent + ASM from Debian's
#                     libasm-java) and build/java/tlstap-hook.jar (the class
#                     JSSE calls, put on the JVM's bootstrap class path)

JAVA_ROOT  := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
JAVA_OUT   := $(JAVA_ROOT)/build/java
JAVAC      ?= javac
JAR        ?= jar
ASM_JARS   := /usr/share/java/asm.jar /usr/share/java/asm-commons.jar /usr/share/java/asm-tree.jar
HOOK_SRC   := $(shell find $(JAVA_ROOT)/java/hook -name '*.java' 2>/dev/null)
AGENT_SRC  := $(shell find $(JAVA_ROOT)/java/agent -name '*.java' 2>/dev/null)

.PHONY: java-agent
java-agent: deps $(JAVA_OUT)/tlstap-agent.jar $(JAVA_OUT)/tlstap-hook.jar

# --release 17: the classes load in any JVM from 17 on.
$(JAVA_OUT)/tlstap-hook.jar: $(HOOK_SRC)
	rm -rf $(JAVA_OUT)/hook && mkdir -p $(JAVA_OUT)/hook
	$(JAVAC) --release 17 -nowarn -d $(JAVA_OUT)/hook $(HOOK_SRC)
	$(JAR) --create --file $@.tmp -C $(JAVA_OUT)/hook . && mv $@.tmp $@

$(JAVA_OUT)/tlstap-agent.jar: $(AGENT_SRC) $(JAVA_ROOT)/java/agent/MANIFEST.MF
	rm -rf $(JAVA_OUT)/agent && mkdir -p $(JAVA_OUT)/agent
	$(JAVAC) --release 17 -nowarn -cp $(subst $(eval) ,:,$(ASM_JARS)) -d $(JAVA_OUT)/agent $(AGENT_SRC)
	cd $(JAVA_OUT)/agent && for j in $(ASM_JARS); do $(JAR) --extract --file $$j; done && rm -rf META-INF module-info.class
	$(JAR) --create --file $@.tmp --manifest $(JAVA_ROOT)/java/agent/MANIFEST.MF -C $(JAVA_OUT)/agent . && mv $@.tmp $@

test: java-agent
