/* Shared between the eBPF programs and user space (mirrored in Go by bpf2go). */
#ifndef TLSTAP_H
#define TLSTAP_H

/* Record types on the ring buffer. */
enum event_type {
	EV_DATA = 1,  /* payload bytes of one direction of a connection */
	EV_CLOSE = 2, /* a connection (socket fd or SSL object) ended */
	EV_EXEC = 3,  /* a process called execve */
	EV_EXIT = 4,  /* a process (thread group) exited */
	EV_MMAP = 5,  /* a process mapped a file executable: look for new TLS libraries */
};

/* Where the plaintext came from. */
enum source {
	SRC_SOCKET = 1,  /* read/write-family syscalls on a plain socket */
	SRC_OPENSSL = 2, /* SSL_read/SSL_write uprobes */
	SRC_GOTLS = 3,   /* Go crypto/tls.(*Conn).Read/Write uprobes */
	SRC_GNUTLS = 4,  /* gnutls_record_send/gnutls_record_recv uprobes */
	SRC_JAVA = 5,    /* records of tlstap's agent in a JVM (JSSE), see java.h */
};

/* data_event.flags */
enum data_flags {
	DF_CALL_START = 1, /* the record's first byte is the first byte of a read/write call */
};

/* Direction relative to the traced process. */
enum direction {
	DIR_EGRESS = 0,  /* the process wrote the bytes */
	DIR_INGRESS = 1, /* the process read the bytes */
};

/* Per-CPU loss counters, index into the `stats` array. */
enum stat_index {
	STAT_LOST_EVENTS = 0, /* data records that did not fit the ring buffer */
	STAT_LOST_BYTES,      /* payload bytes in those records */
	STAT_LOST_CONTROL,    /* exec/exit/close/mmap records that did not fit */
	STAT_SKIPPED_BYTES,   /* bytes beyond the per-call capture cap (not lost: known size) */
	STAT_SHED_BYTES,      /* bytes of bulk calls shed under ring pressure (also in LOST_*) */
	STAT_MAX,
};

#define CHUNK_SIZE 16384        /* payload bytes per data record */
#define SHED_SHARE 16           /* under pressure a call may take 1/SHED_SHARE of the ring's free space */
#define MAX_CHUNKS 64           /* per call: 1 MiB, enough for max_body_bytes up to ~1 MiB per call */
#define MAX_IOVECS 8            /* iovecs followed per readv/writev/sendmsg/recvmsg */

struct conn_addr {
	__u16 family; /* AF_INET, AF_INET6, AF_UNIX or 0 when unknown */
	__u16 lport;  /* host byte order */
	__u16 rport;  /* host byte order */
	__u16 _pad;
	__u8 laddr[16]; /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
};

/* Header of every EV_DATA record; `len` payload bytes follow when cap_len == len. */
struct data_event {
	__u8 type;
	__u8 source;
	__u8 dir;
	__u8 flags;    /* enum data_flags */
	__u32 tgid;
	__u32 tid;
	__s32 fd;      /* -1 when unknown (memory-BIO TLS) */
	__u64 ts;      /* bpf_ktime_get_ns */
	__u64 conn_id; /* unique per stream: per socket fd lifetime or per SSL object */
	__u64 pos;     /* stream position of the first byte of this record, per direction */
	__u32 len;     /* bytes of the stream this record covers */
	__u32 cap_len; /* payload bytes present (< len when beyond the per-call cap) */
	__u64 ssl;     /* SSL* for SRC_OPENSSL, gnutls_session_t for SRC_GNUTLS */
	struct conn_addr addr;
	/* Per direction, the end position of the latest bytes of this stream
	 * the kernel failed to send (ring buffer full), 0 if none. User space
	 * learns of a loss with the next record of either direction, not only
	 * of the direction that lost, and so pairs requests and responses
	 * knowing it; a direction whose first records were lost is not taken
	 * for a stream found mid-way. */
	__u64 lost[2];
};

/* EV_CLOSE, EV_EXEC, EV_EXIT, EV_MMAP. */
struct ctl_event {
	__u8 type;
	__u8 source;
	__u8 _pad[2];
	__u32 tgid;
	__u32 tid;
	__s32 fd;
	__u64 ts;
	__u64 conn_id;
};

/* EV_EXEC: who the new image is, read in the kernel at exec so that a
 * process gone before user space reads the record still has an identity. */
#define EXEC_PATH_MAX 256
#define EXEC_ARGS_MAX 512
#define EXEC_CGROUP_LEVELS 3 /* the cgroup v2 path's last elements, leaf first */
#define EXEC_CGROUP_NAME 128
struct exec_event {
	struct ctl_event hdr;
	__u32 ppid;
	__u32 uid;
	__u64 start_boottime; /* task start, ns since boot (as /proc/<pid>/stat counts it) */
	__u16 path_len;       /* bytes of path, without the NUL */
	__u16 args_len;       /* bytes of args: NUL-separated argv, maybe cut */
	__u32 _pad;
	char path[EXEC_PATH_MAX]; /* the file executed, as execve named it */
	char args[EXEC_ARGS_MAX];
	/* Names of the process's cgroup (v2) and its parents, leaf first,
	 * NUL-terminated; an empty name ends the list. Container runtimes
	 * name the leaf (or a parent) after the container. */
	char cgroup[EXEC_CGROUP_LEVELS][EXEC_CGROUP_NAME];
};

/* Go crypto/tls: where the socket fd sits, per instrumented binary (the
 * uprobe's attach cookie indexes the go_offsets array). */
struct go_offsets {
	__u64 conn_conn;  /* tls.Conn.conn (net.Conn interface: itab, data) */
	__u64 tcpconn_fd; /* net.TCPConn -> conn.fd (*netFD) */
	__u64 netfd_pfd;  /* netFD.pfd (poll.FD) */
	__u64 pfd_sysfd;  /* poll.FD.Sysfd (int) */
};

#define MAX_GO_BINARIES 256

#endif
