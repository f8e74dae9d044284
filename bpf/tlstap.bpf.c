//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tlstap kernel side: OpenSSL uprobes and socket syscall tracepoints that
 * stream HTTP-looking plaintext to user space through one ring buffer.
 *
 * Only uprobes and tracepoints are used: kprobes and fentry are unavailable
 * on the kernels this agent targets.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tlstap.h"

/* libbpf 1.1 (Debian 12) lacks BPF_UPROBE; the kprobe macros read the same pt_regs. */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define PROT_EXEC 0x4

/* Set by the loader before the programs are loaded. */
volatile const __u32 self_tgid = 0;             /* the agent never captures itself */
volatile const __u32 max_call_bytes = 1 << 20;   /* capture cap per read/write call */
volatile const __u8 filter_tgids = 0;            /* skip_tgids holds excluded processes */
volatile const __u64 wakeup_bytes = 2 << 20;     /* pending bytes that wake the reader (ring/8) */
volatile const __u64 ring_bytes = 4 << 20;       /* size of the events ring buffer */

/* Connection classification: only HTTP-looking streams send payload. */
enum conn_kind {
	K_UNKNOWN = 0, /* not yet classified: payload is streamed while tries last */
	K_HTTP = 1,
	K_IGNORE = 2,  /* not HTTP (TLS ciphertext, databases, ...): nothing streamed */
	K_NOTSOCK = 3, /* negative cache: fd is not a stream socket */
};

/* Classification attempts: a connection seen from its start is judged on its
 * first bytes; one found mid-stream (agent started later, or an SSL object)
 * may begin inside a body, so it gets several records to show a message start. */
#define TRIES_STRICT 1
#define TRIES_LENIENT 8

struct conn_key {
	__u32 tgid;
	__s32 fd;
};

struct conn {
	__u64 id;
	__u64 pos[2];
	__u8 kind;
	__u8 tries;
	/* The TLS plaintext stream of this socket, for TLS stacks (Go) whose
	 * hooks find the fd: it lives and dies with the socket. */
	__u8 tls_kind;
	__u8 tls_tries;
	/* Set once user space has seen bytes of this socket (its own stream or a
	 * TLS stream on it): only then does it need to hear of the close. Every
	 * other socket close on the host stays in the kernel, so an idle agent
	 * is not woken by the host's unrelated connections. */
	__u8 notify;
	__u8 _pad[3];
	__u64 tls_id;
	__u64 tls_pos[2];
	struct conn_addr addr;
	/* Per direction, the end position of the latest bytes lost (see
	 * data_event.lost), for the socket stream and its TLS stream. */
	__u64 lost[2];
	__u64 tls_lost[2];
};

struct ssl_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl;
};

struct ssl_conn {
	__u64 id;
	__u64 pos[2];
	__s32 fd; /* learnt from a nested syscall; -1 for memory-BIO users such as Node.js */
	__u8 kind;
	__u8 tries;
	__u8 _pad[2];
	__u64 lost[2]; /* as conn.lost */
};

/* An SSL_read/SSL_write (or GnuTLS record send/recv) call in flight on a
 * thread. GnuTLS calls have SSL_read/SSL_write's shape (session, buffer,
 * size) -> bytes or < 0, and its default transport issues send/recv on the
 * session's fd inside them, so both stacks share this path; `src` tells
 * them apart on the records. */
struct ssl_args {
	__u64 ssl;
	__u64 buf;
	__u64 ex_out; /* size_t * of the _ex variants, 0 otherwise */
	__s32 fd;     /* fd of the nested read/write syscall, -1 until seen */
	__u8 dir;
	__u8 depth;   /* guards libraries whose SSL_x_ex wraps SSL_x */
	__u8 src;     /* SRC_OPENSSL or SRC_GNUTLS */
	__u8 _pad;
};

/* A read/write-family syscall in flight on a thread. */
struct io_args {
	__u64 buf; /* buffer, or iovec array when is_iov */
	__s32 fd;
	__u32 iovcnt;
	__u8 dir;
	__u8 is_iov;
	__u8 _pad[6];
};

struct scratch {
	struct data_event hdr;
	__u8 data[CHUNK_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* replaced by the loader from ring_buffer_size */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct ssl_key);
	__type(value, struct ssl_conn);
} ssl_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ssl_args);
} ssl_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct io_args);
} io_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, __u8);
} mmap_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} id_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} skip_tgids SEC(".maps");

/* Force bpf2go to emit Go types for the records. */
const struct data_event *unused_data_event __attribute__((unused));
const struct ctl_event *unused_ctl_event __attribute__((unused));
const struct exec_event *unused_exec_event __attribute__((unused));

static __always_inline void stat_add(__u32 idx, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&stats, &idx);
	if (p)
		*p += v; /* per-CPU slot: no atomics needed */
}

static __always_inline __u64 next_id(void)
{
	__u32 zero = 0;
	__u64 *p = bpf_map_lookup_elem(&id_gen, &zero);
	if (!p)
		return 0;
	return __sync_fetch_and_add(p, 1) + 1;
}

static __always_inline int is_self(__u64 pid_tgid)
{
	return (__u32)(pid_tgid >> 32) == self_tgid;
}

/* Data paths skip the agent and the processes the configuration excludes
 * (filled by user space from its process rules), before any other work. */
static __always_inline int skipped(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	if (tgid == self_tgid)
		return 1;
	return filter_tgids && bpf_map_lookup_elem(&skip_tgids, &tgid);
}

/*
 * Wake-ups. Waking the reader is an irq_work plus a context switch, paid by
 * the traced thread: ~6-9 us per record on our VMs, more than everything
 * else a record costs. Data records are therefore submitted without a
 * wake-up and user space polls (every few ms while busy); only when the
 * pending bytes pass wakeup_bytes is the reader woken at once, so a burst
 * never waits for the next poll to find the ring full. (The default flags
 * would not do: they wake only a reader that has consumed everything, and a
 * reader asleep with pending unannounced records would never be woken.)
 */
static __always_inline __u64 data_wakeup(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

/* Exec and mmap records may call for new probes: the sooner user space
 * hooks a fresh process, the fewer of its first calls go unseen. Close and
 * exit records wait for the next poll like data. */
static __always_inline __u64 ctl_wakeup(__u8 type)
{
	return type == EV_EXEC || type == EV_MMAP ? BPF_RB_FORCE_WAKEUP : data_wakeup();
}

static __always_inline void emit_ctl(__u8 type, __u8 source, __u64 pid_tgid, __s32 fd, __u64 conn_id)
{
	struct ctl_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_add(STAT_LOST_CONTROL, 1);
		return;
	}
	e->type = type;
	e->source = source;
	e->_pad[0] = 0;
	e->_pad[1] = 0;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->fd = fd;
	e->ts = bpf_ktime_get_ns();
	e->conn_id = conn_id;
	bpf_ringbuf_submit(e, ctl_wakeup(type));
}

/*
 * Socket lookup by walking the current task's fd table (CO-RE). It works for
 * sockets created before the agent started, which connect/accept never showed.
 */
static __always_inline struct socket *fd_socket(__s32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct files_struct *files = BPF_CORE_READ(task, files);
	if (!files)
		return NULL;
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	if (!fdt || fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	return BPF_CORE_READ(f, private_data);
}

/* Fills addr from the socket; returns 0 when fd is not a stream socket we follow. */
static __always_inline int sock_addr(__s32 fd, struct conn_addr *addr)
{
	struct socket *sock = fd_socket(fd);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	addr->family = family;
	/* Explicit sizes: BPF_CORE_READ_INTO would copy sizeof(*dst), one byte of the array. */
	if (family == AF_INET) {
		bpf_core_read(addr->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(addr->raddr, 4, &sk->__sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		bpf_core_read(addr->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(addr->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else if (family != AF_UNIX) {
		return 0;
	}
	if (family != AF_UNIX) {
		addr->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		addr->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	return 1;
}

/* A fresh connection entry for fd, replacing whatever an earlier socket with the
 * same fd number left behind: identity survives fd reuse. */
static __always_inline void conn_create(__u64 pid_tgid, __s32 fd)
{
	struct conn_key key = { .tgid = pid_tgid >> 32, .fd = fd };
	struct conn c = {};
	if (!sock_addr(fd, &c.addr))
		return;
	c.id = next_id();
	c.tries = TRIES_STRICT;
	bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
}

/* Returns the connection of fd, discovering sockets created before the agent. */
static __always_inline struct conn *conn_get(__u32 tgid, __s32 fd)
{
	struct conn_key key = { .tgid = tgid, .fd = fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		return c->kind == K_NOTSOCK ? NULL : c;
	struct conn nc = {};
	if (!sock_addr(fd, &nc.addr)) {
		nc.kind = K_NOTSOCK;
		bpf_map_update_elem(&conns, &key, &nc, BPF_NOEXIST);
		return NULL;
	}
	nc.id = next_id();
	nc.tries = TRIES_LENIENT;
	bpf_map_update_elem(&conns, &key, &nc, BPF_NOEXIST);
	c = bpf_map_lookup_elem(&conns, &key);
	if (c && c->kind == K_NOTSOCK)
		return NULL;
	return c;
}

/* Does a record start like an HTTP/1 message or the HTTP/2 preface? */
static __always_inline int looks_http(__u64 ubuf, __u32 len)
{
	__u32 w = 0;
	if (len < 4 || bpf_probe_read_user(&w, sizeof(w), (void *)ubuf))
		return -1; /* undecided */
#define W(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)
	switch (w) {
	case W('G', 'E', 'T', ' '):
	case W('P', 'O', 'S', 'T'):
	case W('P', 'U', 'T', ' '):
	case W('H', 'E', 'A', 'D'):
	case W('D', 'E', 'L', 'E'):
	case W('P', 'A', 'T', 'C'):
	case W('O', 'P', 'T', 'I'):
	case W('C', 'O', 'N', 'N'):
	case W('T', 'R', 'A', 'C'):
	case W('H', 'T', 'T', 'P'):
	case W('P', 'R', 'I', ' '):
		return 1;
	}
#undef W
	return 0;
}

/* Decides whether a record of a connection in state *kind / *tries is streamed. */
static __always_inline int should_stream(__u8 *kind, __u8 *tries, __u64 ubuf, __u32 len)
{
	if (*kind == K_HTTP)
		return 1;
	if (*kind != K_UNKNOWN)
		return 0;
	int v = looks_http(ubuf, len);
	if (v > 0) {
		*kind = K_HTTP;
		return 1;
	}
	if (v < 0)
		return 1; /* too short to judge: keep it, user space decides */
	if (*tries <= 1)
		*kind = K_IGNORE;
	else
		(*tries)--;
	return 0;
}

struct emit_ctx {
	struct data_event hdr; /* template: pos is the position of ubuf[0] */
	__u64 ubuf;
	__u32 total; /* bytes of ubuf to cover */
	__u32 done;
	__u64 lost_end; /* end position of the last record that could not be sent */
};

static long emit_chunk(__u32 i, struct emit_ctx *c)
{
	if (c->done >= c->total)
		return 1;
	__u64 n = (__u64)c->total - c->done;
	if (n > CHUNK_SIZE)
		n = CHUNK_SIZE;
	/* Keep the clamped value in one register so the verifier sees the bound. */
	asm volatile("" : "+r"(n));
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 1;
	s->hdr = c->hdr;
	s->hdr.pos = c->hdr.pos + c->done;
	s->hdr.len = n;
	s->hdr.cap_len = n;
	if (bpf_probe_read_user(s->data, n, (void *)(c->ubuf + c->done))) {
		/* unreadable user memory (paged out): keep the size, flag no payload */
		s->hdr.cap_len = 0;
		n = 0;
	}
	__u64 size = sizeof(s->hdr) + (__u64)n;
	if (size > sizeof(*s))
		return 1;
	if (bpf_ringbuf_output(&events, s, size, data_wakeup())) {
		stat_add(STAT_LOST_EVENTS, 1);
		stat_add(STAT_LOST_BYTES, s->hdr.len);
		c->lost_end = s->hdr.pos + s->hdr.len;
	}
	c->hdr.flags = 0; /* only a call's first record starts it */
	c->done += s->hdr.len;
	return 0;
}

/* Header-only record for bytes beyond the capture cap: the size stays known. */
static __always_inline void emit_skip(struct emit_ctx *c, __u64 pos, __u32 len)
{
	struct data_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	stat_add(STAT_SKIPPED_BYTES, len);
	if (!e) {
		stat_add(STAT_LOST_EVENTS, 1);
		c->lost_end = pos + len;
		return;
	}
	*e = c->hdr;
	e->pos = pos;
	e->len = len;
	e->cap_len = 0;
	bpf_ringbuf_submit(e, data_wakeup());
}

/*
 * Load shedding. Bulk body bytes are what floods the ring: without this one
 * never-ending download fills it and starves every other connection of the
 * host, whose requests and responses are a few hundred bytes each. Once the
 * ring is half full, a call may take at most 1/SHED_SHARE of the space left,
 * so as it fills larger calls are refused first and the last KiBs stay for
 * message heads. A shed call is accounted as lost, exactly like a record the
 * ring refused: the stream knows where its gap is and flags it.
 */
static __always_inline int shed(struct emit_ctx *c, __u64 len, __u64 budget)
{
	__u64 used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (used < ring_bytes / 2)
		return 0;
	__u64 left = used < ring_bytes ? ring_bytes - used : 0;
	if ((budget + sizeof(struct data_event)) * SHED_SHARE <= left)
		return 0;
	stat_add(STAT_LOST_EVENTS, 1);
	stat_add(STAT_LOST_BYTES, len);
	stat_add(STAT_SHED_BYTES, len);
	c->lost_end = c->hdr.pos + len;
	return 1;
}

/* Streams `len` bytes of a user buffer (or iovec array) at stream position pos. */
static __always_inline void emit_data(struct emit_ctx *c, __u64 buf, __u32 iovcnt, int is_iov, __u64 len)
{
	__u64 budget = len < max_call_bytes ? len : max_call_bytes;
	if (shed(c, len, budget))
		return;
	/* A message is likelier to start where a call starts than anywhere
	 * else: user space resynchronises there after a loss. */
	c->hdr.flags = DF_CALL_START;
	__u64 base = c->hdr.pos;
	__u64 covered = 0;
	if (!is_iov) {
		c->ubuf = buf;
		c->total = budget;
		c->done = 0;
		bpf_loop(MAX_CHUNKS, emit_chunk, c, 0);
		covered = c->done;
	} else {
		for (int i = 0; i < MAX_IOVECS; i++) {
			if (i >= iovcnt || covered >= budget)
				break;
			struct iovec iov = {};
			if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(buf + i * sizeof(iov))))
				break;
			__u64 n = iov.iov_len;
			if (n > budget - covered)
				n = budget - covered;
			c->hdr.pos = base + covered;
			c->ubuf = (__u64)iov.iov_base;
			c->total = n;
			c->done = 0;
			bpf_loop(MAX_CHUNKS, emit_chunk, c, 0);
			covered += c->done;
			if (c->done < n)
				break;
		}
	}
	if (covered < len)
		emit_skip(c, base + covered, len - covered);
}

/* ---------------------------------------------------------------- sockets */

/* Java records (java.h): a write on a JVM's registered record fd. */
static __always_inline int java_write(__u64 pid_tgid, __s32 fd, __u64 buf);

static __always_inline int io_enter(__s32 fd, __u64 buf, __u32 iovcnt, __u8 dir, __u8 is_iov)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	/* Nested syscall of an SSL call in flight: it tells the SSL object's fd.
	 * Its own bytes are ciphertext and are not streamed. */
	struct ssl_args *sa = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	if (sa) {
		if (sa->fd < 0)
			sa->fd = fd;
		return 0;
	}
	struct conn *c = conn_get(pid_tgid >> 32, fd);
	if (!c) /* not a socket: maybe a JVM's record fd (sockets never pay the lookup) */
		return dir == DIR_EGRESS && !is_iov ? java_write(pid_tgid, fd, buf) : 0;
	if (c->kind == K_IGNORE)
		return 0;
	struct io_args a = { .buf = buf, .fd = fd, .iovcnt = iovcnt, .dir = dir, .is_iov = is_iov };
	bpf_map_update_elem(&io_calls, &pid_tgid, &a, BPF_ANY);
	return 0;
}

static __always_inline int io_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct io_args *a = bpf_map_lookup_elem(&io_calls, &pid_tgid);
	if (!a)
		return 0;
	struct io_args args = *a;
	bpf_map_delete_elem(&io_calls, &pid_tgid);
	if (ret <= 0)
		return 0;
	struct conn_key key = { .tgid = pid_tgid >> 32, .fd = args.fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	__u64 first = args.buf;
	__u32 first_len = ret;
	if (args.is_iov) {
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)args.buf))
			return 0;
		first = (__u64)iov.iov_base;
		first_len = iov.iov_len < (__u64)ret ? iov.iov_len : ret;
	}
	__u8 dir = args.dir & 1;
	__u64 pos = __sync_fetch_and_add(&c->pos[dir], (__u64)ret);
	if (!should_stream(&c->kind, &c->tries, first, first_len))
		return 0;
	c->notify = 1;
	struct emit_ctx ec = {};
	ec.hdr.type = EV_DATA;
	ec.hdr.source = SRC_SOCKET;
	ec.hdr.dir = dir;
	ec.hdr.tgid = pid_tgid >> 32;
	ec.hdr.tid = (__u32)pid_tgid;
	ec.hdr.fd = args.fd;
	ec.hdr.ts = bpf_ktime_get_ns();
	ec.hdr.conn_id = c->id;
	ec.hdr.pos = pos;
	ec.hdr.addr = c->addr;
	ec.hdr.lost[0] = c->lost[0];
	ec.hdr.lost[1] = c->lost[1];
	emit_data(&ec, args.buf, args.iovcnt, args.is_iov, ret);
	if (ec.lost_end > c->lost[dir])
		c->lost[dir] = ec.lost_end;
	return 0;
}

/*
 * Syscalls: two raw tracepoints, sys_enter and sys_exit, serve every syscall
 * we follow, dispatching on the syscall number; any other syscall costs a
 * switch. Raw tracepoints rather than the per-syscall trace events: two bpf
 * links instead of ~25 perf events, each of which waits for an RCU grace
 * period on detach (~65 ms apiece here: shutdown took 0.5 s to seconds), no
 * record built by the perf layer per call, and no tracefs. (Tail calls
 * through a prog array per syscall were tried: on this kernel the arrays
 * sometimes outlived every reference we held, a leak per start/stop.)
 *
 * x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl); a Go test
 * checks them against golang.org/x/sys/unix.
 */
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_mmap 9
#define NR_readv 19
#define NR_writev 20
#define NR_dup2 33
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_accept4 288
#define NR_dup3 292

#define TS_COMPAT 0x0002 /* arch/x86 thread_info.status: a 32-bit syscall is active */

/* The numbers above are x86-64's; a 32-bit process's syscall numbers mean
 * other calls (its 3 is read, ours close). Checked only on a match. */
static __always_inline int compat_syscall(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	return task->thread_info.status & TS_COMPAT;
}

/* raw sys_enter: args[0] = struct pt_regs * of the user entry, args[1] = nr;
 * raw sys_exit: args[0] = struct pt_regs *, args[1] = return value. */
#define SYS_REGS(ctx) ((struct pt_regs *)(ctx)->args[0])
#define SYS_ARG1(ctx) PT_REGS_PARM1_CORE_SYSCALL(SYS_REGS(ctx))
#define SYS_ARG2(ctx) PT_REGS_PARM2_CORE_SYSCALL(SYS_REGS(ctx))
#define SYS_ARG3(ctx) PT_REGS_PARM3_CORE_SYSCALL(SYS_REGS(ctx))
#define SYS_ARG5(ctx) PT_REGS_PARM5_CORE_SYSCALL(SYS_REGS(ctx))
#define SYS_RET(ctx) ((long)(ctx)->args[1])

/* sendmsg/recvmsg: (fd, struct user_msghdr *, flags). */
static __always_inline int msg_enter(struct bpf_raw_tracepoint_args *ctx, __u8 dir)
{
	struct user_msghdr msg = {};
	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)SYS_ARG2(ctx)))
		return 0;
	return io_enter(SYS_ARG1(ctx), (__u64)msg.msg_iov, msg.msg_iovlen, dir, 1);
}

/* connect/accept4 start a connection's life: a new id, judged on its first bytes. */
static __always_inline int connect_enter(__s32 fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	struct io_args a = { .fd = fd };
	bpf_map_update_elem(&io_calls, &pid_tgid, &a, BPF_ANY);
	return 0;
}

static __always_inline int connect_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct io_args *a = bpf_map_lookup_elem(&io_calls, &pid_tgid);
	if (!a)
		return 0;
	__s32 fd = a->fd;
	bpf_map_delete_elem(&io_calls, &pid_tgid);
	/* -EINPROGRESS (non-blocking connect): addresses are already set. */
	if (ret == 0 || ret == -115)
		conn_create(pid_tgid, fd);
	return 0;
}

static __always_inline int accept_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid) || ret < 0)
		return 0;
	conn_create(pid_tgid, ret);
	return 0;
}

/* The process let go of fd (close, or dup2/dup3 over it): its connection
 * ends here, whatever fd number the next socket reuses. */
static __always_inline int fd_closed(__s32 fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	struct conn_key key = { .tgid = pid_tgid >> 32, .fd = fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if (c->notify)
		emit_ctl(EV_CLOSE, SRC_SOCKET, pid_tgid, fd, c->id);
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

/* An executable mapping of a file (ld.so loading a library, dlopen) may bring
 * a TLS library into a running process: tell user space to look.
 * mmap(addr, len, prot, flags, fd, off). */
static __always_inline int mmap_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (is_self(pid_tgid) || !(SYS_ARG3(ctx) & PROT_EXEC) || (long)SYS_ARG5(ctx) < 0)
		return 0;
	__u8 one = 1;
	bpf_map_update_elem(&mmap_calls, &pid_tgid, &one, BPF_ANY);
	return 0;
}

static __always_inline int mmap_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!bpf_map_lookup_elem(&mmap_calls, &pid_tgid))
		return 0;
	bpf_map_delete_elem(&mmap_calls, &pid_tgid);
	if (ret < 0 && ret > -4096)
		return 0;
	emit_ctl(EV_MMAP, 0, pid_tgid, -1, 0);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	long nr = ctx->args[1];
	switch (nr) {
	case NR_read: case NR_write: case NR_readv: case NR_writev:
	case NR_sendto: case NR_recvfrom: case NR_sendmsg: case NR_recvmsg:
	case NR_connect: case NR_close: case NR_dup2: case NR_dup3: case NR_mmap:
		break;
	default:
		return 0;
	}
	if (compat_syscall())
		return 0;
	switch (nr) {
	/* read/write/sendto/recvfrom: (fd, buf, ...); readv/writev: (fd, iov, iovcnt). */
	case NR_write:
	case NR_sendto:
		return io_enter(SYS_ARG1(ctx), SYS_ARG2(ctx), 0, DIR_EGRESS, 0);
	case NR_read:
	case NR_recvfrom:
		return io_enter(SYS_ARG1(ctx), SYS_ARG2(ctx), 0, DIR_INGRESS, 0);
	case NR_writev:
		return io_enter(SYS_ARG1(ctx), SYS_ARG2(ctx), SYS_ARG3(ctx), DIR_EGRESS, 1);
	case NR_readv:
		return io_enter(SYS_ARG1(ctx), SYS_ARG2(ctx), SYS_ARG3(ctx), DIR_INGRESS, 1);
	case NR_sendmsg:
		return msg_enter(ctx, DIR_EGRESS);
	case NR_recvmsg:
		return msg_enter(ctx, DIR_INGRESS);
	case NR_connect:
		return connect_enter(SYS_ARG1(ctx));
	case NR_close:
		return fd_closed(SYS_ARG1(ctx));
	/* dup2/dup3 (oldfd, newfd, ...) close newfd implicitly; without this the fd cache would go stale. */
	case NR_dup2:
	case NR_dup3:
		return fd_closed(SYS_ARG2(ctx));
	case NR_mmap:
		return mmap_enter(ctx);
	}
	return 0;
}

/* The number at exit is only in the registers: orig_ax keeps it past the return. */
SEC("raw_tracepoint/sys_exit")
int raw_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	long nr = BPF_CORE_READ(SYS_REGS(ctx), orig_ax);
	switch (nr) {
	/* One path serves every read/write-family syscall: io_calls says which.
	 * A 32-bit process's calls never entered io_calls (checked at entry). */
	case NR_read: case NR_write: case NR_readv: case NR_writev:
	case NR_sendto: case NR_recvfrom: case NR_sendmsg: case NR_recvmsg:
		return io_exit(SYS_RET(ctx));
	case NR_connect:
		return connect_exit(SYS_RET(ctx));
	case NR_mmap:
		return mmap_exit(SYS_RET(ctx));
	case NR_accept:
	case NR_accept4:
		if (compat_syscall())
			return 0;
		return accept_exit(SYS_RET(ctx));
	}
	return 0;
}

/* ---------------------------------------------------------------- OpenSSL */

static __always_inline int tls_enter(__u8 src, __u64 ssl, __u64 buf, __u64 ex_out, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	struct ssl_args *cur = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	if (cur) {
		cur->depth++;
		return 0;
	}
	struct ssl_args a = { .ssl = ssl, .buf = buf, .ex_out = ex_out, .fd = -1, .dir = dir, .src = src };
	bpf_map_update_elem(&ssl_calls, &pid_tgid, &a, BPF_ANY);
	return 0;
}

static __always_inline int ssl_enter(__u64 ssl, __u64 buf, __u64 ex_out, __u8 dir)
{
	return tls_enter(SRC_OPENSSL, ssl, buf, ex_out, dir);
}

/* Streams n plaintext bytes of a TLS call at stream position pos. */
/* lost: the stream's per-direction loss positions (conn.lost). */
static __always_inline void emit_tls(__u64 pid_tgid, __u8 source, __u8 dir, __s32 fd, __u64 id, __u64 pos,
				     __u64 handle, struct conn *c, __u64 *lost, __u64 buf, __u64 n)
{
	dir &= 1;
	struct emit_ctx ec = {};
	ec.hdr.type = EV_DATA;
	ec.hdr.source = source;
	ec.hdr.dir = dir;
	ec.hdr.tgid = pid_tgid >> 32;
	ec.hdr.tid = (__u32)pid_tgid;
	ec.hdr.fd = fd;
	ec.hdr.ts = bpf_ktime_get_ns();
	ec.hdr.conn_id = id;
	ec.hdr.pos = pos;
	ec.hdr.ssl = handle;
	if (c) {
		ec.hdr.addr = c->addr;
		c->notify = 1;
	}
	ec.hdr.lost[0] = lost[0];
	ec.hdr.lost[1] = lost[1];
	emit_data(&ec, buf, 0, 0, n);
	if (ec.lost_end > lost[dir])
		lost[dir] = ec.lost_end;
}

/* ret: bytes transferred by the outermost call, or <= 0. */
static __always_inline int ssl_exit(long ret, int is_ex)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ssl_args *ap = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	if (!ap)
		return 0;
	if (ap->depth > 0) {
		ap->depth--;
		return 0;
	}
	struct ssl_args a = *ap;
	bpf_map_delete_elem(&ssl_calls, &pid_tgid);

	__u64 n = 0;
	if (is_ex) {
		/* SSL_read_ex/SSL_write_ex return 1 and store the count through a pointer. */
		if (ret != 1 || !a.ex_out || bpf_probe_read_user(&n, sizeof(n), (void *)a.ex_out))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (n == 0 || n > 0x7fffffff)
		return 0;

	__u32 tgid = pid_tgid >> 32;
	struct ssl_key key = { .tgid = tgid, .ssl = a.ssl };
	struct ssl_conn *sc = bpf_map_lookup_elem(&ssl_conns, &key);
	if (!sc) {
		struct ssl_conn nsc = { .id = next_id(), .fd = -1, .tries = TRIES_LENIENT };
		bpf_map_update_elem(&ssl_conns, &key, &nsc, BPF_NOEXIST);
		sc = bpf_map_lookup_elem(&ssl_conns, &key);
		if (!sc)
			return 0;
	}
	if (a.fd >= 0)
		sc->fd = a.fd;
	__u8 dir = a.dir & 1;
	__u64 pos = __sync_fetch_and_add(&sc->pos[dir], n);
	if (!should_stream(&sc->kind, &sc->tries, a.buf, n))
		return 0;
	struct conn *c = sc->fd >= 0 ? conn_get(tgid, sc->fd) : NULL;
	emit_tls(pid_tgid, a.src, dir, sc->fd, sc->id, pos, a.ssl, c, sc->lost, a.buf, n);
	return 0;
}

SEC("uprobe.multi/SSL_write")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
	return ssl_enter((__u64)ssl, (__u64)buf, 0, DIR_EGRESS);
}

SEC("uretprobe.multi/SSL_write")
int BPF_KRETPROBE(ssl_write_exit, int ret)
{
	return ssl_exit(ret, 0);
}

SEC("uprobe.multi/SSL_write_ex")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return ssl_enter((__u64)ssl, (__u64)buf, (__u64)written, DIR_EGRESS);
}

SEC("uretprobe.multi/SSL_write_ex")
int BPF_KRETPROBE(ssl_write_ex_exit, int ret)
{
	return ssl_exit(ret, 1);
}

SEC("uprobe.multi/SSL_read")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	return ssl_enter((__u64)ssl, (__u64)buf, 0, DIR_INGRESS);
}

SEC("uretprobe.multi/SSL_read")
int BPF_KRETPROBE(ssl_read_exit, int ret)
{
	return ssl_exit(ret, 0);
}

SEC("uprobe.multi/SSL_read_ex")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return ssl_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, DIR_INGRESS);
}

SEC("uretprobe.multi/SSL_read_ex")
int BPF_KRETPROBE(ssl_read_ex_exit, int ret)
{
	return ssl_exit(ret, 1);
}

/* SSL_shutdown and SSL_free end the SSL object's stream. */
static __always_inline int tls_gone(__u8 src, __u64 ssl)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	struct ssl_key key = { .tgid = pid_tgid >> 32, .ssl = ssl };
	struct ssl_conn *sc = bpf_map_lookup_elem(&ssl_conns, &key);
	if (!sc)
		return 0;
	emit_ctl(EV_CLOSE, src, pid_tgid, sc->fd, sc->id);
	bpf_map_delete_elem(&ssl_conns, &key);
	return 0;
}

static __always_inline int ssl_gone(__u64 ssl)
{
	return tls_gone(SRC_OPENSSL, ssl);
}

SEC("uprobe.multi/SSL_shutdown")
int BPF_KPROBE(ssl_shutdown_enter, void *ssl)
{
	return ssl_gone((__u64)ssl);
}

/* Attached at SSL_free's entry, or on the `je` after a leading
 * `test rdi, rdi` (emulated where the test is single-stepped): the test
 * writes only flags, so RDI still holds the SSL* there. */
SEC("uprobe.multi/SSL_free")
int BPF_KPROBE(ssl_free_enter, void *ssl)
{
	return ssl_gone((__u64)ssl);
}

/* ---------------------------------------------------------------- GnuTLS */

/*
 * gnutls_record_send/gnutls_record_send2 and gnutls_record_recv take
 * (session, data, size) and return the bytes moved or a negative error
 * code (GNUTLS_E_AGAIN, ...), as SSL_write/SSL_read do. The session pointer
 * keys the stream as the SSL* does. GnuTLS's default transport calls
 * send/recv (sendmsg/recvfrom) on the session's fd within these calls, so
 * the nested-syscall method learns the fd; sessions with custom push/pull
 * functions over memory are keyed by the session alone (peer unknown).
 */
SEC("uprobe.multi/gnutls_record_send")
int BPF_KPROBE(gnutls_send_enter, void *session, const void *data, __u64 size)
{
	return tls_enter(SRC_GNUTLS, (__u64)session, (__u64)data, 0, DIR_EGRESS);
}

SEC("uretprobe.multi/gnutls_record_send")
int BPF_KRETPROBE(gnutls_send_exit, long ret)
{
	return ssl_exit(ret, 0);
}

SEC("uprobe.multi/gnutls_record_recv")
int BPF_KPROBE(gnutls_recv_enter, void *session, void *data, __u64 size)
{
	return tls_enter(SRC_GNUTLS, (__u64)session, (__u64)data, 0, DIR_INGRESS);
}

SEC("uretprobe.multi/gnutls_record_recv")
int BPF_KRETPROBE(gnutls_recv_exit, long ret)
{
	return ssl_exit(ret, 0);
}

/* gnutls_bye (TLS close_notify) and gnutls_deinit (the session freed; at
 * the `je` after its NULL check when it starts with one, as SSL_free) end
 * the session's stream. */
SEC("uprobe.multi/gnutls_bye")
int BPF_KPROBE(gnutls_bye_enter, void *session)
{
	return tls_gone(SRC_GNUTLS, (__u64)session);
}

SEC("uprobe.multi/gnutls_deinit")
int BPF_KPROBE(gnutls_deinit_enter, void *session)
{
	return tls_gone(SRC_GNUTLS, (__u64)session);
}

/* ---------------------------------------------------------------- Java */

#include "java.h"

/* ---------------------------------------------------------------- processes */

/* Raw tracepoints: only the current task is used, which both fire in. */
/* kernfs_node.parent became __parent in Linux 6.15. */
struct kernfs_node___pre615 {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___pre615 *)kn, parent);
}

/*
 * sched_process_exec(p, old_pid, bprm) fires in the new image once it is
 * set up: current->mm is the new mm, its argv already on the new stack.
 * The record carries the identity /proc would give, because a short-lived
 * client is often gone (with its /proc entry) before user space reads it.
 */
SEC("raw_tracepoint/sched_process_exec")
int raw_sched_exec(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (is_self(pid_tgid))
		return 0;
	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_add(STAT_LOST_CONTROL, 1);
		return 0;
	}
	e->hdr.type = EV_EXEC;
	e->hdr.source = 0;
	e->hdr._pad[0] = e->hdr._pad[1] = 0;
	e->hdr.tgid = pid_tgid >> 32;
	e->hdr.tid = (__u32)pid_tgid;
	e->hdr.fd = -1;
	e->hdr.ts = bpf_ktime_get_ns();
	e->hdr.conn_id = 0;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->_pad = 0;

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);

	/* interp, not filename: the file really executed (the interpreter of a
	 * script), as /proc/<pid>/exe names it. */
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	const char *interp = BPF_CORE_READ(bprm, interp);
	long n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), interp);
	e->path_len = n > 0 ? n - 1 : 0;

	__u64 start = BPF_CORE_READ(task, mm, arg_start);
	__u64 end = BPF_CORE_READ(task, mm, arg_end);
	__u64 len = end > start ? end - start : 0;
	if (len > EXEC_ARGS_MAX)
		len = EXEC_ARGS_MAX;
	/* Keep the bound in one register so the verifier sees it. */
	asm volatile("" : "+r"(len));
	if (len > 0 && len <= EXEC_ARGS_MAX && bpf_probe_read_user(e->args, len, (void *)start) == 0)
		e->args_len = len;
	else
		e->args_len = 0;

	/* The default hierarchy's cgroup, walked up from the leaf. */
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	for (int i = 0; i < EXEC_CGROUP_LEVELS; i++) {
		e->cgroup[i][0] = 0;
		if (!kn)
			continue;
		const char *name = BPF_CORE_READ(kn, name);
		if (bpf_probe_read_kernel_str(e->cgroup[i], EXEC_CGROUP_NAME, name) < 0)
			e->cgroup[i][0] = 0;
		kn = kn_parent(kn);
	}
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int raw_sched_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	/* Only the thread-group leader's exit ends the process. */
	if ((__u32)pid_tgid == (__u32)(pid_tgid >> 32) && !is_self(pid_tgid))
		emit_ctl(EV_EXIT, 0, pid_tgid, -1, 0);
	return 0;
}

/* ---------------------------------------------------------------- Go crypto/tls */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GO_BINARIES);
	__type(key, __u32);
	__type(value, struct go_offsets);
} go_layouts SEC(".maps");

struct go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g; /* goroutine: Go calls may resume on another thread */
};

struct go_call {
	__u64 conn;
	__u64 buf;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_reads SEC(".maps");

const struct go_offsets *unused_go_offsets __attribute__((unused));

/* Follows tls.Conn.conn (an interface holding *net.TCPConn or *net.UnixConn,
 * both embedding net.conn{fd *netFD}) to poll.FD.Sysfd. Any other dynamic
 * type yields garbage, which the socket check in conn_get rejects. */
static __always_inline __s32 go_fd(__u64 conn, __u64 cookie)
{
	__u32 idx = cookie;
	struct go_offsets *o = bpf_map_lookup_elem(&go_layouts, &idx);
	if (!o || !conn)
		return -1;
	__u64 data = 0, netfd = 0;
	__s64 fd = -1;
	if (bpf_probe_read_user(&data, sizeof(data), (void *)(conn + o->conn_conn + 8)) || !data)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(data + o->tcpconn_fd)) || !netfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + o->netfd_pfd + o->pfd_sysfd)))
		return -1;
	return (fd < 0 || fd > 0xfffffff) ? -1 : (__s32)fd;
}

static __always_inline void go_emit(__u64 pid_tgid, __u64 conn, __u64 buf, __u64 n, __u8 dir, __u64 cookie)
{
	__u32 tgid = pid_tgid >> 32;
	if (n == 0 || n > 0x7fffffff)
		return;
	__s32 fd = go_fd(conn, cookie);
	struct conn *c = fd >= 0 ? conn_get(tgid, fd) : NULL;
	if (c) {
		if (!c->tls_id) {
			c->tls_id = next_id();
			c->tls_tries = TRIES_LENIENT;
		}
		__u64 pos = __sync_fetch_and_add(&c->tls_pos[dir], n);
		if (should_stream(&c->tls_kind, &c->tls_tries, buf, n))
			emit_tls(pid_tgid, SRC_GOTLS, dir, fd, c->tls_id, pos, conn, c, c->tls_lost, buf, n);
		return;
	}
	/* fd unknown (unexpected layout): key the stream by the *tls.Conn. */
	struct ssl_key key = { .tgid = tgid, .ssl = conn };
	struct ssl_conn *sc = bpf_map_lookup_elem(&ssl_conns, &key);
	if (!sc) {
		struct ssl_conn nsc = { .id = next_id(), .fd = -1, .tries = TRIES_LENIENT };
		bpf_map_update_elem(&ssl_conns, &key, &nsc, BPF_NOEXIST);
		sc = bpf_map_lookup_elem(&ssl_conns, &key);
		if (!sc)
			return;
	}
	__u64 pos = __sync_fetch_and_add(&sc->pos[dir], n);
	if (should_stream(&sc->kind, &sc->tries, buf, n))
		emit_tls(pid_tgid, SRC_GOTLS, dir, -1, sc->id, pos, conn, NULL, sc->lost, buf, n);
}

/* crypto/tls.(*Conn).Write(b []byte) (int, error), register ABI: c in RAX,
 * b.ptr in RBX, b.len in RCX. Write sends all of b or fails, so the entry
 * alone carries the data: no probe on its returns (each costs a
 * single-step). */
SEC("uprobe.multi/go_tls_write")
int go_tls_write(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	go_emit(pid_tgid, ctx->ax, ctx->bx, ctx->cx, DIR_EGRESS, bpf_get_attach_cookie(ctx));
	return 0;
}

/* crypto/tls.(*Conn).Read(b []byte) (int, error), preferred scheme: one
 * probe on Read's only `CALL runtime.memmove` (the inlined
 * c.input.Read(b), copying decrypted plaintext into b). The kernel emulates
 * a call rel32 (~1 us a hit) where the entry + every-RET scheme below pays
 * a single-step on each RET (~15 us). Go ABI facts relied on, each checked
 * by goinfo on the binary's code before this program is attached:
 *  - memmove(to, from, n) takes AX = to, BX = from, CX = n;
 *  - RBP is Read's frame pointer (push rbp; mov rbp, rsp), so the spill
 *    slots of its register arguments sit above the return address:
 *    [RBP+0x10] = c (*Conn, RAX at entry), [RBP+0x18] = b.ptr (RBX);
 *  - the prologue stores c and b.ptr there and nothing else writes them.
 * AX == b.ptr confirms the copy targets the caller's buffer; n (CX) is
 * exactly what Read returns. */
SEC("uprobe.multi/go_tls_read_copy")
int go_tls_read_copy(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	__u64 spill[2]; /* c, b.ptr */
	if (bpf_probe_read_user(spill, sizeof(spill), (void *)(ctx->bp + 0x10)))
		return 0;
	if (spill[1] != ctx->ax)
		return 0;
	go_emit(pid_tgid, spill[0], ctx->bx, ctx->cx, DIR_INGRESS, bpf_get_attach_cookie(ctx));
	return 0;
}

/* Fallback (Go 1.20, or code goinfo did not recognise): remember the
 * buffer per goroutine (g is in R14) at Read's entry; the probes on every
 * RET read n from RAX. */
SEC("uprobe.multi/go_tls_read")
int go_tls_read_enter(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skipped(pid_tgid))
		return 0;
	struct go_key key = { .tgid = pid_tgid >> 32, .g = ctx->r14 };
	struct go_call call = { .conn = ctx->ax, .buf = ctx->bx };
	bpf_map_update_elem(&go_reads, &key, &call, BPF_ANY);
	return 0;
}

SEC("uprobe.multi/go_tls_read_ret")
int go_tls_read_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct go_key key = { .tgid = pid_tgid >> 32, .g = ctx->r14 };
	struct go_call *call = bpf_map_lookup_elem(&go_reads, &key);
	if (!call)
		return 0;
	struct go_call cl = *call;
	bpf_map_delete_elem(&go_reads, &key);
	long n = ctx->ax;
	if (n > 0)
		go_emit(pid_tgid, cl.conn, cl.buf, n, DIR_INGRESS, bpf_get_attach_cookie(ctx));
	return 0;
}
