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
        /* A sliced pass (reconcile_pass() with a slice): the actions reported as they
         * were applied and taken out of the plan (n_drained), and how many of those
         * left in it (the first ones: the few that are not routes) were reported
         * already. reconcile_n_actions(): every action of the pass. */
        size_t n_drained, n_reported;
        size_t n_failed;
        int state_error;            /* loading or saving the record failed (-errno), or it
                                     * is damaged (-EUCLEAN): state_why says what */
        char state_why[256];
        /* how long each phase took (CLOCK_MONOTONIC), for CALICO_UNDERLAY_TIMINGS */
        uint64_t observe_usec, plan_usec, apply_usec;
        /* reconcile_pass() with keep_ctx: the planner's context for delta passes, when
         * it holds (the caller takes it, and host with it) */
        struct plan_ctx *ctx;
        /* reconcile_delta(): the host as last known (host is empty then); not owned */
        const struct host_snapshot *known;
};

/* model NULL = cleanup (settings only). dry_run = observe and plan only. */
int reconcile_run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
                  const char *state_dir, bool dry_run, struct reconcile *ret);
/* How the daemon's full pass reports the changes of a sliced pass as they are
 * applied (issue 16: a pass's memory must not grow with its number of changes). */
struct reconcile_report {
        size_t slice; /* actions applied at a time (0: the whole plan at once) */
        /* n actions applied and their results, in order, reported and then taken out
         * of the plan: only once the pass has more than PLAN_SINK_KEEP actions. */
        void (*drained)(void *data, const struct host_change *a, const struct host_result *res, size_t n);
        void *data;
};
/* reconcile_run() for the daemon's loop, applying by slices (rep). keep_ctx: also keeps
 * in ret->ctx what delta passes need, when the pass leaves the host as the context says
 * (every change worked, only routes and rules changed, the record is sound); NULL
 * otherwise. */
int reconcile_pass(struct kern *nl, const struct cfg_model *model, const char *state_dir, bool keep_ctx,
                   const struct reconcile_report *rep, struct reconcile *ret);
/* Every action of the pass: those still in r->plan and those drained. */
static inline size_t reconcile_n_actions(const struct reconcile *r)
{
        return r->n_drained + (r->plan ? r->plan->n_actions : 0);
}
/* A delta pass (issue 16): plan only the prefixes t touched (plan_delta()) against the
 * host as known (known: the snapshot of the full pass that made ctx; ctx: its routes
 * since), apply, and bring ctx up to date. 1: done (ret as from reconcile_run(), with
 * ret->known set; the record is untouched: a delta pass never changes it); 0: only a
 * full pass can tell (*why says why); -errno. On anything but 1 with every change
 * applied, ctx is spent: the caller frees it (plan_ctx_free()) and runs full passes. */
int reconcile_delta(struct kern *nl, struct plan_ctx *ctx, const struct host_snapshot *known,
                    const struct cfg_model *model, const struct cfg_touched *t, struct reconcile *ret,
                    const char **why);
void reconcile_clear(struct reconcile *r);
