/*
 * A VM's lifecycle: build it from a vm_config, boot it, run until the guest
 * powers off, reboots, fails, or the user stops it; with --reboot=restart a
 * reboot builds it again in the same process.
 */
#ifndef VIREO_VMM_VM_H
#define VIREO_VMM_VM_H

#include "vmm/config.h"

/* vireo's exit status, documented in --help and the README. */
enum vm_exit {
	VM_EXIT_POWEROFF = 0,
	VM_EXIT_ERROR = 1,
	VM_EXIT_REBOOT = 2,
	VM_EXIT_STOPPED = 3,
};

/* Runs the VM to its end; every error was already reported on stderr. */
enum vm_exit vm_run(const struct vm_config *cfg);

/* `vireo check`: 0 when KVM is usable, else 1 with the reason on stderr. */
int vm_check_kvm(void);

#endif
