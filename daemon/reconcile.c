/* The reconcile pass. Level-triggered: it always plans from the full model against a
 * full fresh snapshot, so it needs no memory of earlier passes beyond the runtime
 * record, and a restarted daemon adopts its own routes by their protocol number. */
#include "reconcile.h"

#include <stdlib.h>
#include <time.h>

#include "state.h"
#include "util.h"

/* The planner knows the recorded device by name. A device renamed since (same
 * ifindex: `ip link set eth0 name eth1`, or udev on a re-probe) is still the device
 * whose values the record holds: give the record its current name, or a renamed
 * uplink would be recorded afresh, with our own values, and the originals lost. A
 * record without an index (0.1.0) gets the index of the device of that name.
 * Returns whether the record changed. */
static bool record_follow_link(struct host_record *rec, const struct host_snapshot *h)
{
        const struct host_link *l;

        if (!rec->valid)
                return false;
        if (rec->ifindex <= 0) {
                l = host_link_by_name(h, rec->ifname);
                if (!l)
                        return false;
                rec->ifindex = l->ifindex;
                return true;
        }
        l = host_link_by_index(h, rec->ifindex);
        if (!l || streq(l->name, rec->ifname))
                return false; /* gone (or replaced by a new device of that name), or unchanged */
        snprintf(rec->ifname, sizeof(rec->ifname), "%s", l->name);
        return true;
}

static int save_record_if(const struct reconcile *r, const char *dir, bool first)
{
        struct host_record want = r->plan->record;

        /* The planner writes a new record with the device's name: add its index. */
        if (want.valid && want.ifindex <= 0) {
                const struct host_link *l = host_link_by_name(&r->host, want.ifname);

                want.ifindex = l ? l->ifindex : 0;
        }
        if (state_equal(&want, &r->record))
                return 0;
        /* A new record goes down before the change it protects; a cleared one only
         * after the restore worked. */
        if (first != (want.valid && r->plan->record_first))
                return 0;
        if (!first && !want.valid && r->n_failed)
                return 0;
        return state_save(dir, &want);
}

/* What observation must ask the kernel besides the dumps: the route lookup of
 * uplink: can-reach= (the planner chooses the uplink from its answer). */
static struct kern_observe_opts observe_opts(const struct cfg_settings *s)
{
        struct kern_observe_opts o = {};

        if (s && s->uplink_mode == CFG_UPLINK_CAN_REACH)
                o.reach = s->uplink_reach;
        return o;
}

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int reconcile_run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
                  const char *state_dir, bool dry_run, struct reconcile *ret)
{
        struct reconcile r = {};
        struct kern_observe_opts oo = observe_opts(settings);
        struct kern_apply_opts ao = { .protocol = settings->route_protocol, .table = settings->route_table };
        uint64_t t = now_usec(), t1;
        bool renamed;
        int e;

        if ((e = kern_observe(nl, &oo, &r.host)) < 0)
                goto fail;
        r.observe_usec = (t1 = now_usec()) - t;
        t = t1;
        e = state_load(state_dir, &r.record);
        if (e < 0) {
                r.state_error = e;
                r.record = (struct host_record){ .proxy_arp = -1, .proxy_delay_ms = -1 };
        }
        renamed = e >= 0 && record_follow_link(&r.record, &r.host);
        e = model ? plan_build(model, &r.host, &r.record, &r.plan) : plan_cleanup(settings, &r.host, &r.record, &r.plan);
        if (e < 0)
                goto fail;
        r.plan_usec = (t1 = now_usec()) - t;
        t = t1;
        if (dry_run) {
                *ret = r;
                return 0;
        }
        /* The record as the planner used it goes down first: should this pass stop
         * half-way, the next one still finds the device. */
        if ((renamed && (e = state_save(state_dir, &r.record)) < 0) || (e = save_record_if(&r, state_dir, true)) < 0) {
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
        r.n_failed = (size_t)kern_apply(nl, &ao, r.plan->actions, r.plan->n_actions, r.results);
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
        if (r->results)
                host_results_free(r->results, r->plan ? r->plan->n_actions : 0);
        plan_free(r->plan);
        free(r->results);
        *r = (struct reconcile){};
}
