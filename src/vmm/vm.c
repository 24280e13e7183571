/*
 * VM lifecycle. The main thread is the I/O thread: it runs the event loop
 * (console input, stop requests, signals). Each vCPU has its own thread.
 * Anything that ends the VM (a power request from a device, a vCPU exit,
 * Ctrl-A x, a signal) records the first reason and wakes the event loop,
 * which kicks every vCPU out of KVM_RUN and joins them.
 */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/cpuid.h"
#include "kvm/kvm.h"
#include "kvm/probe.h"
#include "kvm/vcpu.h"
#include "disk/disk.h"
#include "sandbox/seccomp.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/console.h"
#include "virtio/rng.h"
#include "vmm/console.h"
#include "vmm/event_loop.h"
#include "vmm/guest_mem.h"
#include "vmm/terminal.h"
#include "x86/board.h"
#include "x86/boot.h"
#include "x86/layout.h"
#include "sandbox/jail.h"

#define VM_RUNNING (-1)

/* A file read whole, mapped read-only. */
struct mapped_file {
	const uint8_t *data;
	size_t len;
};

struct vm;

struct vm_vcpu {
	struct vcpu vcpu;
	struct vm *vm;
};

struct vm {
	const struct vm_config *cfg;
	const struct mapped_file *kernel;
	const struct mapped_file *initramfs;
	int serial_fd;
	struct kvm kvm;
	struct guest_mem mem;
	struct board board;
	struct disk *disks[CONFIG_MAX_DISKS];	     /* opened once, kept across restarts */
	struct virtio_blk *blks[CONFIG_MAX_DISKS]; /* one per disk, per boot */
	int nr_blks;
	struct virtio_rng *rng;		/* per boot, NULL with --rng off */
	struct virtio_console *vcon;	/* per boot, NULL without --console virtio */
	struct net_backend *nets[CONFIG_MAX_NICS]; /* opened once, kept across restarts */
	struct virtio_net *nics[CONFIG_MAX_NICS];  /* one per backend, per boot */
	int nr_nics;
	struct vm_vcpu *vcpus;
	unsigned int nr_vcpus;	 /* created */
	unsigned int nr_started; /* with a running thread */
	struct event_loop loop;
	struct console console;
	int stop_fd;		 /* eventfd: written when stop_reason is set */
	atomic_int stop_reason;	 /* VM_RUNNING, then the first enum vm_exit */
	int signal_fd;
	sigset_t stop_signals;	 /* blocked; they arrive on signal_fd */
	bool sandboxed; /* the main thread holds its filter: once per process, kept on restarts */
	struct event_handler stop_handler;
	struct event_handler signal_handler;
};

static void vm_request_stop(struct vm *vm, enum vm_exit reason)
{
	int running = VM_RUNNING;
	uint64_t one = 1;

	if (atomic_compare_exchange_strong(&vm->stop_reason, &running, (int)reason))
		if (write(vm->stop_fd, &one, sizeof(one)) < 0)
			perror("vireo: waking the event loop");
}

static void vm_power_request(void *opaque, enum power_request request)
{
	vm_request_stop(opaque, request == POWER_OFF ? VM_EXIT_POWEROFF : VM_EXIT_REBOOT);
}

static void vm_console_quit(void *opaque)
{
	vm_request_stop(opaque, VM_EXIT_STOPPED);
}

static void vm_on_stop(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;

	(void)events;
	vm->loop.stop = true;
}

static void vm_on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo info;

	(void)events;
	if (read(vm->signal_fd, &info, sizeof(info)) == sizeof(info))
		vm_request_stop(vm, VM_EXIT_STOPPED);
}

static void *vcpu_thread(void *opaque)
{
	struct vm_vcpu *v = opaque;
	int err = sandbox_enter(SANDBOX_VCPU);

	if (err) {
		fprintf(stderr, "vireo: vCPU %u: cannot install its seccomp filter: %s\n", v->vcpu.id,
			strerror(-err));
		vm_request_stop(v->vm, VM_EXIT_ERROR);
		return NULL;
	}
	switch (vcpu_run(&v->vcpu)) {
	case VCPU_STOPPED:
		break;
	case VCPU_SHUTDOWN:
		vm_request_stop(v->vm, VM_EXIT_REBOOT);
		break;
	case VCPU_POWEROFF:
		vm_request_stop(v->vm, VM_EXIT_POWEROFF);
		break;
	case VCPU_FAILED:
		vm_request_stop(v->vm, VM_EXIT_ERROR);
		break;
	}
	return NULL;
}

static int map_file(const char *path, const char *what, struct mapped_file *file)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *data;

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "vireo: %s '%s': %s\n", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		fprintf(stderr, "vireo: %s '%s': %s\n", what, path,
			S_ISREG(st.st_mode) ? "the file is empty" : "not a regular file");
		close(fd);
		return -1;
	}
	data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (data == MAP_FAILED) {
		fprintf(stderr, "vireo: %s '%s': %s\n", what, path, strerror(errno));
		return -1;
	}
	file->data = data;
	file->len = (size_t)st.st_size;
	return 0;
}

static void unmap_file(struct mapped_file *file)
{
	if (file->data)
		munmap((void *)file->data, file->len);
	file->data = NULL;
}

static int vm_boot_vcpu(struct vm *vm, const struct boot_entry *entry)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	int fd = vm->vcpus[0].vcpu.fd;

	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	boot_cpu_registers(entry, &regs, &sregs);
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static int vm_create_vcpus(struct vm *vm)
{
	struct kvm_cpuid2 *supported;
	int err = 0;

	supported = cpuid_get_supported(vm->kvm.sys_fd, &err);
	if (!supported)
		return err;
	vm->vcpus = calloc(vm->cfg->nr_cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		err = -ENOMEM;
	for (unsigned int i = 0; !err && i < vm->cfg->nr_cpus; i++) {
		struct vm_vcpu *v = &vm->vcpus[i];

		v->vm = vm;
		err = vcpu_create(&v->vcpu, &vm->kvm, i, &vm->board.pio, &vm->board.mmio);
		if (err)
			break;
		vm->nr_vcpus++;
		err = vcpu_init_cpu_state(&v->vcpu, supported, vm->cfg->nr_cpus);
	}
	free(supported);
	return err;
}

static int vm_load_guest(struct vm *vm, const char **why)
{
	struct boot_input in = {
		.kernel = vm->kernel->data,
		.kernel_len = vm->kernel->len,
		.initrd = vm->initramfs->data,
		.initrd_len = vm->initramfs->len,
		.cmdline = vm->cfg->cmdline,
		.rsdp_gpa = LAYOUT_ACPI_TABLES,
	};
	struct boot_entry entry;
	int err;

	err = boot_load(&vm->mem, &in, &entry, why);
	if (err) {
		/* Name the file at fault: the sentence says what is wrong with it. */
		fprintf(stderr, "vireo: kernel '%s': %s\n", vm->cfg->kernel_path, *why);
		*why = NULL;
		return err;
	}
	err = boot_setup_cpu_tables(&vm->mem);
	if (!err)
		err = vm_boot_vcpu(vm, &entry);
	if (err)
		*why = "cannot set up the boot CPU";
	return err;
}

/* The transport stops or resumes reading a queue's kicks (vhost-net takes them meanwhile). */
static int vm_watch_kicks(void *opaque, unsigned int q, bool on)
{
	return virtio_mmio_watch_queue(opaque, q, on);
}

static int vm_add_nics(struct vm *vm, const char **why)
{
	for (int i = 0; i < vm->cfg->nr_nics; i++) {
		const struct net_config *nc = &vm->cfg->nics[i];
		struct board_virtio_slot *slot;
		struct virtio_net_kicks kicks;
		struct virtio_net *net;
		uint8_t mac[6];
		char name[16];
		int err;

		if (nc->mac_set)
			memcpy(mac, nc->mac, sizeof(mac));
		else
			net_default_mac(vm->cfg->name, i, mac);
		snprintf(name, sizeof(name), "net%d", i);
		net = virtio_net_create(vm->nets[i], mac, name, &vm->mem, &vm->loop);
		if (!net) {
			*why = "cannot create a virtio-net device";
			return -ENOMEM;
		}
		vm->nics[vm->nr_nics++] = net;
		err = board_add_virtio(&vm->board, virtio_net_device(net), &vm->loop, why);
		if (err)
			return err;
		slot = &vm->board.virtio[vm->board.nr_virtio - 1];
		kicks = (struct virtio_net_kicks){
			.kick_fds = { slot->notify_fds[0], slot->notify_fds[1] },
			.watch = vm_watch_kicks,
			.opaque = &slot->transport,
		};
		virtio_net_set_kicks(net, &kicks);
	}
	return 0;
}

static int vm_add_disks(struct vm *vm, const char **why)
{
	for (int i = 0; i < vm->cfg->nr_disks; i++) {
		struct virtio_blk *blk = virtio_blk_create(vm->disks[i], vm->cfg->disks[i].serial,
							   &vm->mem, &vm->loop);
		int err;

		if (!blk) {
			*why = "out of memory for a disk";
			return -ENOMEM;
		}
		vm->blks[vm->nr_blks++] = blk;
		err = board_add_virtio(&vm->board, virtio_blk_device(blk), &vm->loop, why);
		if (err)
			return err;
	}
	return 0;
}

/* virtio-rng and virtio-console, when the configuration asks for them. */
static int vm_add_rng_console(struct vm *vm, const char **why)
{
	int err;

	if (vm->cfg->rng) {
		vm->rng = virtio_rng_create(&vm->mem, &vm->loop, vm->cfg->rng_rate);
		if (!vm->rng) {
			*why = "cannot create the virtio-rng device";
			return -errno;
		}
		err = board_add_virtio(&vm->board, virtio_rng_device(vm->rng), &vm->loop, why);
		if (err)
			return err;
	}
	if (vm->cfg->console != CONSOLE_VIRTIO)
		return 0;
	vm->vcon = virtio_console_create(&vm->mem, &vm->loop, STDOUT_FILENO);
	if (!vm->vcon) {
		*why = "cannot create the virtio-console device";
		return -errno;
	}
	return board_add_virtio(&vm->board, virtio_console_device(vm->vcon), &vm->loop, why);
}

static int vm_build(struct vm *vm, const char **why)
{
	struct board_config board = {
		.nr_cpus = vm->cfg->nr_cpus,
		.serial_out_fd = vm->serial_fd,
		.serial_out_max = vm->cfg->serial_max,
		.kvm = &vm->kvm,
		.power = { .request = vm_power_request, .opaque = vm },
	};
	int err;

	err = kvm_create_vm(&vm->kvm, why);
	if (err)
		return err;
	if (vm->cfg->nr_cpus > (unsigned int)vm->kvm.max_vcpus) {
		*why = "--cpus is more than this host's KVM allows";
		return -EINVAL;
	}
	err = vm->cfg->memory_shared ? guest_mem_create_shared(&vm->mem, vm->cfg->memory)
				     : guest_mem_create(&vm->mem, vm->cfg->memory);
	if (!err)
		err = kvm_map_guest_mem(&vm->kvm, &vm->mem);
	if (err) {
		*why = "cannot allocate guest memory";
		return err;
	}
	err = board_create(&vm->board, &board, why);
	if (!err)
		err = vm_add_disks(vm, why);
	if (!err)
		err = vm_add_nics(vm, why);
	if (!err)
		err = vm_add_rng_console(vm, why);
	if (err)
		return err;
	err = board_write_acpi(&vm->board, &vm->mem, vm->cfg->nr_cpus);
	if (err) {
		*why = "the ACPI tables do not fit in their reserved area";
		return err;
	}
	err = vm_create_vcpus(vm);
	if (err) {
		*why = "cannot create the vCPUs";
		return err;
	}
	return vm_load_guest(vm, why);
}

static int vm_start_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		int err = pthread_create(&vm->vcpus[i].vcpu.thread, NULL, vcpu_thread,
					 &vm->vcpus[i]);

		if (err)
			return -err;
		vm->nr_started++;
	}
	return 0;
}

static void vm_stop_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_started; i++)
		vcpu_kick(&vm->vcpus[i].vcpu);
	for (unsigned int i = 0; i < vm->nr_started; i++)
		pthread_join(vm->vcpus[i].vcpu.thread, NULL);
	vm->nr_started = 0;
}

static int vm_watch(struct vm *vm)
{
	struct console_input input;
	int err;

	vm->stop_handler = (struct event_handler){ vm_on_stop, vm };
	vm->signal_handler = (struct event_handler){ vm_on_signal, vm };
	err = event_loop_add(&vm->loop, vm->stop_fd, EPOLLIN, &vm->stop_handler);
	if (!err)
		err = event_loop_add(&vm->loop, vm->signal_fd, EPOLLIN, &vm->signal_handler);
	if (err)
		return err;
	if (vm->vcon)
		input = console_input_virtio(vm->vcon);
	else if (vm->cfg->serial == SERIAL_STDIO)
		input = console_input_serial(vm->board.serial);
	else
		return 0;
	err = console_start(&vm->console, &vm->loop, STDIN_FILENO, STDOUT_FILENO, &input,
			    vm_console_quit, vm);
	/* stdin that epoll cannot watch (a regular file, /dev/null) is no input. */
	return err == -EPERM ? 0 : err;
}

static void vm_destroy(struct vm *vm)
{
	vm_stop_vcpus(vm);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i].vcpu, &vm->kvm);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nr_vcpus = 0;
	board_destroy(&vm->board);
	for (int i = 0; i < vm->nr_blks; i++)
		virtio_blk_destroy(vm->blks[i]);
	vm->nr_blks = 0;
	for (int i = 0; i < vm->nr_nics; i++)
		virtio_net_destroy(vm->nics[i]);
	vm->nr_nics = 0;
	if (vm->rng)
		virtio_rng_destroy(vm->rng);
	if (vm->vcon)
		virtio_console_destroy(vm->vcon);
	vm->rng = NULL;
	vm->vcon = NULL;
	guest_mem_destroy(&vm->mem);
	kvm_destroy_vm(&vm->kvm);
	event_loop_destroy(&vm->loop);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
}

/* Builds, boots and runs the VM once; returns why it ended. */
static enum vm_exit vm_run_once(struct vm *vm)
{
	const char *why = "unknown error";
	int err;

	atomic_store(&vm->stop_reason, VM_RUNNING);
	vm->loop.epoll_fd = -1;
	guest_mem_init_empty(&vm->mem);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	err = vm->stop_fd < 0 ? -errno : event_loop_init(&vm->loop);
	if (!err)
		err = vm_build(vm, &why);
	if (!err && (err = vm_watch(vm)) != 0)
		why = "cannot watch the console and control events";
	/* Set-up is done and no guest instruction has run: lock the door (vCPU threads inherit). */
	if (!err && !vm->sandboxed) {
		err = sandbox_enter(SANDBOX_MAIN);
		vm->sandboxed = !err;
		why = "cannot install the seccomp filter";
	}
	if (!err && (err = vm_start_vcpus(vm)) != 0)
		why = "cannot start the vCPU threads";
	if (!err && (err = event_loop_run(&vm->loop)) != 0)
		why = "the event loop failed";
	if (err) {
		if (why) /* NULL: already reported with the file it concerns */
			fprintf(stderr, "vireo: %s: %s\n", why, strerror(-err));
		vm_request_stop(vm, VM_EXIT_ERROR);
	}
	vm_destroy(vm);
	return (enum vm_exit)atomic_load(&vm->stop_reason);
}

static int open_serial_output(const struct vm_config *cfg)
{
	int fd;

	if (cfg->serial == SERIAL_OFF)
		return -1;
	if (cfg->serial == SERIAL_STDIO)
		return STDOUT_FILENO;
	fd = open(cfg->serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fprintf(stderr, "vireo: serial file '%s': %s\n", cfg->serial_path, strerror(errno));
	return fd;
}

/* Termination signals arrive on a signalfd, so no handler races the loop. */
static int block_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	return pthread_sigmask(SIG_BLOCK, set, NULL) ? -1 : 0;
}

/*
 * Opens everything the VM needs, so that the jail needs no file: the kernel and
 * initramfs (mapped), disks, serial file, signals, network backends, /dev/kvm.
 * Nothing here starts a thread or a ring: see vm_start_backends().
 */
static int vm_prepare(struct vm *vm, const struct vm_config *cfg, struct mapped_file *kernel,
		      struct mapped_file *initramfs)
{
	const char *why = NULL;
	int kvm_err;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->kernel = kernel;
	vm->initramfs = initramfs;
	vm->kvm.sys_fd = vm->kvm.vm_fd = vm->signal_fd = -1;
	/* A jailed VM keeps only what it opens itself, besides stdin, stdout and stderr. */
	if (cfg->jail.enabled)
		close_range(STDERR_FILENO + 1, ~0U, 0);
	if (map_file(cfg->kernel_path, "kernel", kernel) < 0)
		return -1;
	if (cfg->initramfs_path && map_file(cfg->initramfs_path, "initramfs", initramfs) < 0)
		return -1;
	for (int i = 0; i < cfg->nr_disks; i++) {
		char err[512];

		vm->disks[i] = disk_open(&cfg->disks[i], err, sizeof(err));
		if (!vm->disks[i]) {
			fprintf(stderr, "vireo: %s\n", err);
			return -1;
		}
	}
	vm->serial_fd = open_serial_output(cfg);
	if (cfg->serial == SERIAL_FILE && vm->serial_fd < 0)
		return -1;
	/* A console piped into a reader that quits must not kill the VM. */
	signal(SIGPIPE, SIG_IGN);
	if (vcpu_signals_init() < 0 || block_stop_signals(&vm->stop_signals) < 0) {
		perror("vireo: signals");
		return -1;
	}
	vm->signal_fd = signalfd(-1, &vm->stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->signal_fd < 0) {
		perror("vireo: signalfd");
		return -1;
	}
	/* Before the backends start: user networking's thread enters its sandbox as it starts. */
	if (!cfg->seccomp) {
		fprintf(stderr, "vireo: WARNING: --seccomp off: a guest that takes over Vireo can "
				"make any system call on this host\n");
	} else if (sandbox_prepare(terminal_restore) < 0) {
		perror("vireo: seccomp");
		return -1;
	}
	for (int i = 0; i < cfg->nr_nics; i++) {
		char err[512];

		vm->nets[i] = net_open(&cfg->nics[i], err, sizeof(err));
		if (!vm->nets[i]) {
			fprintf(stderr, "vireo: %s\n", err);
			return -1;
		}
	}
	/* Once per process: a reboot builds its new VM on it, with no file to open. */
	kvm_err = kvm_open(&vm->kvm, &why);
	if (kvm_err) {
		fprintf(stderr, "vireo: %s: %s\n", why, strerror(-kvm_err));
		return -1;
	}
	return 0;
}

/*
 * The disks' io_uring rings and the backends' threads, once everything is open
 * and the process jailed: a fork keeps only the thread that calls it. They
 * start after the stop signals are blocked, which their threads inherit.
 */
static int vm_start_backends(struct vm *vm)
{
	for (int i = 0; i < vm->cfg->nr_disks; i++)
		disk_engine_start(vm->disks[i], vm->cfg->disks[i].engine, DISK_ENGINE_DEPTH);
	for (int i = 0; i < vm->cfg->nr_nics; i++) {
		char err[512];

		if (net_start(vm->nets[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "vireo: %s\n", err);
			return -1;
		}
	}
	return 0;
}

enum vm_exit vm_run(const struct vm_config *cfg)
{
	struct mapped_file kernel = { 0 }, initramfs = { 0 };
	struct vm vm;
	enum vm_exit result = VM_EXIT_ERROR;

	if (vm_prepare(&vm, cfg, &kernel, &initramfs) == 0) {
		if (cfg->serial == SERIAL_STDIO || cfg->console == CONSOLE_VIRTIO)
			terminal_enter_raw(STDIN_FILENO);
		/*
		 * A jail's launcher does not return: it exits with the VM's status,
		 * restoring the terminal made raw above on its way out.
		 */
		if ((!cfg->jail.enabled || jail_enter(&cfg->jail, cfg->name, &vm.stop_signals) == 0) &&
		    vm_start_backends(&vm) == 0) {
			do {
				result = vm_run_once(&vm);
			} while (result == VM_EXIT_REBOOT && cfg->reboot == REBOOT_RESTART);
		}
		terminal_restore();
	}
	if (vm.signal_fd >= 0)
		close(vm.signal_fd);
	kvm_close(&vm.kvm);
	if (vm.serial_fd > STDERR_FILENO)
		close(vm.serial_fd);
	for (int i = 0; i < cfg->nr_disks; i++)
		disk_close(vm.disks[i]);
	for (int i = 0; i < cfg->nr_nics; i++)
		net_close(vm.nets[i]);
	unmap_file(&kernel);
	unmap_file(&initramfs);
	return result;
}

int vm_check_kvm(void)
{
	struct kvm kvm;
	const char *why = "";
	double mips = 0;
	int err = kvm_open(&kvm, &why);

	if (!err)
		err = kvm_create_vm(&kvm, &why);
	if (!err && (err = kvm_probe_speed(&kvm, &mips)) != 0)
		why = "a test guest did not run";
	if (err) {
		fprintf(stderr, "vireo: KVM is not usable: %s (%s)\n", why, strerror(-err));
		kvm_close(&kvm);
		return 1;
	}
	kvm_close(&kvm);
	if (mips < KVM_PROBE_MIN_MIPS) {
		fprintf(stderr,
			"vireo: KVM is too slow to use: guest code runs at %.1f M loop iterations/s "
			"(hardware virtualization runs hundreds); this /dev/kvm emulates rather than "
			"virtualizes\n",
			mips);
		return 1;
	}
	printf("KVM is usable: /dev/kvm, up to %d vCPUs, guest loop at %.0f M iterations/s\n",
	       kvm.max_vcpus, mips);
	return 0;
}
