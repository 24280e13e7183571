/*
 * The jail: see jail.h. What the VM process ends up in, in this order:
 *
 *   - a cgroup of its own, <parent>/<name>-<launcher's pid>, with the limits
 *     --jail gives (memory.max, cpu.max, pids.max); the launcher makes it and
 *     removes it when the VM has ended;
 *   - new PID, mount, IPC, UTS and cgroup namespaces, and a new network
 *     namespace unless user networking needs the host's (TAPs opened before
 *     keep working from a new one);
 *   - an empty, read-only tmpfs as its root, the old root detached (with user
 *     networking, a copy of /etc/resolv.conf is all it holds);
 *   - rlimits: no core dumps (they would hold guest memory), and room for the
 *     descriptors it holds plus what a boot opens;
 *   - the given uid and gid, no supplementary groups, no capabilities (the
 *     bounding set included), and no_new_privs.
 *
 * A new PID namespace takes effect for children, hence the fork: the launcher
 * stays outside in the host's namespaces, so that it can remove the cgroup.
 * RLIMIT_FSIZE is left alone: it would cap the growth of qcow2 images too.
 */
#include "sandbox/jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Descriptors a boot opens (one per vCPU, a few per device) and user networking's sockets. */
#define JAIL_SPARE_FDS 1024
#define JAIL_CGROUP_WAIT_MS 5000 /* for the VM's cgroup to be empty after the VM */

/* One limit of the VM's cgroup: the file, the controller it needs, what to write. */
struct cgroup_limit {
	const char *controller;
	const char *file;
	char value[32]; /* empty: no limit */
};

static int cgroup_write(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int cgroup_read(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static bool in_cgroup2(const char *path)
{
	struct statfs fs;

	return statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

/* The parent cgroup, made when missing inside a cgroup2 file system. */
static int cgroup_make_parent(const char *parent)
{
	bool exists = access(parent, F_OK) == 0;
	char where[PATH_MAX];
	char *slash;

	snprintf(where, sizeof(where), "%s", parent);
	slash = strrchr(where, '/');
	if (!exists && slash)
		slash[slash == where] = '\0'; /* the directory it would be made in */
	if (!in_cgroup2(where)) {
		fprintf(stderr,
			"vireo: --jail: '%s' is not in a cgroup2 file system (is cgroup v2 "
			"mounted at /sys/fs/cgroup?)\n",
			where);
		return -ENOTDIR;
	}
	if (!exists && mkdir(parent, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "vireo: --jail: cannot make cgroup '%s': %s\n", parent,
			strerror(errno));
		return -errno;
	}
	return 0;
}

/* Enables a controller for the parent's children: it must be offered to the parent. */
static int cgroup_enable(const char *parent, const char *controller)
{
	char offered[512], *word, *cursor;
	int err = cgroup_read(parent, "cgroup.controllers", offered, sizeof(offered));

	for (cursor = offered; !err && (word = strsep(&cursor, " \n")) != NULL;) {
		if (strcmp(word, controller) == 0) {
			char plus[32];

			snprintf(plus, sizeof(plus), "+%s", controller);
			err = cgroup_write(parent, "cgroup.subtree_control", plus);
			break;
		}
	}
	if (!err && !word) {
		fprintf(stderr,
			"vireo: --jail: cgroup '%s' has no %s controller: enable it in the "
			"cgroup.subtree_control above it\n",
			parent, controller);
		return -ENOENT;
	}
	if (err)
		fprintf(stderr, "vireo: --jail: cannot enable the %s controller in cgroup '%s': %s\n",
			controller, parent, strerror(-err));
	return err;
}

/* Makes the VM's cgroup (its path in path) with the limits jail gives. */
static int cgroup_make(const struct jail_config *jail, const char *vm_name, char *path,
		       size_t len)
{
	struct cgroup_limit limits[] = {
		{ "memory", "memory.max", "" },
		{ "cpu", "cpu.max", "" },
		{ "pids", "pids.max", "" },
	};
	int err;

	if (jail->memory_max)
		snprintf(limits[0].value, sizeof(limits[0].value), "%" PRIu64, jail->memory_max);
	if (jail->cpu_quota_us)
		snprintf(limits[1].value, sizeof(limits[1].value), "%" PRIu64 " %d",
			 jail->cpu_quota_us, JAIL_CPU_PERIOD_US);
	if (jail->pids_max)
		snprintf(limits[2].value, sizeof(limits[2].value), "%u", jail->pids_max);
	err = cgroup_make_parent(jail->cgroup_parent);
	for (size_t i = 0; !err && i < sizeof(limits) / sizeof(limits[0]); i++)
		if (limits[i].value[0])
			err = cgroup_enable(jail->cgroup_parent, limits[i].controller);
	if (err)
		return err;
	snprintf(path, len, "%s/%s-%d", jail->cgroup_parent, vm_name, (int)getpid());
	if (mkdir(path, 0755) < 0) {
		fprintf(stderr, "vireo: --jail: cannot make cgroup '%s': %s\n", path,
			strerror(errno));
		return -errno;
	}
	for (size_t i = 0; !err && i < sizeof(limits) / sizeof(limits[0]); i++) {
		if (!limits[i].value[0])
			continue;
		err = cgroup_write(path, limits[i].file, limits[i].value);
		if (err)
			fprintf(stderr, "vireo: --jail: cgroup '%s': cannot set %s to %s: %s\n", path,
				limits[i].file, limits[i].value, strerror(-err));
	}
	if (err)
		rmdir(path);
	return err;
}

/*
 * The VM's cgroup can still be busy for a moment after its process has been
 * reaped (seen under load after an OOM kill): the removal waits a little.
 */
static void cgroup_remove(const char *cgroup)
{
	for (int waited = 0; rmdir(cgroup) < 0; waited += 10) {
		if (errno != EBUSY || waited >= JAIL_CGROUP_WAIT_MS) {
			fprintf(stderr, "vireo: cannot remove cgroup '%s': %s\n", cgroup,
				strerror(errno));
			return;
		}
		usleep(10000);
	}
}

/* How the VM ended, when it did not exit by itself: the OOM killer is named. */
static void report_killed(const char *cgroup, int sig)
{
	char events[512], *oom;

	if (sig == SIGKILL && cgroup_read(cgroup, "memory.events", events, sizeof(events)) == 0 &&
	    (oom = strstr(events, "oom_kill ")) && atoi(oom + 9) > 0)
		fprintf(stderr,
			"vireo: the jailed VM was killed for want of memory: it needs more than "
			"its cgroup's memory.max\n");
	else
		fprintf(stderr, "vireo: the jailed VM was killed by signal %d (%s)\n", sig,
			strsignal(sig));
}

/* The launcher: waits for the VM, passing it the stop signals; exits with its status. */
static void __attribute__((noreturn)) jail_wait(pid_t vm, const sigset_t *wait_set,
						const char *cgroup)
{
	siginfo_t info;
	int status;

	/* It holds nothing of the VM's: what the VM closes is closed. */
	close_range(3, ~0U, 0);
	for (;;) {
		int sig = sigwaitinfo(wait_set, &info);

		if (sig == SIGCHLD && waitpid(vm, &status, WNOHANG) == vm)
			break;
		if (sig > 0 && sig != SIGCHLD)
			kill(vm, sig);
	}
	if (WIFSIGNALED(status))
		report_killed(cgroup, WTERMSIG(status));
	cgroup_remove(cgroup);
	/* exit(), not _exit(): it restores a terminal the VM left raw. */
	exit(WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE);
}

/* The highest descriptor open, read from /proc while it is still there. */
static int highest_fd(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *d;
	int highest = -1;

	if (!dir)
		return -errno;
	while ((d = readdir(dir)) != NULL)
		if (atoi(d->d_name) > highest)
			highest = atoi(d->d_name);
	closedir(dir);
	return highest;
}

/*
 * libslirp forwards the guest's DNS queries to the first nameserver of
 * /etc/resolv.conf, which it reads while the VM runs: user networking gets a
 * copy of the host's (its first 4 KiB: the nameserver lines come first).
 */
static int copy_resolv_conf(int root_fd)
{
	char text[4096];
	int in = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		return errno == ENOENT ? 0 : -errno; /* libslirp then asks 127.0.0.1 */
	n = read(in, text, sizeof(text));
	close(in);
	if (n < 0 || mkdirat(root_fd, "etc", 0755) < 0)
		return -errno;
	out = openat(root_fd, "etc/resolv.conf", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	if (write(out, text, (size_t)n) != n)
		n = -1;
	close(out);
	return n < 0 ? -EIO : 0;
}

/*
 * A new tmpfs, read-only, holding nothing (or what copy_resolv_conf() puts
 * there): a mount not yet attached anywhere; its fd in *mnt_fd.
 */
static int make_root(const struct jail_config *jail, int *mnt_fd)
{
	struct mount_attr read_only = { .attr_set = MOUNT_ATTR_RDONLY };
	int fs_fd, err = 0;

	*mnt_fd = -1;
	fs_fd = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs_fd < 0)
		return -errno;
	if (fsconfig(fs_fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		*mnt_fd = fsmount(fs_fd, FSMOUNT_CLOEXEC,
				  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (*mnt_fd < 0)
		err = -errno;
	close(fs_fd);
	if (!err && jail->resolv_conf)
		err = copy_resolv_conf(*mnt_fd);
	if (!err && mount_setattr(*mnt_fd, "", AT_EMPTY_PATH, &read_only, sizeof(read_only)) < 0)
		err = -errno;
	return err;
}

/*
 * The new root is mounted on top of the old one, so "." is both: pivot_root(2)
 * stacks the old root on the new one and the detach takes it off. An initial
 * ramfs cannot be pivoted away (EINVAL): on a host running from one, the
 * process is chrooted into the tmpfs that covers it, and without
 * CAP_SYS_CHROOT it cannot climb out.
 */
static int enter_new_root(const struct jail_config *jail)
{
	int mnt_fd, err;

	/* Private first, so that nothing done here reaches the host's mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	err = make_root(jail, &mnt_fd);
	if (!err && (move_mount(mnt_fd, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0 ||
		     fchdir(mnt_fd) < 0))
		err = -errno;
	if (mnt_fd >= 0)
		close(mnt_fd);
	if (err)
		return err;
	if (syscall(SYS_pivot_root, ".", ".") == 0)
		err = umount2(".", MNT_DETACH);
	else
		err = errno == EINVAL ? chroot(".") : -1;
	return err < 0 || chdir("/") < 0 ? -errno : 0;
}

static int set_limits(int highest)
{
	struct rlimit no_core = { 0, 0 }, files;

	if (getrlimit(RLIMIT_NOFILE, &files) < 0)
		return -errno;
	files.rlim_cur = (rlim_t)highest + 1 + JAIL_SPARE_FDS;
	if (files.rlim_cur > files.rlim_max)
		files.rlim_cur = files.rlim_max;
	files.rlim_max = files.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &files) < 0 || setrlimit(RLIMIT_CORE, &no_core) < 0)
		return -errno;
	return 0;
}

static int drop_privileges(const struct jail_config *jail)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { 0 };

	/* The bounding set first: dropping from it takes CAP_SETPCAP. */
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
	    setgroups(0, NULL) < 0 || setresgid(jail->gid, jail->gid, jail->gid) < 0 ||
	    setresuid(jail->uid, jail->uid, jail->uid) < 0 ||
	    syscall(SYS_capset, &header, none) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    /* After the uid change, which clears it: a VM does not outlive its launcher. */
	    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

/* The child's part, in the order of the file's comment; why names the step that failed. */
static int lock_in(const struct jail_config *jail, const char *cgroup, const char **why)
{
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
	int err, highest;

	if (jail->netns == JAIL_NETNS_NEW)
		flags |= CLONE_NEWNET;
	*why = "cannot join the VM's cgroup";
	err = cgroup_write(cgroup, "cgroup.procs", "0");
	if (err)
		return err;
	*why = "cannot make the jail's namespaces";
	if (unshare(flags) < 0)
		return -errno;
	*why = "cannot count the open descriptors";
	highest = highest_fd();
	if (highest < 0)
		return highest;
	*why = "cannot make the empty root";
	err = enter_new_root(jail);
	if (err)
		return err;
	*why = "cannot set the resource limits";
	err = set_limits(highest);
	if (err)
		return err;
	*why = "cannot drop privileges";
	return drop_privileges(jail);
}

int jail_enter(const struct jail_config *jail, const char *vm_name, const sigset_t *stop_signals)
{
	char cgroup[PATH_MAX];
	sigset_t wait_set, old_mask;
	const char *why = "cannot make a PID namespace";
	pid_t vm = -1;
	int err;

	err = cgroup_make(jail, vm_name, cgroup, sizeof(cgroup));
	if (err)
		return err;
	/* Blocked before the fork, so that the launcher's sigwaitinfo() misses none. */
	wait_set = *stop_signals;
	sigaddset(&wait_set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &wait_set, &old_mask);
	if (unshare(CLONE_NEWPID) == 0) {
		why = "cannot fork the jailed process";
		vm = fork();
	}
	if (vm > 0)
		jail_wait(vm, &wait_set, cgroup);
	if (vm == 0) {
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		err = lock_in(jail, cgroup, &why);
	} else {
		err = -errno;
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		rmdir(cgroup);
	}
	if (err)
		fprintf(stderr, "vireo: --jail: %s: %s\n", why, strerror(-err));
	return err;
}
