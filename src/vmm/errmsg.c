#include "vmm/errmsg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int errmsg(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int errmsg_on_off(const char *option, const char *key, const char *value, bool *out, char *err,
		  size_t err_len)
{
	if (value && strcmp(value, "on") == 0)
		*out = true;
	else if (value && strcmp(value, "off") == 0)
		*out = false;
	else
		return errmsg(err, err_len, "%s %s=%s: use on or off", option, key,
			      value ? value : "");
	return 0;
}
