/*
 * bench/firstrun.c: an LD_PRELOAD shim that notes when a VMM first enters its guest.
 *
 * It wraps ioctl(2): on the process's first KVM_RUN it writes the time (CLOCK_REALTIME,
 * seconds with microseconds, the clock of bash's $EPOCHREALTIME) to the file named by
 * BENCH_FIRSTRUN_FILE, then passes every call on unchanged. The cost is one comparison per
 * ioctl. It works for any VMM that calls ioctl() through the C library (Vireo, QEMU).
 *
 * The file is opened when the shim is loaded, before the VMM starts: Vireo's vCPU threads
 * may not open files (its seccomp sandbox), and the first KVM_RUN comes from one of them.
 * It stays open until the process exits, for the same reason.
 *
 * Build: gcc -O2 -shared -fPIC -o firstrun.so bench/firstrun.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef int (*ioctl_fn)(int, unsigned long, ...);

static int first_run_fd = -1;

__attribute__((constructor)) static void open_first_run_file(void)
{
	const char *path = getenv("BENCH_FIRSTRUN_FILE");

	if (path && *path)
		first_run_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

static void note_first_run(void)
{
	static int done;
	struct timespec now;
	char text[64];
	int len;

	if (first_run_fd < 0 || __atomic_exchange_n(&done, 1, __ATOMIC_RELAXED))
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	len = snprintf(text, sizeof(text), "%lld.%06ld\n", (long long)now.tv_sec,
		       now.tv_nsec / 1000);
	if (write(first_run_fd, text, (size_t)len) != len) {
		/* nothing to do: the figure is reported as missing */
	}
}

int ioctl(int fd, unsigned long request, ...)
{
	static ioctl_fn real;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	if (request == KVM_RUN)
		note_first_run();
	return real(fd, request, arg);
}
