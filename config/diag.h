/* Diagnostics collected while loading input: errors (the input is rejected) and notices
 * (something was skipped). Each carries the file, line and column it is about. The
 * config layer never prints; the daemon decides where diagnostics go. */
#pragma once

#include <stddef.h>

#include "util.h"

enum cfg_severity {
        CFG_ERROR,
        CFG_NOTICE,
};

struct cfg_diag {
        enum cfg_severity severity;
        char *file; /* may be NULL */
        unsigned line, column; /* 1-based; 0 = unknown */
        char *message;
};

/* Input controls how many diagnostics there are, so the list is capped. */
#define CFG_DIAGS_MAX 200

struct cfg_diags {
        struct cfg_diag *v;
        size_t n, cap;
        size_t n_errors;
        size_t n_dropped;
};

/* Returns -EINVAL for an error (so callers can `return cfg_error(...)`), 0 for a notice. */
_printf_(6, 7) int cfg_diag_add(struct cfg_diags *d, enum cfg_severity sev, const char *file,
                                unsigned line, unsigned column, const char *fmt, ...);
#define cfg_error(d, file, line, col, ...) cfg_diag_add((d), CFG_ERROR, (file), (line), (col), __VA_ARGS__)
#define cfg_notice(d, file, line, col, ...) cfg_diag_add((d), CFG_NOTICE, (file), (line), (col), __VA_ARGS__)

/* "file:line:column: message" (parts that are unknown are left out). */
int cfg_diag_fmt(const struct cfg_diag *diag, char *buf, size_t size);
void cfg_diags_clear(struct cfg_diags *d);
