// gnutlsloop: per-call cost of gnutls_record_send/gnutls_record_recv in a
// tight loop; sslloop's twin for GnuTLS (same arguments, same output).
//
//   gnutlsloop CERT KEY ITERS WARMUP
//
// A client (this process) and a server (a forked child) exchange a small
// HTTP/1.1 request and response over one TLS connection on 127.0.0.1, in
// lock step, 4 record calls per iteration (2 per process). CPU time of each
// process (getrusage) over ITERS iterations after WARMUP. One JSON line.
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char REQ[] = "GET /loop HTTP/1.1\r\nHost: bench\r\nUser-Agent: gnutlsloop\r\n\r\n";
static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void die(const char *what, int err) {
	fprintf(stderr, "gnutlsloop: %s: %s\n", what, err ? gnutls_strerror(err) : "");
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

static void recv_full(gnutls_session_t s, char *buf, size_t n) {
	size_t got = 0;
	while (got < n) {
		ssize_t r = gnutls_record_recv(s, buf + got, n - got);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			continue;
		if (r <= 0) die("gnutls_record_recv", (int)r);
		got += r;
	}
}

static void send_all(gnutls_session_t s, const char *buf, size_t n) {
	ssize_t r;
	do {
		r = gnutls_record_send(s, buf, n);
	} while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	if (r != (ssize_t)n) die("gnutls_record_send", r < 0 ? (int)r : 0);
}

static void handshake(gnutls_session_t s) {
	int r;
	do {
		r = gnutls_handshake(s);
	} while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) die("handshake", r);
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: gnutlsloop CERT KEY ITERS WARMUP\n");
		return 2;
	}
	const char *cert = argv[1], *key = argv[2];
	long iters = atol(argv[3]), warm = atol(argv[4]);
	char buf[256];
	int one = 1;

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1)) die("listen", 0);
	socklen_t al = sizeof a;
	getsockname(ls, (struct sockaddr *)&a, &al);
	int res[2];
	if (pipe(res)) die("pipe", 0);

	pid_t child = fork();
	if (child < 0) die("fork", 0);
	if (child == 0) { // server
		gnutls_certificate_credentials_t cred;
		gnutls_certificate_allocate_credentials(&cred);
		int r = gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM);
		if (r < 0) die("server credentials", r);
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) die("accept", 0);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		gnutls_session_t s;
		gnutls_init(&s, GNUTLS_SERVER);
		gnutls_set_default_priority(s);
		gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
		gnutls_transport_set_int(s, fd);
		handshake(s);
		int64_t c0 = 0;
		for (long i = 0; i < warm + iters; i++) {
			if (i == warm) c0 = cpu_ns();
			recv_full(s, buf, sizeof REQ - 1);
			send_all(s, RESP, sizeof RESP - 1);
		}
		int64_t c = cpu_ns() - c0;
		if (write(res[1], &c, sizeof c) != sizeof c) die("result pipe", 0);
		gnutls_bye(s, GNUTLS_SHUT_WR);
		gnutls_deinit(s);
		close(fd);
		_exit(0);
	}

	gnutls_certificate_credentials_t cred;
	gnutls_certificate_allocate_credentials(&cred);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect", 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	gnutls_session_t s;
	gnutls_init(&s, GNUTLS_CLIENT);
	gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred); // the certificate is not verified
	gnutls_transport_set_int(s, fd);
	handshake(s);
	int64_t t0 = 0, c0 = 0;
	for (long i = 0; i < warm + iters; i++) {
		if (i == warm) {
			t0 = mono_ns();
			c0 = cpu_ns();
		}
		send_all(s, REQ, sizeof REQ - 1);
		recv_full(s, buf, sizeof RESP - 1);
	}
	int64_t wall = mono_ns() - t0, ccpu = cpu_ns() - c0, scpu = 0;
	if (read(res[0], &scpu, sizeof scpu) != sizeof scpu) die("server result", 0);
	gnutls_bye(s, GNUTLS_SHUT_WR);
	gnutls_deinit(s);
	close(fd);
	waitpid(child, NULL, 0);
	printf("{\"iters\":%ld,\"calls_per_iter\":4,\"wall_ns\":%lld,\"client_cpu_ns\":%lld,\"server_cpu_ns\":%lld}\n",
	       iters, (long long)wall, (long long)ccpu, (long long)scpu);
	return 0;
}
