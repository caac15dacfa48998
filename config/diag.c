/* Diagnostics list. Bounded: past CFG_DIAGS_MAX entries only a count is kept, so a
 * hostile input cannot make the list grow without limit. */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

int cfg_diag_add(struct cfg_diags *d, enum cfg_severity sev, const char *file, unsigned line,
                 unsigned column, const char *fmt, ...)
{
        int ret = sev == CFG_ERROR ? -EINVAL : 0;
        struct cfg_diag *diag;
        va_list ap;
        char *msg;

        if (!d)
                return ret;
        if (sev == CFG_ERROR)
                d->n_errors++;
        if (d->n >= CFG_DIAGS_MAX || GROW(d->v, d->cap, d->n + 1) < 0) {
                d->n_dropped++;
                return ret;
        }
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg) {
                d->n_dropped++;
                return ret;
        }
        diag = &d->v[d->n++];
        *diag = (struct cfg_diag){
                .severity = sev,
                .file = file ? strdup(file) : NULL,
                .line = line,
                .column = column,
                .message = msg,
        };
        return ret;
}

int cfg_diag_fmt(const struct cfg_diag *diag, char *buf, size_t size)
{
        const char *f = diag->file ? diag->file : "";
        const char *sep = diag->file ? ":" : "";
        int r;

        if (diag->line && diag->column)
                r = snprintf(buf, size, "%s%s%u:%u: %s", f, sep, diag->line, diag->column, diag->message);
        else if (diag->line)
                r = snprintf(buf, size, "%s%s%u: %s", f, sep, diag->line, diag->message);
        else
                r = snprintf(buf, size, "%s%s%s%s", f, sep, diag->file ? " " : "", diag->message);
        if (r >= 0 && (size_t)r >= size && size)
                text_utf8_trim(buf); /* cut: not inside a character */
        return r;
}

void cfg_diags_clear(struct cfg_diags *d)
{
        for (size_t i = 0; i < d->n; i++) {
                free(d->v[i].file);
                free(d->v[i].message);
        }
        free(d->v);
        *d = (struct cfg_diags){};
}
