/*
 * The seccomp-bpf sandbox: once a VM's files are open and its set-up is
 * done, each thread holds an allow-list of the system calls its kind of
 * work needs, with ioctls allowed by request number. Anything else stops
 * the whole process with one line on stderr naming the call and the kind
 * of thread that made it, and exit status SANDBOX_EXIT_STATUS.
 *
 * Filters stack: a thread created after one was installed inherits it, and
 * adding its own leaves it the intersection. The main thread creates vCPU
 * threads on a --reboot restart, so its list holds everything a vCPU thread
 * needs too; every thread then ends with its own list exactly.
 */
#ifndef VIREO_SANDBOX_SECCOMP_H
#define VIREO_SANDBOX_SECCOMP_H

/* vireo's exit status after a forbidden call (0-3 are enum vm_exit's). */
#define SANDBOX_EXIT_STATUS 4

enum sandbox_thread {
	SANDBOX_MAIN,  /* the I/O thread: event loop, devices, rebuilding the VM on a restart */
	SANDBOX_VCPU,  /* KVM_RUN and the exits handled on the vCPU's own thread */
	SANDBOX_SLIRP, /* libslirp's thread: the sockets of user-mode networking */
};

/*
 * Once per process, before any sandbox_enter(): turns the sandbox on and
 * installs the SIGSYS handler that reports a forbidden call. before_exit
 * (may be NULL) runs in that handler, so it must be async-signal-safe and
 * make only calls that every thread kind may make (restoring the terminal).
 */
int sandbox_prepare(void (*before_exit)(void));

/*
 * Installs kind's filter on the calling thread (and sets no_new_privs);
 * does nothing when sandbox_prepare() was not called. 0 or -errno.
 */
int sandbox_enter(enum sandbox_thread kind);

#endif
