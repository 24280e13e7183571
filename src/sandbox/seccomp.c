/*
 * The allow-lists behind seccomp.h, built with libseccomp. Each list is made
 * of groups, and each group says why its calls are there. They were checked
 * against the guest tier's scenarios (disks raw and qcow2, both engines,
 * cache=none, backing files; TAP with and without vhost-net, a bridge, user
 * networking with DNS and hostfwd; virtio-console, virtio-rng, --reboot
 * restart) run by a build whose filters logged instead of trapping and
 * noted every ioctl's request number per thread kind.
 *
 * A forbidden call raises SIGSYS (SCMP_ACT_TRAP) rather than killing at
 * once, so that the process can say what happened: the handler writes one
 * line with write(2), restores the terminal, and _exit()s with
 * SANDBOX_EXIT_STATUS. Syscall names are looked up before any filter is
 * installed, since the lookup allocates and a signal handler must not.
 */
#include "sandbox/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/vhost.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* One rule: the call is allowed, or allowed when ((argument & mask) == value). */
struct allow {
	int nr;
	int arg; /* -1: whatever the arguments */
	uint32_t mask, value;
};

#define ANY(call) { SCMP_SYS(call), -1, 0, 0 }
#define ARG_IS(call, n, v) { SCMP_SYS(call), n, UINT32_MAX, (uint32_t)(v) }
#define ARG_MASKED(call, n, m, v) { SCMP_SYS(call), n, m, v }
#define IOCTL(request) ARG_IS(ioctl, 1, request)

struct allow_group {
	const struct allow *rules;
	size_t nr_rules;
};

/* glibc's internal signal numbers (nptl/pthreadP.h); SIGRTMIN is above them. */
#define GLIBC_SIGSETXID 33

#define GROUP(rules) { rules, sizeof(rules) / sizeof(rules[0]) }

/* Any thread of this process. */
static const struct allow any_thread[] = {
	/* Locks, thread exit and joins; a thread's end frees its stack. */
	ANY(futex), ANY(exit), ANY(madvise), ANY(munmap),
	/* malloc, with no executable memory. */
	ANY(brk), ARG_MASKED(mmap, 2, PROT_EXEC, 0), ARG_MASKED(mprotect, 2, PROT_EXEC, 0),
	/* One-line errors on stderr, this file's own report, and the exit after it. */
	ANY(write), ANY(exit_group),
	/* The report restores the terminal (tcsetattr) before the exit. */
	IOCTL(TCSETS),
	/*
	 * Signal handlers return (the vCPU kick), glibc masks signals around its
	 * work, and a sleep that a signal cut short resumes.
	 */
	ANY(rt_sigreturn), ANY(rt_sigprocmask), ANY(restart_syscall),
	/* Time, where the vDSO falls back to the system call (the nested machine's clock). */
	ANY(clock_gettime),
	/* abort() on a broken invariant; pthread_kill() for the vCPU kick. */
	ANY(getpid), ANY(gettid), ANY(tgkill),
};

/* vCPU threads: KVM_RUN and the exits handled on the vCPU's own thread. */
static const struct allow vcpu_run[] = {
	IOCTL(KVM_RUN),
	/* The registers named in a failure or a triple fault. */
	IOCTL(KVM_GET_REGS), IOCTL(KVM_GET_SREGS),
	/* The serial port's interrupt line (a port write raises it, console input too). */
	IOCTL(KVM_IRQ_LINE),
};

/*
 * What a guest's register writes run on a vCPU thread: a device's status
 * (DRIVER_OK starts the queues, 0 resets them) and its config space. A start
 * or reset watches or stops watching fds, waits for a disk's requests in
 * flight (io_uring_enter, then the eventfd's read), arms or clears timers,
 * hands the queues to vhost-net or takes them back, and sets the TAP's
 * offloads to what was negotiated. Eventfds wake the I/O thread and
 * interrupt the guest (write, above).
 */
static const struct allow device_control[] = {
	ANY(epoll_ctl), ANY(timerfd_settime), ANY(read), ANY(io_uring_enter),
	IOCTL(TUNSETOFFLOAD),
	IOCTL(VHOST_SET_FEATURES), IOCTL(VHOST_SET_MEM_TABLE), IOCTL(VHOST_SET_VRING_NUM),
	IOCTL(VHOST_SET_VRING_BASE), IOCTL(VHOST_GET_VRING_BASE), IOCTL(VHOST_SET_VRING_ADDR),
	IOCTL(VHOST_SET_VRING_KICK), IOCTL(VHOST_SET_VRING_CALL), IOCTL(VHOST_NET_SET_BACKEND),
};

/* The I/O thread's event loop (eventfds, timerfds, the signalfd: read) and the devices' work. */
static const struct allow io_thread[] = {
	ANY(epoll_wait), ANY(close),
	/* Disk images: the sync engine and the formats, fdatasync for a flush, discard. */
	ANY(preadv), ANY(pwritev), ANY(fdatasync), ANY(fallocate),
	/* A probed raw image reads its first 4 KiB before a write there (disk/probe.h). */
	ANY(pread64),
	/* The io_uring engine; it adds a backing file to its ring's fixed files, empties them at exit. */
	ANY(io_uring_enter), ARG_IS(io_uring_register, 1, IORING_REGISTER_FILES_UPDATE),
	ARG_IS(io_uring_register, 1, IORING_UNREGISTER_FILES),
	/* Frames: TAP (readv, writev), the user backend's socketpair (sendmsg, recvmsg). */
	ANY(readv), ANY(writev), ANY(sendmsg), ANY(recvmsg),
	/* virtio-rng. */
	ANY(getrandom),
	/* The console asks whether stdin is a terminal (isatty) on every boot. */
	IOCTL(TCGETS),
	/*
	 * virtio-console makes its output non-blocking unless it is a regular
	 * file (fstat), and gives it its flags back when the device goes.
	 */
	ARG_IS(fcntl, 1, F_GETFL), ARG_IS(fcntl, 1, F_SETFL), ANY(fstat),
	ARG_IS(newfstatat, 3, AT_EMPTY_PATH),
};

/*
 * --reboot restart builds the VM again on the kept /dev/kvm fd, with no file
 * to open: a VM, memory (a memfd with shared=on), its devices' eventfds and
 * timers, vCPUs and their threads. Threads only: clone without CLONE_THREAD
 * (a new process) is refused, and clone3 answers ENOSYS (its flags are out
 * of a filter's reach), after which glibc uses clone. A new thread starts
 * under this filter and installs its own, which can only take calls away.
 */
static const struct allow rebuild[] = {
	IOCTL(KVM_CREATE_VM), IOCTL(KVM_SET_TSS_ADDR), IOCTL(KVM_SET_IDENTITY_MAP_ADDR),
	IOCTL(KVM_CREATE_IRQCHIP), IOCTL(KVM_CREATE_PIT2), IOCTL(KVM_SET_USER_MEMORY_REGION),
	IOCTL(KVM_IOEVENTFD), IOCTL(KVM_IRQFD), IOCTL(KVM_GET_SUPPORTED_CPUID),
	IOCTL(KVM_CREATE_VCPU), IOCTL(KVM_SET_CPUID2), IOCTL(KVM_SET_MSRS), IOCTL(KVM_SET_FPU),
	IOCTL(KVM_GET_LAPIC), IOCTL(KVM_SET_LAPIC), IOCTL(KVM_SET_SREGS), IOCTL(KVM_SET_REGS),
	ANY(epoll_create1), ANY(eventfd2), ANY(timerfd_create), ANY(memfd_create), ANY(ftruncate),
	ARG_MASKED(clone, 0, CLONE_THREAD, CLONE_THREAD), ANY(set_robust_list), ANY(rseq),
	ARG_IS(prctl, 0, PR_SET_NO_NEW_PRIVS), ARG_IS(seccomp, 0, SECCOMP_SET_MODE_FILTER),
	/* glibc's first thread installs its set*id broadcast handler (SIGSETXID, SIGRTMIN+1). */
	ARG_IS(rt_sigaction, 0, GLIBC_SIGSETXID),
};

/*
 * libslirp's thread: its poll loop, the frames to and from the device
 * (sendmsg, recvfrom), and the IPv4 and IPv6 sockets of the guest's
 * connections, DNS forwarding and hostfwd, made non-blocking with fcntl.
 * DNS forwarding reads /etc/resolv.conf when it changes (stat, then a
 * read-only open): a filter cannot check a path, so only the jail keeps the
 * rest of the host's files out of this thread's reach.
 */
static const struct allow slirp[] = {
	ANY(poll), ANY(read), ANY(close), ANY(sendmsg), ANY(recvmsg), ANY(sendto), ANY(recvfrom),
	ARG_IS(socket, 0, AF_INET), ARG_IS(socket, 0, AF_INET6), ANY(connect), ANY(accept),
	ANY(bind), ANY(listen), ANY(shutdown), ANY(setsockopt), ANY(getsockopt),
	ANY(getsockname), ANY(getpeername), IOCTL(FIONREAD),
	ARG_IS(fcntl, 1, F_GETFL), ARG_IS(fcntl, 1, F_SETFL),
	ARG_MASKED(openat, 2, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY), ANY(newfstatat),
};

struct thread_kind {
	const char *name;
	struct allow_group groups[5];
	/*
	 * open() fails with EACCES instead of stopping Vireo: a library may look
	 * for an optional file at any time (glib's logging reads its charset
	 * aliases; it stopped a VM at power-off under libslirp's cleanup). No
	 * file is opened either way.
	 */
	bool open_fails;
};

static const struct thread_kind thread_kinds[] = {
	[SANDBOX_MAIN] = { "main", { GROUP(any_thread), GROUP(io_thread), GROUP(rebuild),
				     GROUP(device_control), GROUP(vcpu_run) }, true },
	[SANDBOX_VCPU] = { "vcpu", { GROUP(any_thread), GROUP(vcpu_run), GROUP(device_control) },
			   true },
	[SANDBOX_SLIRP] = { "slirp", { GROUP(any_thread), GROUP(slirp) } },
};

#define MAX_SYSCALL 512
#define NAME_LEN 24

/*
 * Process-wide, like the filters themselves: whether the sandbox is on, the
 * syscall names for the report, and what runs before the exit. Written once
 * by sandbox_prepare() before any thread enters the sandbox.
 */
static struct {
	bool on;
	void (*before_exit)(void);
	char names[MAX_SYSCALL][NAME_LEN];
} sandbox;

/* The kind of the calling thread's filter, for the report. */
static __thread const char *thread_kind_name;

/* The report's line, built without stdio (not async-signal-safe). */
struct report {
	char text[256];
	size_t len;
};

static void report_add(struct report *r, const char *text)
{
	while (*text && r->len < sizeof(r->text))
		r->text[r->len++] = *text++;
}

static void report_add_number(struct report *r, unsigned int n)
{
	char digits[12];
	size_t k = sizeof(digits) - 1;

	digits[k] = '\0';
	do {
		digits[--k] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	report_add(r, &digits[k]);
}

/* SIGSYS from a filter: one line, and out. Async-signal-safe calls only. */
static void sandbox_violation(int sig, siginfo_t *info, void *context)
{
	unsigned int nr = (unsigned int)info->si_syscall;
	struct report r = { .len = 0 };

	(void)sig;
	(void)context;
	report_add(&r, "vireo: sandbox: the ");
	/* A new thread runs under the main thread's filter until it installs its own. */
	report_add(&r, thread_kind_name ? thread_kind_name : "main");
	report_add(&r, " thread made a forbidden system call, ");
	report_add(&r, nr < MAX_SYSCALL && sandbox.names[nr][0] ? sandbox.names[nr] : "?");
	report_add(&r, " (");
	report_add_number(&r, nr);
	report_add(&r, "); stopping\n");
	if (write(STDERR_FILENO, r.text, r.len) < 0) {
		/* nowhere else to say it */
	}
	if (sandbox.before_exit)
		sandbox.before_exit();
	_exit(SANDBOX_EXIT_STATUS);
}

int sandbox_prepare(void (*before_exit)(void))
{
	struct sigaction sa = { .sa_sigaction = sandbox_violation, .sa_flags = SA_SIGINFO };

	for (int nr = 0; nr < MAX_SYSCALL; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (name)
			strncpy(sandbox.names[nr], name, NAME_LEN - 1);
		free(name);
	}
	sandbox.before_exit = before_exit;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	sandbox.on = true;
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, const struct allow *a)
{
	if (a->arg < 0)
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, a->nr, 0);
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, a->nr, 1,
				SCMP_CMP32((unsigned int)a->arg, SCMP_CMP_MASKED_EQ, a->mask,
					   a->value));
}

static int build_filter(scmp_filter_ctx ctx, const struct thread_kind *kind)
{
	int err = 0;

	for (size_t g = 0; !err && g < sizeof(kind->groups) / sizeof(kind->groups[0]); g++)
		for (size_t i = 0; !err && i < kind->groups[g].nr_rules; i++)
			err = add_rule(ctx, &kind->groups[g].rules[i]);
	/* glibc falls back to clone, whose flags a filter can read. */
	if (!err)
		err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (!err && kind->open_fails)
		err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
	return err;
}

int sandbox_enter(enum sandbox_thread kind)
{
	scmp_filter_ctx ctx;
	int err;

	if (!sandbox.on)
		return 0;
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	err = build_filter(ctx, &thread_kinds[kind]);
	if (!err) {
		thread_kind_name = thread_kinds[kind].name;
		err = seccomp_load(ctx); /* sets no_new_privs first (SCMP_FLTATR_CTL_NNP) */
	}
	seccomp_release(ctx);
	return err;
}
