/* Outcomes of applied actions (struct host_result): an error number and, only when
 * there is something to say, a message on the heap. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

const char *host_result_message(const struct host_result *r)
{
        return r->message ? r->message : "";
}

static void vset(struct host_result *r, bool append, const char *fmt, va_list ap)
{
        char *add, *joined;

        if (vasprintf(&add, fmt, ap) < 0)
                return;
        if (!append || !r->message) {
                free(r->message);
                r->message = add;
                return;
        }
        if (asprintf(&joined, "%s%s", r->message, add) >= 0) {
                free(r->message);
                r->message = joined;
        }
        free(add);
}

void host_result_set_message(struct host_result *r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vset(r, false, fmt, ap);
        va_end(ap);
}

void host_result_append_message(struct host_result *r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vset(r, true, fmt, ap);
        va_end(ap);
}

void host_results_free(struct host_result *r, size_t n)
{
        /* Zero ones are not written (host.h: a calloc()ed array stays untouched). */
        for (size_t i = 0; r && i < n; i++)
                if (r[i].error || r[i].message) {
                        free(r[i].message);
                        r[i] = (struct host_result){};
                }
}
