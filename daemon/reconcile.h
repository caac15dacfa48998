/* One reconcile pass: observe, plan, record, apply. Shared by --once, --cleanup and the
 * daemon's event loop. Prints nothing; the caller reports. */
#pragma once

#include <stdint.h>

#include "model.h"
#include "nl.h"
#include "plan.h"

struct reconcile {
        struct host_snapshot host;
        struct host_record record;  /* as loaded before the pass */
        struct plan *plan;
        struct host_result *results;  /* one per plan action */
        size_t n_failed;
        int state_error;            /* loading or saving the record failed (-errno), or it
                                     * is damaged (-EUCLEAN): state_why says what */
        char state_why[256];
        /* how long each phase took (CLOCK_MONOTONIC), for CALICO_UNDERLAY_TIMINGS */
        uint64_t observe_usec, plan_usec, apply_usec;
};

/* model NULL = cleanup (settings only). dry_run = observe and plan only. */
int reconcile_run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
                  const char *state_dir, bool dry_run, struct reconcile *ret);
void reconcile_clear(struct reconcile *r);
