/*
 * bench/randread.c: 4 KiB random reads with O_DIRECT, for bench/blk's guest.
 *
 *   randread [-j THREADS] [-s SECONDS] DEVICE   THREADS threads (default 1), each with one
 *                                               read in flight (so THREADS is the queue
 *                                               depth), for SECONDS (default 3); prints
 *                                               "ops=N seconds=S"
 *   randread now                                prints CLOCK_MONOTONIC in seconds with
 *                                               microseconds (the guest's busybox has no
 *                                               finer clock than /proc/uptime)
 *
 * Offsets are 4 KiB-aligned and uniform over the device, from a per-thread xorshift
 * generator. A thread is blocked in pread(2) most of the time, so 32 threads keep about 32
 * requests in flight on the device's queue even on one vCPU.
 *
 * Build (static, so it runs in the kit's busybox initramfs):
 *   gcc -static -O2 -pthread -o randread bench/randread.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define MAX_THREADS 256

struct worker {
	pthread_t thread;
	int fd;
	uint64_t blocks;
	uint64_t seed;
	uint64_t ops;
	int err;
	const volatile int *stop;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	void *buf;

	if (posix_memalign(&buf, BLOCK, BLOCK)) {
		w->err = ENOMEM;
		return NULL;
	}
	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		off_t off = (off_t)(xorshift(&w->seed) % w->blocks) * BLOCK;

		if (pread(w->fd, buf, BLOCK, off) != BLOCK) {
			w->err = errno ? errno : EIO;
			break;
		}
		w->ops++;
	}
	free(buf);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: randread [-j THREADS] [-s SECONDS] DEVICE | randread now\n");
	return 2;
}

int main(int argc, char **argv)
{
	static struct worker workers[MAX_THREADS];
	int threads = 1, opt, fd, err = 0;
	double seconds = 3, start, elapsed;
	volatile int stop = 0;
	uint64_t size = 0, ops = 0;
	struct timespec pause;

	if (argc == 2 && strcmp(argv[1], "now") == 0) {
		printf("%.6f\n", now());
		return 0;
	}
	while ((opt = getopt(argc, argv, "j:s:")) != -1) {
		if (opt == 'j')
			threads = atoi(optarg);
		else if (opt == 's')
			seconds = atof(optarg);
		else
			return usage();
	}
	if (optind != argc - 1 || threads < 1 || threads > MAX_THREADS || seconds <= 0)
		return usage();
	fd = open(argv[optind], O_RDONLY | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "randread: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
		off_t end = lseek(fd, 0, SEEK_END);

		size = end > 0 ? (uint64_t)end : 0;
	}
	if (size < BLOCK) {
		fprintf(stderr, "randread: %s: too small\n", argv[optind]);
		return 1;
	}
	start = now();
	for (int i = 0; i < threads; i++) {
		workers[i] = (struct worker){ .fd = fd, .blocks = size / BLOCK,
					      .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1),
					      .stop = &stop };
		if (pthread_create(&workers[i].thread, NULL, work, &workers[i])) {
			fprintf(stderr, "randread: cannot start thread %d\n", i);
			return 1;
		}
	}
	pause.tv_sec = (time_t)seconds;
	pause.tv_nsec = (long)((seconds - (double)pause.tv_sec) * 1e9);
	nanosleep(&pause, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		ops += workers[i].ops;
		if (workers[i].err)
			err = workers[i].err;
	}
	elapsed = now() - start;
	if (err) {
		fprintf(stderr, "randread: %s: %s\n", argv[optind], strerror(err));
		return 1;
	}
	printf("ops=%llu seconds=%.6f\n", (unsigned long long)ops, elapsed);
	return 0;
}
