// sslloop: per-call cost of SSL_write/SSL_read in a tight loop.
//
//   sslloop CERT KEY ITERS WARMUP
//
// A client (this process) and a server (a forked child) exchange a small
// HTTP/1.1 request and response over one TLS connection on 127.0.0.1, in
// lock step: client SSL_write, server SSL_read, server SSL_write, client
// SSL_read. Each iteration therefore makes 4 SSL calls (2 per process).
// After WARMUP iterations both sides measure ITERS iterations: wall time
// (client) and the CPU time (user+system, getrusage) of each process. CPU
// time includes the kernel's work for uprobes hit by the process (trap,
// single-step, eBPF program), and excludes time spent waiting for the peer.
// Output: one JSON line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char REQ[] = "GET /loop HTTP/1.1\r\nHost: bench\r\nUser-Agent: sslloop\r\n\r\n";
static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void die(const char *what) {
	fprintf(stderr, "sslloop: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static int64_t cpu_ns(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       (int64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// read_full reads exactly n bytes with SSL_read (one call per record).
static void read_full(SSL *s, char *buf, int n) {
	int got = 0;
	while (got < n) {
		int r = SSL_read(s, buf + got, n - got);
		if (r <= 0) die("SSL_read");
		got += r;
	}
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: sslloop CERT KEY ITERS WARMUP\n");
		return 2;
	}
	const char *cert = argv[1], *key = argv[2];
	long iters = atol(argv[3]), warm = atol(argv[4]);
	char buf[256];
	int one = 1;

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1)) die("listen");
	socklen_t al = sizeof a;
	getsockname(ls, (struct sockaddr *)&a, &al);
	int res[2];
	if (pipe(res)) die("pipe");

	pid_t child = fork();
	if (child < 0) die("fork");
	if (child == 0) { // server
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			die("server ctx");
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) die("accept");
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		SSL *s = SSL_new(ctx);
		SSL_set_fd(s, fd);
		if (SSL_accept(s) != 1) die("SSL_accept");
		int64_t c0 = 0;
		for (long i = 0; i < warm + iters; i++) {
			if (i == warm) c0 = cpu_ns();
			read_full(s, buf, sizeof REQ - 1);
			if (SSL_write(s, RESP, sizeof RESP - 1) != (int)(sizeof RESP - 1)) die("server SSL_write");
		}
		int64_t c = cpu_ns() - c0;
		if (write(res[1], &c, sizeof c) != sizeof c) die("result pipe");
		SSL_shutdown(s);
		SSL_free(s);
		close(fd);
		_exit(0);
	}

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) die("client ctx");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	SSL *s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	if (SSL_connect(s) != 1) die("SSL_connect");
	int64_t t0 = 0, c0 = 0;
	for (long i = 0; i < warm + iters; i++) {
		if (i == warm) {
			t0 = mono_ns();
			c0 = cpu_ns();
		}
		if (SSL_write(s, REQ, sizeof REQ - 1) != (int)(sizeof REQ - 1)) die("client SSL_write");
		read_full(s, buf, sizeof RESP - 1);
	}
	int64_t wall = mono_ns() - t0, ccpu = cpu_ns() - c0, scpu = 0;
	if (read(res[0], &scpu, sizeof scpu) != sizeof scpu) die("server result");
	SSL_shutdown(s);
	SSL_free(s);
	close(fd);
	waitpid(child, NULL, 0);
	printf("{\"iters\":%ld,\"calls_per_iter\":4,\"wall_ns\":%lld,\"client_cpu_ns\":%lld,\"server_cpu_ns\":%lld}\n",
	       iters, (long long)wall, (long long)ccpu, (long long)scpu);
	return 0;
}
