/*
 * The sandbox: each thread kind's filter lets through a call its work
 * makes and stops the process on one it does not (exit status 4, one line
 * on stderr naming the call and the kind); with the sandbox off nothing is
 * filtered. Each case runs in a forked child, since a filter cannot be
 * taken off again. And the io_uring engine's rings, which seccomp cannot
 * see into, refuse operations and files the engine does not use.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "disk/disk.h"
#include "disk/engine.h"
#include "sandbox/seccomp.h"

struct child_result {
	int status;
	char err[1024]; /* the child's stderr */
};

/* Runs body in a child with stderr on a pipe; what it printed and how it ended. */
static void run_child(void (*body)(void), struct child_result *r)
{
	int pipe_fds[2];
	ssize_t n, len = 0;
	pid_t child;

	assert_int_equal(pipe(pipe_fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		dup2(pipe_fds[1], STDERR_FILENO);
		close(pipe_fds[0]);
		body();
		_exit(0);
	}
	close(pipe_fds[1]);
	while ((n = read(pipe_fds[0], r->err + len, sizeof(r->err) - 1 - (size_t)len)) > 0)
		len += n;
	r->err[len] = '\0';
	close(pipe_fds[0]);
	assert_int_equal(waitpid(child, &r->status, 0), child);
}

static void enter(enum sandbox_thread kind)
{
	if (sandbox_prepare(NULL) < 0 || sandbox_enter(kind) < 0) {
		fprintf(stderr, "cannot enter the sandbox\n");
		_exit(1);
	}
}

/*
 * body said "allowed" after its allowed call, then died of the forbidden one,
 * with the line that names the call ("openat (257)") and the thread kind.
 */
static void assert_child_stopped_on(void (*body)(void), const char *kind, const char *call)
{
	struct child_result r;
	char line[256];

	snprintf(line, sizeof(line),
		 "vireo: sandbox: the %s thread made a forbidden system call, %s; stopping\n", kind,
		 call);
	run_child(body, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != SANDBOX_EXIT_STATUS)
		fail_msg("want exit status %d, got 0x%x; stderr: %s", SANDBOX_EXIT_STATUS,
			 r.status, r.err);
	if (!strstr(r.err, "allowed\n"))
		fail_msg("the allowed call did not work; stderr: %s", r.err);
	if (!strstr(r.err, line))
		fail_msg("want '%s' on stderr, got: %s", line, r.err);
}

static void say(const char *text)
{
	if (write(STDERR_FILENO, text, strlen(text)) < 0)
		_exit(1);
}

static void vcpu_runs_then_creates_a_vm(void)
{
	int fd = eventfd(0, 0);

	enter(SANDBOX_VCPU);
	/* Not a vCPU fd, but the filter lets the call reach the kernel, which says so. */
	if (ioctl(fd, KVM_RUN, 0) < 0 && errno == ENOTTY)
		say("allowed\n");
	ioctl(fd, KVM_CREATE_VM, 0);
}

static void test_vcpu_filter_allows_kvm_run_and_stops_on_kvm_create_vm(void **state)
{
	assert_child_stopped_on(vcpu_runs_then_creates_a_vm, "vcpu", "ioctl (16)");
}

static void run_true(void)
{
	execl("/bin/true", "true", (char *)NULL);
}

/* An open fails (EACCES) without stopping Vireo: see seccomp.c's open_fails. */
static void vcpu_cannot_open_then_execs(void)
{
	enter(SANDBOX_VCPU);
	if (open("/dev/null", O_RDONLY) < 0 && errno == EACCES)
		say("allowed\n");
	run_true();
}

static void test_vcpu_filter_refuses_open_and_stops_on_execve(void **state)
{
	assert_child_stopped_on(vcpu_cannot_open_then_execs, "vcpu", "execve (59)");
}

static void *thread_says_allowed(void *arg)
{
	say(arg);
	return NULL;
}

static void main_starts_a_thread_then_execs(void)
{
	pthread_t thread;

	enter(SANDBOX_MAIN);
	/* A restart creates vCPU threads: clone3 answers ENOSYS, glibc falls back to clone. */
	if (open("/dev/null", O_RDONLY) < 0 && errno == EACCES &&
	    pthread_create(&thread, NULL, thread_says_allowed, "allowed\n") == 0)
		pthread_join(thread, NULL);
	run_true();
}

static void test_main_filter_starts_threads_refuses_open_and_stops_on_execve(void **state)
{
	assert_child_stopped_on(main_starts_a_thread_then_execs, "main", "execve (59)");
}

static void main_forks(void)
{
	enter(SANDBOX_MAIN);
	say("allowed\n");
	syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); /* fork(): clone without CLONE_THREAD */
}

static void test_main_filter_stops_on_a_new_process(void **state)
{
	assert_child_stopped_on(main_forks, "main", "clone (56)");
}

static void slirp_makes_a_socket_then_runs_a_program(void)
{
	int fd;

	enter(SANDBOX_SLIRP);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd >= 0)
		say("allowed\n");
	run_true();
}

static void test_slirp_filter_allows_inet_sockets_and_stops_on_execve(void **state)
{
	assert_child_stopped_on(slirp_makes_a_socket_then_runs_a_program, "slirp", "execve (59)");
}

static void slirp_opens_a_unix_socket(void)
{
	enter(SANDBOX_SLIRP);
	say("allowed\n");
	socket(AF_UNIX, SOCK_STREAM, 0);
}

static void test_slirp_filter_stops_on_a_unix_socket(void **state)
{
	assert_child_stopped_on(slirp_opens_a_unix_socket, "slirp", "socket (41)");
}

/* DNS forwarding reads /etc/resolv.conf; nothing may be opened for writing. */
static void slirp_opens_read_only_then_for_writing(void)
{
	enter(SANDBOX_SLIRP);
	if (open("/dev/null", O_RDONLY) >= 0)
		say("allowed\n");
	open("/dev/null", O_WRONLY);
}

static void test_slirp_filter_opens_read_only_and_stops_on_a_write_open(void **state)
{
	assert_child_stopped_on(slirp_opens_read_only_then_for_writing, "slirp", "openat (257)");
}

/* --seccomp off: sandbox_prepare() never ran, so entering filters nothing. */
static void off_opens(void)
{
	int fd;

	if (sandbox_enter(SANDBOX_VCPU) < 0)
		_exit(1);
	fd = open("/dev/null", O_RDONLY);
	_exit(fd >= 0 ? 0 : 1);
}

static void test_sandbox_off_filters_nothing(void **state)
{
	struct child_result r;

	run_child(off_opens, &r);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
}

/* ---- the io_uring engine's rings ---- */

struct ring_fixture {
	char path[64];
	struct disk *disk;
	struct io_uring *ring;
};

static int ring_setup(void **state)
{
	struct ring_fixture *f = calloc(1, sizeof(*f));
	struct disk_config cfg = { .path = f->path };
	char err[256];
	int fd;

	strcpy(f->path, "/tmp/vireo-seccomp-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	f->disk = disk_open(&cfg, err, sizeof(err));
	unlink(f->path);
	assert_non_null(f->disk);
	disk_engine_start(f->disk, DISK_ENGINE_IO_URING, 8);
	f->ring = disk_engine_ring(f->disk);
	*state = f;
	return 0;
}

static int ring_teardown(void **state)
{
	struct ring_fixture *f = *state;

	disk_engine_stop(f->disk);
	disk_close(f->disk);
	free(f);
	return 0;
}

/* Submits the one prepared sqe and returns its completion's result. */
static int submit_one(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int res;

	assert_int_equal(io_uring_submit(ring), 1);
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

/* Reads the image's first sector through fd (a fixed-file slot with IOSQE_FIXED_FILE). */
static int ring_read(struct io_uring *ring, int fd, unsigned int flags)
{
	char buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	io_uring_prep_readv(sqe, fd, &iov, 1, 0);
	io_uring_sqe_set_flags(sqe, flags);
	return submit_one(ring);
}

static void test_engine_ring_reads_its_image_through_a_fixed_file(void **state)
{
	struct ring_fixture *f = *state;

	if (!f->ring)
		skip(); /* no io_uring on this host */
	assert_int_equal(ring_read(f->ring, 0, IOSQE_FIXED_FILE), 512); /* slot 0: the image */
}

static void test_engine_ring_refuses_a_file_that_is_not_fixed(void **state)
{
	struct ring_fixture *f = *state;

	if (!f->ring)
		skip();
	assert_int_equal(ring_read(f->ring, f->disk->fd, 0), -EACCES);
}

static void test_engine_ring_refuses_openat(void **state)
{
	struct ring_fixture *f = *state;
	struct io_uring_sqe *sqe;

	if (!f->ring)
		skip();
	sqe = io_uring_get_sqe(f->ring);
	io_uring_prep_openat(sqe, AT_FDCWD, "/dev/null", O_RDONLY, 0);
	io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE); /* so that only the opcode is wrong */
	assert_int_equal(submit_one(f->ring), -EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_filter_allows_kvm_run_and_stops_on_kvm_create_vm),
		cmocka_unit_test(test_vcpu_filter_refuses_open_and_stops_on_execve),
		cmocka_unit_test(test_main_filter_starts_threads_refuses_open_and_stops_on_execve),
		cmocka_unit_test(test_main_filter_stops_on_a_new_process),
		cmocka_unit_test(test_slirp_filter_allows_inet_sockets_and_stops_on_execve),
		cmocka_unit_test(test_slirp_filter_stops_on_a_unix_socket),
		cmocka_unit_test(test_slirp_filter_opens_read_only_and_stops_on_a_write_open),
		cmocka_unit_test(test_sandbox_off_filters_nothing),
		cmocka_unit_test_setup_teardown(test_engine_ring_reads_its_image_through_a_fixed_file,
						ring_setup, ring_teardown),
		cmocka_unit_test_setup_teardown(test_engine_ring_refuses_openat, ring_setup,
						ring_teardown),
		cmocka_unit_test_setup_teardown(test_engine_ring_refuses_a_file_that_is_not_fixed,
						ring_setup, ring_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
