package tlstap.jsse;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.invoke.MethodHandles;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.security.ProtectionDomain;
import java.util.Map;
import java.util.Set;
import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;
import org.objectweb.asm.Type;
import org.objectweb.asm.commons.AdviceAdapter;

/**
 * Loaded by tlstap through HotSpot's dynamic attach ("load instrument").
 * Arguments: "start|stop,<status file>,<lease file>" or "status,<status file>".
 *
 * start: defines the hook classes (carried as resources TlstapHook*.bin) in
 * java.base, instruments JSSE once per JVM (retransformation), opens
 * /dev/null once per JVM and writes
 * the status file (fd number and counters) that tlstap reads to register the
 * fd with its eBPF program; the hook stays on while tlstap holds the lease
 * file locked (see TlstapHook). stop: turns the hook inert. No thread is
 * started.
 */
public final class Agent {
    static final String HOOK = "sun/security/ssl/TlstapHook";
    static final String ENGINE = "sun/security/ssl/SSLEngineImpl";
    static final String APP_IN = "sun/security/ssl/SSLSocketImpl$AppInputStream";
    static final String APP_OUT = "sun/security/ssl/SSLSocketImpl$AppOutputStream";
    static final String ENGINE_IO = "([Ljava/nio/ByteBuffer;II[Ljava/nio/ByteBuffer;II)Ljavax/net/ssl/SSLEngineResult;";

    private static volatile boolean instrumented;

    private Agent() {}

    public static void agentmain(String args, Instrumentation inst) throws Exception {
        String[] a = args == null ? new String[0] : args.split(",", 3);
        if (a.length < 2 || a[0].equals("status") == (a.length == 3)) {
            throw new IllegalArgumentException("tlstap agent: want start|stop,<status file>,<lease file> or status,<status file>");
        }
        Path status = Paths.get(a[1]);
        synchronized (Agent.class) {
            Class<?> hook = hookClass();
            if (a[0].equals("stop") || a[0].equals("status")) {
                if (hook != null) {
                    if (a[0].equals("stop")) hook.getMethod("stop", String.class).invoke(null, a[2]);
                    writeStatus(status, (String) hook.getMethod("status").invoke(null));
                }
                return;
            }
            if (!a[0].equals("start")) throw new IllegalArgumentException("tlstap agent: unknown command " + a[0]);
            // Open sun.security.ssl (to define the hook there) and java.io
            // (to read our stream's fd number) to this agent.
            Module self = Agent.class.getModule();
            inst.redefineModule(Object.class.getModule(), Set.of(), Map.of(),
                    Map.of("sun.security.ssl", Set.of(self), "java.io", Set.of(self)), Set.of(), Map.of());
            if (hook == null) {
                MethodHandles.Lookup l = MethodHandles.privateLookupIn(
                        Class.forName("sun.security.ssl.SSLEngineImpl", false, null), MethodHandles.lookup());
                hook = l.defineClass(resource("TlstapHook.bin"));
                l.defineClass(resource("TlstapHook$Conn.bin"));
            }
            FileOutputStream out = (FileOutputStream) hook.getMethod("stream").invoke(null);
            if (out == null) out = new FileOutputStream("/dev/null");
            hook.getMethod("start", FileOutputStream.class, int.class, String.class).invoke(null, out, fdOf(out.getFD()), a[2]);
            if (!instrumented) {
                instrument(inst);
                instrumented = true;
            }
            writeStatus(status, (String) hook.getMethod("status").invoke(null));
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = Agent.class.getResourceAsStream(name)) {
            if (in == null) throw new IOException("tlstap agent: missing resource " + name);
            return in.readAllBytes();
        }
    }

    private static Class<?> hookClass() {
        try {
            return Class.forName(HOOK.replace('/', '.'), false, null);
        } catch (ClassNotFoundException e) {
            return null;
        }
    }

    private static int fdOf(FileDescriptor d) throws ReflectiveOperationException {
        Field f = FileDescriptor.class.getDeclaredField("fd");
        f.setAccessible(true);
        return f.getInt(d);
    }

    /** Written to a temporary file and renamed: tlstap never reads half a status. */
    private static void writeStatus(Path status, String text) throws IOException {
        Path dir = status.getParent();
        Path tmp = Files.createTempFile(dir, ".tlstap-java", ".tmp");
        try {
            Files.write(tmp, text.getBytes(StandardCharsets.UTF_8));
            Files.move(tmp, status, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void instrument(Instrumentation inst) throws Exception {
        ClassFileTransformer t = new ClassFileTransformer() {
            @Override
            public byte[] transform(Module module, ClassLoader loader, String name, Class<?> cls,
                    ProtectionDomain pd, byte[] bytes) {
                if (loader != null || name == null) return null;
                try {
                    switch (name) {
                        case ENGINE:
                        case APP_IN:
                        case APP_OUT:
                            return rewrite(name, bytes);
                        default:
                            return null;
                    }
                } catch (Throwable e) {
                    return null; // the class stays as it was
                }
            }
        };
        inst.addTransformer(t, true);
        Class<?>[] targets = {
            Class.forName("sun.security.ssl.SSLEngineImpl", false, null),
            Class.forName("sun.security.ssl.SSLSocketImpl$AppInputStream", false, null),
            Class.forName("sun.security.ssl.SSLSocketImpl$AppOutputStream", false, null),
        };
        inst.retransformClasses(targets);
    }

    public static byte[] rewrite(String owner, byte[] bytes) {
        ClassReader r = new ClassReader(bytes);
        ClassWriter w = new ClassWriter(r, ClassWriter.COMPUTE_MAXS);
        r.accept(new ClassVisitor(Opcodes.ASM9, w) {
            @Override
            public MethodVisitor visitMethod(int access, String name, String desc, String sig, String[] ex) {
                MethodVisitor mv = super.visitMethod(access, name, desc, sig, ex);
                if (owner.equals(ENGINE) && desc.equals(ENGINE_IO) && name.equals("wrap")) {
                    return new EngineAdvice(mv, access, name, desc, 1, Hook_OUT);
                }
                if (owner.equals(ENGINE) && desc.equals(ENGINE_IO) && name.equals("unwrap")) {
                    return new EngineAdvice(mv, access, name, desc, 4, Hook_IN);
                }
                if (owner.equals(APP_OUT) && name.equals("write") && desc.equals("([BII)V")) {
                    return new AdviceAdapter(Opcodes.ASM9, mv, access, name, desc) {
                        @Override
                        protected void onMethodEnter() {
                            loadThis();
                            getField(Type.getObjectType(APP_OUT), "this$0", Type.getObjectType("sun/security/ssl/SSLSocketImpl"));
                            loadArg(0);
                            loadArg(1);
                            loadArg(2);
                            visitMethodInsn(INVOKESTATIC, HOOK, "socketOut", "(Ljava/lang/Object;[BII)V", false);
                        }
                    };
                }
                if (owner.equals(APP_IN) && name.equals("read") && desc.equals("([BII)I")) {
                    return new AdviceAdapter(Opcodes.ASM9, mv, access, name, desc) {
                        @Override
                        protected void onMethodExit(int opcode) {
                            if (opcode != IRETURN) return;
                            dup();
                            loadThis();
                            getField(Type.getObjectType(APP_IN), "this$0", Type.getObjectType("sun/security/ssl/SSLSocketImpl"));
                            loadArg(0);
                            loadArg(1);
                            visitMethodInsn(INVOKESTATIC, HOOK, "socketIn", "(ILjava/lang/Object;[BI)V", false);
                        }
                    };
                }
                return mv;
            }
        }, ClassReader.EXPAND_FRAMES);
        return w.toByteArray();
    }

    static final int Hook_OUT = 0, Hook_IN = 1;

    /** wrap: the sources (args 1-3) are marked; unwrap: the destinations (args 4-6). */
    static final class EngineAdvice extends AdviceAdapter {
        private final int first, dir;
        private int marks;

        EngineAdvice(MethodVisitor mv, int access, String name, String desc, int firstArg, int dir) {
            super(Opcodes.ASM9, mv, access, name, desc);
            this.first = firstArg - 1;
            this.dir = dir;
        }

        @Override
        protected void onMethodEnter() {
            marks = newLocal(Type.getType("[I"));
            loadArg(first);
            loadArg(first + 1);
            loadArg(first + 2);
            visitMethodInsn(INVOKESTATIC, HOOK, "mark", "([Ljava/nio/ByteBuffer;II)[I", false);
            storeLocal(marks);
        }

        @Override
        protected void onMethodExit(int opcode) {
            if (opcode != ARETURN) return;
            dup();
            loadThis();
            loadArg(first);
            loadArg(first + 1);
            loadArg(first + 2);
            loadLocal(marks);
            push(dir);
            visitMethodInsn(INVOKESTATIC, HOOK, "engine",
                    "(Ljavax/net/ssl/SSLEngineResult;Ljavax/net/ssl/SSLEngine;[Ljava/nio/ByteBuffer;II[II)V", false);
        }
    }
}
