/*
 * bench/tcprr: TCP request/response rate, the latency side of bench/net (what netperf's
 * TCP_RR measures): one connection, TCP_NODELAY, a SIZE-byte request answered by a SIZE-byte
 * response, the next request only after the response.
 *
 *   tcprr server ADDR PORT               answer every connection (one thread each), forever
 *   tcprr client ADDR PORT SECONDS [SIZE] run for SECONDS (SIZE default 1 byte), then print
 *                                        "transactions=N seconds=S tps=R"
 * Exit status 0, or 1 with a message on stderr.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *addr, const char *port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(port));
	return inet_pton(AF_INET, addr, &sa->sin_addr) == 1 ? 0 : -1;
}

/* Reads or writes exactly len bytes; 0 on success, -1 on error or end of stream. */
static int transfer(int fd, char *buf, size_t len, int sending)
{
	while (len > 0) {
		ssize_t n = sending ? write(fd, buf, len) : read(fd, buf, len);

		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* One connection: echo whatever arrives, as it arrives. */
static void *answer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[MAX_SIZE];
	ssize_t n;

	set_nodelay(fd);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (transfer(fd, buf, (size_t)n, 1) < 0)
			break;
	close(fd);
	return NULL;
}

static int serve(const struct sockaddr_in *sa)
{
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(lfd, 16) < 0) {
		perror("tcprr server");
		return 1;
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			continue;
		if (pthread_create(&t, NULL, answer, (void *)(intptr_t)fd) != 0)
			close(fd);
		else
			pthread_detach(t);
	}
}

static int ask(const struct sockaddr_in *sa, double seconds, size_t size)
{
	static char buf[MAX_SIZE];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned long transactions = 0;
	double start, end;

	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		perror("tcprr client: connect");
		return 1;
	}
	set_nodelay(fd);
	start = now();
	end = start + seconds;
	do {
		if (transfer(fd, buf, size, 1) < 0 || transfer(fd, buf, size, 0) < 0) {
			perror("tcprr client: the connection broke");
			return 1;
		}
		transactions++;
	} while (now() < end);
	end = now();
	printf("transactions=%lu seconds=%.3f tps=%.0f\n", transactions, end - start,
	       (double)transactions / (end - start));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;

	if (argc >= 4 && strcmp(argv[1], "server") == 0 && parse_addr(argv[2], argv[3], &sa) == 0)
		return serve(&sa);
	if (argc >= 5 && strcmp(argv[1], "client") == 0 && parse_addr(argv[2], argv[3], &sa) == 0) {
		double seconds = atof(argv[4]);
		long size = argc >= 6 ? atol(argv[5]) : 1;

		if (seconds > 0 && size > 0 && size <= MAX_SIZE)
			return ask(&sa, seconds, (size_t)size);
	}
	fprintf(stderr, "usage: tcprr server ADDR PORT | tcprr client ADDR PORT SECONDS [SIZE]\n");
	return 1;
}
