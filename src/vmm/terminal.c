/*
 * Terminal handling. The saved terminal settings are the one piece of
 * process-wide state in Vireo: a process has one controlling terminal, and
 * the crash handlers that restore it can reach nothing else.
 */
#include "vmm/terminal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static struct {
	int fd;
	bool saved;
	struct termios original;
} terminal_saved = { .fd = -1 };

void terminal_restore(void)
{
	if (terminal_saved.saved)
		tcsetattr(terminal_saved.fd, TCSANOW, &terminal_saved.original);
}

/* A crash leaves the terminal usable, then dies of the same signal. */
static void terminal_crash_handler(int sig)
{
	terminal_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_crash_handlers(void)
{
	static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
	struct sigaction sa = { .sa_handler = terminal_crash_handler, .sa_flags = SA_RESETHAND };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaction(fatal_signals[i], &sa, NULL);
}

bool terminal_enter_raw(int fd)
{
	struct termios raw;

	if (!isatty(fd) || tcgetattr(fd, &terminal_saved.original) < 0)
		return false;
	terminal_saved.fd = fd;
	terminal_saved.saved = true;
	atexit(terminal_restore);
	install_crash_handlers();
	raw = terminal_saved.original;
	cfmakeraw(&raw);
	/* Keep output post-processing off too: the guest sends its own CR LF. */
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	return tcsetattr(fd, TCSANOW, &raw) == 0;
}

enum escape_action escape_filter(struct escape_state *state, uint8_t *buf, size_t *len)
{
	enum escape_action action = ESCAPE_NONE;
	size_t out = 0;

	for (size_t in = 0; in < *len && action != ESCAPE_QUIT; in++) {
		uint8_t c = buf[in];

		if (!state->pending) {
			if (c == TERMINAL_ESCAPE_KEY)
				state->pending = true;
			else
				buf[out++] = c;
			continue;
		}
		state->pending = false;
		if (c == 'x' || c == 'X')
			action = ESCAPE_QUIT;
		else if (c == 'h' || c == 'H' || c == '?')
			action = ESCAPE_HELP;
		else if (c == TERMINAL_ESCAPE_KEY || c == 'a')
			buf[out++] = TERMINAL_ESCAPE_KEY;
	}
	*len = out;
	return action;
}

const char *escape_help_text(void)
{
	return "\r\nvireo console keys:\r\n"
	       "  Ctrl-A x        quit (the guest is stopped)\r\n"
	       "  Ctrl-A h        this help\r\n"
	       "  Ctrl-A Ctrl-A   send Ctrl-A to the guest\r\n";
}
