/* The reconcile pass. Level-triggered: it always plans from the full model against a
 * full fresh snapshot, so it needs no memory of earlier passes beyond the runtime
 * record, and a restarted daemon adopts its own routes by their protocol number. */
#include "reconcile.h"

#include <stdlib.h>
#include <time.h>

#include "state.h"
#include "util.h"

static int save_record_if(const struct reconcile *r, const char *dir, bool first)
{
        const struct host_record *want = &r->plan->record;

        if (state_equal(want, &r->record))
                return 0;
        /* A new record goes down before the change it protects; a cleared one only
         * after the restore worked. */
        if (first != (want->valid && r->plan->record_first))
                return 0;
        if (!first && !want->valid && r->n_failed)
                return 0;
        return state_save(dir, want);
}

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int reconcile_run(struct nl *nl, const struct cfg_model *model, const struct cfg_settings *settings,
                  const char *state_dir, bool dry_run, struct reconcile *ret)
{
        struct reconcile r = {};
        uint64_t t = now_usec(), t1;
        int e;

        if ((e = nl_observe(nl, settings, &r.host)) < 0)
                goto fail;
        r.observe_usec = (t1 = now_usec()) - t;
        t = t1;
        e = state_load(state_dir, &r.record);
        if (e < 0) {
                r.state_error = e;
                r.record = (struct host_record){ .proxy_arp = -1, .proxy_delay_ms = -1 };
        }
        e = model ? plan_build(model, &r.host, &r.record, &r.plan) : plan_cleanup(settings, &r.host, &r.record, &r.plan);
        if (e < 0)
                goto fail;
        r.plan_usec = (t1 = now_usec()) - t;
        t = t1;
        if (dry_run) {
                *ret = r;
                return 0;
        }
        if ((e = save_record_if(&r, state_dir, true)) < 0) {
                /* Without the record we could not restore later: change nothing. */
                r.state_error = e;
                *ret = r;
                return e;
        }
        r.results = calloc(r.plan->n_actions ? r.plan->n_actions : 1, sizeof(*r.results));
        if (!r.results) {
                e = -ENOMEM;
                goto fail;
        }
        r.n_failed = (size_t)nl_apply(nl, settings, r.plan->actions, r.plan->n_actions, r.results);
        if ((e = save_record_if(&r, state_dir, false)) < 0)
                r.state_error = e;
        r.apply_usec = now_usec() - t;
        *ret = r;
        return 0;
fail:
        reconcile_clear(&r);
        return e;
}

void reconcile_clear(struct reconcile *r)
{
        host_snapshot_clear(&r->host);
        plan_free(r->plan);
        free(r->results);
        *r = (struct reconcile){};
}
