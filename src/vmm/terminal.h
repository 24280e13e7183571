/*
 * The host terminal when it carries the guest console: raw mode that is
 * restored on every exit path (normal exit, signals, crashes), and the
 * Ctrl-A escape keys (as in QEMU: Ctrl-A x quits, Ctrl-A h helps,
 * Ctrl-A Ctrl-A sends one Ctrl-A to the guest).
 */
#ifndef VIREO_VMM_TERMINAL_H
#define VIREO_VMM_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERMINAL_ESCAPE_KEY 0x01 /* Ctrl-A */

/* Puts fd's terminal in raw mode if it is one; no-op (returns false) otherwise. */
bool terminal_enter_raw(int fd);

/* Restores what terminal_enter_raw() changed; safe to call more than once. */
void terminal_restore(void);

struct escape_state {
	bool pending; /* the last byte was the escape key */
};

enum escape_action {
	ESCAPE_NONE,
	ESCAPE_QUIT,
	ESCAPE_HELP,
};

/*
 * Filters input bytes in place: escape sequences are removed and the
 * last action found is returned; a quit ends the scan (later input is dropped).
 * *len is updated to the bytes left for the guest.
 */
enum escape_action escape_filter(struct escape_state *state, uint8_t *buf, size_t *len);

/* The text printed for Ctrl-A h. */
const char *escape_help_text(void);

#endif
