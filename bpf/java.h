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
	ec.hdr.addr.family = h.family;
	ec.hdr.addr.lport = h.lport;
	ec.hdr.addr.rport = h.rport;
	__builtin_memcpy(ec.hdr.addr.laddr, h.laddr, 16);
	__builtin_memcpy(ec.hdr.addr.raddr, h.raddr, 16);
	ec.hdr.lost[0] = sc->lost[0];
	ec.hdr.lost[1] = sc->lost[1];
	emit_data(&ec, payload, 0, 0, h.len);
	if (ec.lost_end > sc->lost[dir])
		sc->lost[dir] = ec.lost_end;
	return 1;
}

#endif
