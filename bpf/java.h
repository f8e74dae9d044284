/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Java (JSSE). JSSE is Java code: nothing to put a uprobe on. tlstap attaches
 * an agent to the JVM (HotSpot dynamic attach) whose hooks, called from the
 * instrumented SSLSocket streams and SSLEngine wrap/unwrap, write each piece
 * of plaintext as one framed record with one write(2) to /dev/null, on an fd
 * the agent opened. User space registers that (tgid, fd) pair in java_fds;
 * the write syscall tracepoint turns a record written there into a data
 * event with source SRC_JAVA. The tgid is the kernel's: no other process,
 * and no other user, can feed a JVM's stream, and a write to /dev/null costs
 * the JVM no copy to anywhere.
 *
 * Included by tlstap.bpf.c after the OpenSSL section (it reuses ssl_conns
 * for per-connection positions and classification).
 */
#ifndef TLSTAP_JAVA_H
#define TLSTAP_JAVA_H

#define JAVA_MAGIC 0x4a534c54 /* "TLSJ", little endian */
#define JAVA_VERSION 1
#define JAVA_KIND_DATA 1
#define JAVA_KIND_CLOSE 2
/* Keys of Java connections in ssl_conns: the JVM's own connection number
 * with the top bit set, which no user-space SSL* pointer has. */
#define JAVA_KEY_BIT (1ULL << 63)

/* The record header the hook writes (java/hook/.../Hook.java). */
struct java_rec {
	__u32 magic;
	__u8 version;
	__u8 kind;
	__u8 dir;
	__u8 family; /* 0: the hook knows no address (SSLEngine with a host name) */
	__u64 conn;
	__u16 lport;
	__u16 rport;
	__u32 len; /* payload bytes after the header */
	__u8 laddr[16];
	__u8 raddr[16];
	__u64 _reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct conn_key); /* the JVM's tgid and its record fd */
	__type(value, __u8);
} java_fds SEC(".maps");


/*
 * Addresses of SSLEngine connections. An SSLEngine knows its peer only as
 * the host and port it was created with; the socket is the application's.
 * At a connection's first record, on the JVM's own thread, the fd table is
 * searched for the one stream socket whose remote port (and address, when
 * the hook knew it) match: while a JVM holds the connection its socket is
 * there, however late user space reads the record. Zero or several
 * matches leave the addresses unknown (family 0) for user space to try.
 */
#define JAVA_SCAN_FDS 4096 /* fds searched: JSSE servers with more sockets fall back to user space */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct ssl_key);
	__type(value, struct conn_addr);
} java_addrs SEC(".maps");

struct java_scan {
	__u16 rport;
	__u8 family; /* of the peer address the hook knew, 0 if none */
	__u8 matches;
	__u8 raddr[16];
	struct conn_addr found;
};

/* bpf_loop callback: its own stack frame holds cur. */
static long java_scan_fd(__u32 i, struct java_scan *s)
{
	struct conn_addr cur = {};
	if (!sock_addr(i, &cur) || cur.family == AF_UNIX || cur.rport != s->rport)
		return 0;
	if (s->family == AF_INET && (cur.family != AF_INET || __builtin_memcmp(cur.raddr, s->raddr, 4)))
		return 0;
	s->found = cur;
	if (++s->matches > 1)
		return 1; /* ambiguous: stop */
	return 0;
}

static __always_inline void java_find_addr(struct ssl_key *sk, struct java_rec *h)
{
	/* The loop's context must live on the stack (the verifier wants fp). */
	struct java_scan s = {};
	s.rport = h->rport;
	s.family = h->family;
	__builtin_memcpy(s.raddr, h->raddr, 16);
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (max > JAVA_SCAN_FDS)
		max = JAVA_SCAN_FDS;
	bpf_loop(max, java_scan_fd, &s, 0);
	if (s.matches == 1)
		bpf_map_update_elem(&java_addrs, sk, &s.found, BPF_ANY);
}

/* A write(2) of buf on fd by a non-socket fd: a record if (tgid, fd) is registered. */
static __always_inline int java_write(__u64 pid_tgid, __s32 fd, __u64 buf)
{
	struct conn_key key = { .tgid = pid_tgid >> 32, .fd = fd };
	if (!bpf_map_lookup_elem(&java_fds, &key))
		return 0;
	struct java_rec h;
	if (bpf_probe_read_user(&h, sizeof(h), (void *)buf))
		return 0;
	if (h.magic != JAVA_MAGIC || h.version != JAVA_VERSION)
		return 0;
	struct ssl_key sk = { .tgid = key.tgid, .ssl = h.conn | JAVA_KEY_BIT };
	struct ssl_conn *sc = bpf_map_lookup_elem(&ssl_conns, &sk);
	if (h.kind == JAVA_KIND_CLOSE) {
		if (sc) {
			emit_ctl(EV_CLOSE, SRC_JAVA, pid_tgid, -1, sc->id);
			bpf_map_delete_elem(&ssl_conns, &sk);
		}
		bpf_map_delete_elem(&java_addrs, &sk);
		return 0;
	}
	if (h.kind != JAVA_KIND_DATA || h.len == 0 || h.len > 0x7fffffff)
		return 0;
	if (!sc) {
		struct ssl_conn nsc = { .id = next_id(), .fd = -1, .tries = TRIES_LENIENT };
		bpf_map_update_elem(&ssl_conns, &sk, &nsc, BPF_NOEXIST);
		sc = bpf_map_lookup_elem(&ssl_conns, &sk);
		if (!sc)
			return 0;
		if (h.lport == 0 && h.rport != 0)
			java_find_addr(&sk, &h);
	}
	__u8 dir = h.dir & 1;
	__u64 payload = buf + sizeof(h);
	__u64 pos = __sync_fetch_and_add(&sc->pos[dir], h.len);
	if (!should_stream(&sc->kind, &sc->tries, payload, h.len))
		return 0;
	struct emit_ctx ec = {};
	ec.hdr.type = EV_DATA;
	ec.hdr.source = SRC_JAVA;
	ec.hdr.dir = dir;
	ec.hdr.tgid = key.tgid;
	ec.hdr.tid = (__u32)pid_tgid;
	ec.hdr.fd = -1;
	ec.hdr.ts = bpf_ktime_get_ns();
	ec.hdr.conn_id = sc->id;
	ec.hdr.pos = pos;
	ec.hdr.ssl = h.conn;
	struct conn_addr *found = h.lport == 0 ? bpf_map_lookup_elem(&java_addrs, &sk) : NULL;
	if (found) {
		ec.hdr.addr = *found;
	} else {
		ec.hdr.addr.family = h.family;
		ec.hdr.addr.lport = h.lport;
		ec.hdr.addr.rport = h.rport;
		__builtin_memcpy(ec.hdr.addr.laddr, h.laddr, 16);
		__builtin_memcpy(ec.hdr.addr.raddr, h.raddr, 16);
	}
	ec.hdr.lost[0] = sc->lost[0];
	ec.hdr.lost[1] = sc->lost[1];
	emit_data(&ec, payload, 0, 0, h.len);
	if (ec.lost_end > sc->lost[dir])
		sc->lost[dir] = ec.lost_end;
	return 1;
}

#endif
