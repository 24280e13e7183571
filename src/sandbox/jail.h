/*
 * The jail (--jail): once everything a VM needs is open, Vireo moves into a
 * small, empty room before it builds the VM, so that a bug the guest finds in
 * the VMM leaves the attacker there: a cgroup of its own, new namespaces, an
 * empty read-only root, an unprivileged user with no capabilities.
 */
#ifndef VIREO_SANDBOX_JAIL_H
#define VIREO_SANDBOX_JAIL_H

#include <signal.h>

#include "vmm/config.h"

/*
 * Jails the process; call it with one thread, before any thread or io_uring
 * starts, once every file, device and socket the VM needs is open, and before
 * that, as the first thing, close what the process inherited (a jailed VM
 * keeps only what it opened itself).
 *
 * It forks: the child, PID 1 of the jail, returns 0 and runs the VM. The
 * launcher never returns: it waits for the VM, forwards stop_signals (already
 * blocked) to it, removes its cgroup and exits with its status. Returns
 * -errno, having said why on stderr, when the jail cannot be built.
 */
int jail_enter(const struct jail_config *jail, const char *vm_name, const sigset_t *stop_signals);

#endif
