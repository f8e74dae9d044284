package sun.security.ssl;

import java.io.FileOutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;

/**
 * Called from the instrumented JSSE methods. The agent defines this class in
 * java.base's package sun.security.ssl (a private lookup), so the JSSE code
 * calls it like its own: no bootstrap class path append (which would turn
 * class data sharing off for the application's classes, with a warning on
 * its stderr) and no module edge.
 *
 * Rules: nothing here may throw into the application (every entry point
 * catches Throwable), block it (records are written synchronously with one
 * write(2) to /dev/null, which never blocks), or hold unbounded memory (the
 * connection table is weak and capped). When tlstap detaches, {@link #active}
 * turns false and every entry point returns at its first test; no thread of
 * ours exists at any time.
 *
 * Lease: tlstap may die without telling (SIGKILL, OOM kill). It holds a write
 * lock on a lease file for as long as it lives; the kernel drops the lock
 * with the process. At most once per second, on the thread of whichever
 * application call comes by (no timer, no thread), the hook asks for a
 * shared lock on that file without waiting: granted means tlstap is gone,
 * and the hook turns inert and removes the file. A failed check (anything
 * but "granted" or "file gone") changes nothing and is counted.
 *
 * Record layout (little endian, 64-byte header + payload), read by the eBPF
 * program at the write(2) of a registered fd (bpf/java.h):
 *   0 u32 magic 'TLSJ'   4 u8 version  5 u8 kind (1 data, 2 close)
 *   6 u8 direction (0 written by the app, 1 read)  7 u8 address family
 *   8 u64 connection id  16 u16 local port  18 u16 remote port
 *  20 u32 payload length 24 [16] local address  40 [16] remote address
 *  56 u64 reserved
 */
public final class TlstapHook {
    public static final int MAGIC = 0x4a534c54; // "TLSJ" little endian
    static final int VERSION = 1;
    static final int HEADER = 64;
    static final int MAX_PAYLOAD = 64 * 1024;
    static final int MAX_CONNS = 65536;
    static final byte KIND_DATA = 1, KIND_CLOSE = 2;
    public static final int OUT = 0, IN = 1;

    /** How often the lease is checked, at most. */
    static final long LEASE_CHECK_NS = 1_000_000_000L;

    /** True while tlstap is attached. */
    static volatile boolean active;
    /**
     * The lease files of the tlstaps attached (each holds its own locked
     * while it lives; several agents on one host, e.g. a collector and a
     * Fluent Bit, each attach). Copy on write, under the class lock.
     */
    static volatile String[] leases = new String[0];
    /** System.nanoTime() at which the lease is due for its next check. */
    static final AtomicLong nextCheck = new AtomicLong();
    static final AtomicLong leaseChecks = new AtomicLong();
    static final AtomicLong leaseExpired = new AtomicLong();
    /** Opened once per JVM and never closed: a write racing a close must
     *  never land on a reused fd number. */
    static FileOutputStream out;
    static int fd = -1;

    static final AtomicLong records = new AtomicLong();
    static final AtomicLong errors = new AtomicLong();
    static final AtomicLong untracked = new AtomicLong();
    static final AtomicLong nextId = new AtomicLong();

    private static final Map<Object, Conn> conns = new WeakHashMap<>();

    static final class Conn {
        final long id;
        byte family;
        int lport, rport;
        final byte[] laddr = new byte[16], raddr = new byte[16];

        Conn(long id) { this.id = id; }
    }

    /** The latest failure, for the status: counted, never thrown. */
    static volatile String lastError = "";

    private TlstapHook() {}

    private static void error(Throwable t) {
        errors.incrementAndGet();
        lastError = String.valueOf(t).replace('\n', ' ');
    }

    // ---------------------------------------------------------------- control (called by the agent)

    public static synchronized void start(FileOutputStream stream, int streamFd, String leasePath) {
        if (out == null) {
            out = stream;
            fd = streamFd;
        }
        String[] l = leases;
        if (!java.util.Arrays.asList(l).contains(leasePath)) {
            l = java.util.Arrays.copyOf(l, l.length + 1);
            l[l.length - 1] = leasePath;
            leases = l;
        }
        nextCheck.set(System.nanoTime() + LEASE_CHECK_NS);
        active = true;
    }

    /**
     * The tlstap holding leasePath detaches (null: all of them). The hook
     * stays on while another one is attached.
     */
    public static synchronized void stop(String leasePath) {
        String[] l = new String[0];
        if (leasePath != null) {
            for (String x : leases) {
                if (x.equals(leasePath)) continue;
                l = java.util.Arrays.copyOf(l, l.length + 1);
                l[l.length - 1] = x;
            }
        }
        leases = l;
        if (l.length > 0) return;
        active = false;
        synchronized (conns) {
            conns.clear();
        }
    }

    /**
     * The first test of every entry point: true while tlstap is attached and
     * alive. Costs a volatile read and System.nanoTime() except once a
     * second, when one caller (the winner of a compare-and-set) checks the
     * lease.
     */
    static boolean live() {
        if (!active) return false;
        long now = System.nanoTime(), due = nextCheck.get();
        if (now - due < 0 || !nextCheck.compareAndSet(due, now + LEASE_CHECK_NS)) return true;
        // An interrupted thread would close the channel under us (and keep
        // its interrupt): leave the check to the next caller.
        if (Thread.currentThread().isInterrupted()) {
            nextCheck.set(now);
            return true;
        }
        checkLease();
        return active;
    }

    private static void checkLease() {
        for (String path : leases) {
            checkLease(path);
        }
    }

    private static void checkLease(String path) {
        leaseChecks.incrementAndGet();
        boolean gone;
        try (FileChannel ch = FileChannel.open(Paths.get(path), StandardOpenOption.READ)) {
            // Shared and non-blocking: never waits, and never keeps tlstap
            // (which asks for an exclusive lock only once, at attach) out.
            FileLock l = ch.tryLock(0, Long.MAX_VALUE, true);
            gone = l != null;
            if (l != null) l.release();
        } catch (NoSuchFileException e) {
            gone = true; // tlstap removes the file when it stops
        } catch (Throwable t) {
            error(t);
            return;
        }
        if (gone) expire(path);
    }

    private static synchronized void expire(String path) {
        if (!java.util.Arrays.asList(leases).contains(path)) return; // stopped meanwhile
        stop(path);
        leaseExpired.incrementAndGet();
        try {
            Files.deleteIfExists(Paths.get(path));
        } catch (Throwable t) {
            // Left in /tmp (it is empty); not worth an error.
        }
    }

    public static boolean isActive() { return active; }

    public static int fd() { return fd; }

    public static FileOutputStream stream() { return out; }

    public static String status() {
        int n;
        synchronized (conns) {
            n = conns.size();
        }
        return "active=" + (active ? 1 : 0) + "\nlease=" + String.join(" ", leases) + "\nlease_checks=" + leaseChecks.get()
                + "\nlease_expired=" + leaseExpired.get() + "\nfd=" + fd + "\nrecords=" + records.get() + "\nerrors="
                + errors.get() + "\nuntracked=" + untracked.get() + "\nconnections=" + n + "\nlast_error=" + lastError + "\n";
    }

    // ---------------------------------------------------------------- SSLSocket

    /** SSLSocketImpl$AppOutputStream.write(byte[], int, int), at entry. */
    public static void socketOut(Object socket, byte[] b, int off, int len) {
        if (!live()) return;
        try {
            if (b == null || len <= 0 || off < 0 || off + len > b.length) return;
            Conn c = socketConn(socket);
            if (c != null) emit(c, OUT, b, off, len);
        } catch (Throwable t) {
            error(t);
        }
    }

    /** SSLSocketImpl$AppInputStream.read(byte[], int, int), at return with n. */
    public static void socketIn(int n, Object socket, byte[] b, int off) {
        if (n <= 0 || !live()) return;
        try {
            if (b == null || off < 0 || off + n > b.length) return;
            Conn c = socketConn(socket);
            if (c != null) emit(c, IN, b, off, n);
        } catch (Throwable t) {
            error(t);
        }
    }

    private static Conn socketConn(Object socket) {
        Conn c = lookup(socket);
        if (c == null || c.family != 0 || !(socket instanceof Socket)) return c;
        Socket s = (Socket) socket;
        InetAddress l = s.getLocalAddress(), r = s.getInetAddress();
        if (l == null || r == null) return c;
        byte[] lb = l.getAddress(), rb = r.getAddress();
        if (lb.length != rb.length) return c; // mixed families: leave to the engine
        c.lport = s.getLocalPort();
        c.rport = s.getPort();
        System.arraycopy(lb, 0, c.laddr, 0, lb.length);
        System.arraycopy(rb, 0, c.raddr, 0, rb.length);
        c.family = (byte) (lb.length == 4 ? 2 : 10);
        return c;
    }

    // ---------------------------------------------------------------- SSLEngine

    /** At entry of SSLEngineImpl.wrap/unwrap: positions of the application buffers. */
    public static int[] mark(ByteBuffer[] bufs, int off, int len) {
        if (!live()) return null;
        try {
            if (bufs == null || off < 0 || len <= 0 || off + len > bufs.length) return null;
            int[] pos = new int[len];
            for (int i = 0; i < len; i++) {
                ByteBuffer b = bufs[off + i];
                pos[i] = b == null ? -1 : b.position();
            }
            return pos;
        } catch (Throwable t) {
            error(t);
            return null;
        }
    }

    /**
     * At return of SSLEngineImpl.wrap (dir OUT: bytesConsumed of the source
     * buffers) or unwrap (dir IN: bytesProduced into the destination buffers).
     */
    public static void engine(SSLEngineResult r, SSLEngine engine, ByteBuffer[] bufs, int off, int len, int[] pos, int dir) {
        if (pos == null || !active || r == null) return;
        try {
            int n = dir == OUT ? r.bytesConsumed() : r.bytesProduced();
            Conn c = n > 0 || r.getStatus() == SSLEngineResult.Status.CLOSED ? engineConn(engine) : null;
            if (c == null) return;
            if (n <= 0) {
                if (r.getStatus() == SSLEngineResult.Status.CLOSED) close(engine, c);
                return;
            }
            // The bytes sit in the buffers between the marked positions and
            // the current ones; read them with absolute gets (positions untouched).
            byte[] data = new byte[n];
            int got = 0;
            for (int i = 0; i < pos.length && got < n; i++) {
                ByteBuffer b = bufs[off + i];
                if (b == null || pos[i] < 0) continue;
                int k = Math.min(b.position() - pos[i], n - got);
                if (k <= 0) continue;
                b.get(pos[i], data, got, k);
                got += k;
            }
            if (got > 0) emit(c, dir, data, 0, got);
        } catch (Throwable t) {
            error(t);
        }
    }

    private static Conn engineConn(SSLEngine engine) {
        Conn c = lookup(engine);
        if (c == null || c.rport != 0) return c;
        // An engine knows its peer only as the host and port it was created
        // with; the local end is found by the engine in user space. Never
        // resolve a name here: it could block.
        c.rport = Math.max(engine.getPeerPort(), 0);
        byte[] a = literal(engine.getPeerHost());
        if (a != null) {
            System.arraycopy(a, 0, c.raddr, 0, a.length);
            c.family = (byte) (a.length == 4 ? 2 : 10);
        }
        return c;
    }

    /** Parses an IPv4 dotted quad; anything else (names, IPv6) yields null. */
    static byte[] literal(String h) {
        if (h == null || h.isEmpty() || h.length() > 15) return null;
        byte[] a = new byte[4];
        int part = 0, val = -1;
        for (int i = 0; i <= h.length(); i++) {
            char ch = i < h.length() ? h.charAt(i) : '.';
            if (ch == '.') {
                if (val < 0 || part > 3) return null;
                a[part++] = (byte) val;
                val = -1;
            } else if (ch >= '0' && ch <= '9') {
                val = (val < 0 ? 0 : val * 10) + (ch - '0');
                if (val > 255) return null;
            } else {
                return null;
            }
        }
        return part == 4 ? a : null;
    }

    private static void close(Object key, Conn c) {
        synchronized (conns) {
            conns.remove(key);
        }
        write(c, KIND_CLOSE, OUT, null, 0, 0);
    }

    // ---------------------------------------------------------------- records

    private static Conn lookup(Object key) {
        synchronized (conns) {
            Conn c = conns.get(key);
            if (c != null) return c;
            if (conns.size() >= MAX_CONNS) {
                untracked.incrementAndGet();
                return null;
            }
            c = new Conn(nextId.incrementAndGet());
            conns.put(key, c);
            return c;
        }
    }

    private static void emit(Conn c, int dir, byte[] b, int off, int len) {
        while (len > 0) {
            int n = Math.min(len, MAX_PAYLOAD);
            write(c, KIND_DATA, dir, b, off, n);
            off += n;
            len -= n;
        }
    }

    private static void write(Conn c, byte kind, int dir, byte[] b, int off, int len) {
        FileOutputStream o = out;
        if (o == null) return;
        byte[] rec = new byte[HEADER + len];
        ByteBuffer h = ByteBuffer.wrap(rec).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        h.putInt(MAGIC).put((byte) VERSION).put(kind).put((byte) dir).put(c.family);
        h.putLong(c.id).putShort((short) c.lport).putShort((short) c.rport).putInt(len);
        h.put(c.laddr).put(c.raddr).putLong(0);
        if (len > 0) System.arraycopy(b, off, rec, HEADER, len);
        try {
            o.write(rec); // one write(2): the kernel sees the whole record at once
            records.incrementAndGet();
        } catch (Throwable t) {
            error(t);
        }
    }
}
