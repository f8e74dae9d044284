// sslclient: a minimal OpenSSL HTTPS client, built statically by the tests
// (gcc -static ... -lssl -lcrypto) so that OpenSSL lives in the executable.
//
//   sslclient PORT PATH
//
// Prints "ready" once started, waits for a line on stdin (so the test can
// wait until the agent hooked the executable), sends one GET with
// "Connection: close" to 127.0.0.1:PORT, and copies the raw response to
// stdout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
	fprintf(stderr, "sslclient: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

int main(int argc, char **argv) {
	if (argc != 3)
		die("usage: sslclient PORT PATH");
	printf("ready\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		die("no go on stdin");

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		die("SSL_CTX_new");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect");
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		die("SSL_connect");
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: sslclient-static\r\nConnection: close\r\n\r\n",
			 argv[2], argv[1]);
	if (SSL_write(ssl, req, n) != n)
		die("SSL_write");
	char buf[4096];
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, n, stdout);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	return 0;
}
