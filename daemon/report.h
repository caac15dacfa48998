/* What --check and --once print, as text for people and JSON for tools. Writes only to
 * the FILE it is given, so tests can capture it (open_memstream). */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "host.h"
#include "model.h"
#include "plan.h"

struct report_source {
        const char *node;
        const struct cfg_model *model;    /* NULL when the configuration failed */
        const struct host_snapshot *host; /* NULL when it could not be observed */
        const struct plan *plan;          /* NULL when there is no plan */
        const struct cfg_diags *diags;    /* configuration errors and notices */
        const char *error;                /* why it cannot be evaluated, or NULL */
        /* Where the model came from: "files" (also when NULL) or "etcdv3" with the
         * endpoint that served it (or the configured ones when none did) and the
         * revision it was listed at (0: unknown). */
        const char *source;
        const char *endpoint;
        int64_t revision;
};

/* Exit status of --check: 0 ready, 1 blocking problems, 2 cannot evaluate. */
int report_check_status(const struct report_source *src);
void report_check_text(FILE *f, const struct report_source *src);
void report_check_json(FILE *f, const struct report_source *src);
void report_diags(FILE *f, const struct cfg_diags *d, bool notices);
