/* The reconcile pass. Level-triggered: it always plans from the full model against a
 * full fresh snapshot, so it needs no memory of earlier passes beyond the runtime
 * record, and a restarted daemon adopts its own routes by their protocol number.
 *
 * The daemon's loop may also run delta passes between two full ones (issue 16): the
 * prefixes a change of the model touched, planned against the host as the last full
 * pass left it (its snapshot, and the routes our own changes added and removed since),
 * applied the same way. The full pass stays the reference: --once, --check and the
 * periodic resync always run it. */
#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "state.h"
#include "text.h"
#include "util.h"

/* The planner knows the recorded device by name; the record also holds its index.
 * Both must agree with the host, or the record is not about the device it names:
 * - the index is that of a device of another name, and no device has the recorded
 *   name: the device was renamed (`ip link set eth0 name eth1`, udev on a re-probe).
 *   It is still the device whose values the record holds: give the record its current
 *   name, or a renamed uplink would be recorded afresh, with our own values, and the
 *   originals lost. Returns 1. (Never to lo: no uplink is ever renamed to it.)
 * - the name and the index are two different devices (an edited record, or indexes
 *   reused): the record does not match, and restoring would put one device's values
 *   on the other. It is reported as damaged and nothing is restored (-1).
 * - the index is gone: the device is gone, and its settings with it; a new device of
 *   that name (a NIC replaced) is the uplink the record was made for.
 * A record without an index (0.1.0) gets the index of the device of that name. */
static int record_check_link(struct host_record *rec, const struct host_snapshot *h)
{
        const struct host_link *by_index, *by_name;

        if (!rec->valid)
                return 0;
        by_name = host_link_by_name(h, rec->ifname);
        if (rec->ifindex <= 0) {
                if (!by_name)
                        return 0;
                rec->ifindex = by_name->ifindex;
                return 1;
        }
        by_index = host_link_by_index(h, rec->ifindex);
        if (!by_index || by_index == by_name)
                return 0; /* gone, or as recorded */
        if (by_name || streq(by_index->name, "lo")) {
                snprintf(rec->damaged, sizeof(rec->damaged), "it names %s with ifindex %d, but ifindex %d is %s%s%s",
                         rec->ifname, rec->ifindex, rec->ifindex, by_index->name, by_name ? " and " : "",
                         by_name ? "that name is another device" : "");
                rec->valid = false;
                rec->route_protocol = 0;
                rec->route_table = 0;
                return -1;
        }
        snprintf(rec->ifname, sizeof(rec->ifname), "%s", by_index->name);
        return 1;
}

/* What the record on disk must hold after this step (first: before the changes; then
 * after them). disk is what it holds now, updated when it is written. */
static int save_record(struct reconcile *r, const char *dir, bool first, struct host_record *disk)
{
        struct host_record want = r->plan->record;
        int e;

        if (disk->damaged[0])
                return 0; /* kept as it is for the operator: never replaced by our values */
        /* The planner writes a new record with the device's name: add its index. */
        if (want.valid && want.ifindex <= 0) {
                const struct host_link *l = host_link_by_name(&r->host, want.ifname);

                want.ifindex = l ? l->ifindex : 0;
        }
        if (first) {
                /* A new record of the uplink goes down before the change it protects. */
                if (!(want.valid && r->plan->record_first))
                        return 0;
                /* The routes' owner changes only once the old owner's routes are gone. */
                if (disk->route_protocol) {
                        want.route_protocol = disk->route_protocol;
                        want.route_table = disk->route_table;
                }
        } else if (r->n_failed) {
                /* Something failed: a cleared record only after the restore worked, and
                 * the routes' old owner until its routes were withdrawn. */
                if (!want.valid && disk->valid) {
                        bool keep_routes = want.route_protocol != 0;
                        uint8_t proto = want.route_protocol;
                        uint32_t table = want.route_table;

                        want = *disk;
                        if (keep_routes)
                                want.route_protocol = proto, want.route_table = table;
                }
                if (disk->route_protocol) {
                        want.route_protocol = disk->route_protocol;
                        want.route_table = disk->route_table;
                }
        }
        if (state_equal(&want, disk))
                return 0;
        e = state_save(dir, &want, r->state_why, sizeof(r->state_why));
        if (e >= 0)
                *disk = want;
        return e;
}

/* What observation must ask the kernel besides the dumps: the route lookup of
 * uplink: can-reach= (the planner chooses the uplink from its answer). */
static struct kern_observe_opts observe_opts(const struct cfg_settings *s)
{
        struct kern_observe_opts o = {};

        if (s && s->uplink_mode == CFG_UPLINK_CAN_REACH)
                o.reach = s->uplink_reach;
        /* The planner reads main (foreign routes, the default route, an earlier
         * version's routes of ours) and our table (DESIGN.md §3.2): nothing else is
         * dumped. Routes of ours in another table are looked for only when the record
         * says our table or protocol changed (reconcile_run() dumps every table then),
         * and by --cleanup: a dump of our protocol walks our 100k routes a second time. */
        if (s)
                o.route_table = s->route_table;
        return o;
}

static int run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
               const char *state_dir, bool dry_run, bool keep_ctx, struct reconcile *ret)
{
        struct reconcile r = {};
        struct kern_observe_opts oo = observe_opts(settings);
        struct kern_apply_opts ao = { .protocol = settings->route_protocol, .table = settings->route_table };
        struct host_record disk;
        uint64_t t = now_usec(), t1;
        bool renamed;
        int e, load;

        if ((e = kern_observe(nl, &oo, &r.host)) < 0)
                goto fail;
        r.observe_usec = (t1 = now_usec()) - t;
        t = t1;
        load = state_load(state_dir, &r.record, r.state_why, sizeof(r.state_why));
        if (load < 0) {
                /* A folder that is not ours, or unreadable: no record to trust. */
                r.state_error = load;
                r.record = (struct host_record)HOST_RECORD_INIT;
                snprintf(r.record.damaged, sizeof(r.record.damaged), "%s", r.state_why);
        }
        /* Routes of ours may sit in any table after routeProtocol or routeTable changed,
         * and --cleanup removes ours wherever they are: look at every table then (rare;
         * the narrowed dumps cover the rest). */
        if (oo.route_table && (!model || (load >= 0 && r.record.route_protocol &&
                                          (r.record.route_protocol != settings->route_protocol ||
                                           r.record.route_table != settings->route_table)))) {
                host_snapshot_clear(&r.host);
                oo.route_table = 0;
                oo.route_protocol = 0;
                if ((e = kern_observe(nl, &oo, &r.host)) < 0)
                        goto fail;
        }
        renamed = load >= 0 && record_check_link(&r.record, &r.host) > 0;
        if (load >= 0 && r.record.damaged[0]) {
                r.state_error = -EUCLEAN;
                snprintf(r.state_why, sizeof(r.state_why),
                         "runtime record %.50s/state: %.90s; kept as it is: the uplink's settings are left alone "
                         "until it is fixed or removed",
                         state_dir, r.record.damaged);
                text_utf8_trim(r.state_why);
        }
        e = !model      ? plan_cleanup(settings, &r.host, &r.record, &r.plan)
            : keep_ctx ? plan_build_ctx(model, &r.host, &r.record, &r.plan, &r.ctx)
                       : plan_build(model, &r.host, &r.record, &r.plan);
        if (e < 0)
                goto fail;
        r.plan_usec = (t1 = now_usec()) - t;
        t = t1;
        if (dry_run || load < 0 || r.state_error) {
                plan_ctx_free(r.ctx);
                r.ctx = NULL;
        }
        if (dry_run || load < 0) {
                /* The runtime folder cannot be trusted: change nothing. */
                *ret = r;
                return dry_run ? 0 : load;
        }
        disk = r.record;
        /* The record as the planner used it goes down first: should this pass stop
         * half-way, the next one still finds the device. */
        if ((renamed && (e = state_save(state_dir, &r.record, r.state_why, sizeof(r.state_why))) < 0) ||
            (e = save_record(&r, state_dir, true, &disk)) < 0) {
                /* Without the record we could not restore later: change nothing. */
                r.state_error = e;
                plan_ctx_free(r.ctx);
                r.ctx = NULL;
                *ret = r;
                return e;
        }
        r.results = calloc(r.plan->n_actions ? r.plan->n_actions : 1, sizeof(*r.results));
        if (!r.results) {
                e = -ENOMEM;
                goto fail;
        }
        r.n_failed = (size_t)kern_apply(nl, &ao, r.plan->actions, r.plan->n_actions, r.results);
        if ((e = save_record(&r, state_dir, false, &disk)) < 0)
                r.state_error = e;
        /* The host as the context says only if everything worked. */
        if (r.ctx && (r.n_failed || r.state_error || plan_ctx_applied(r.ctx, r.plan->actions, r.plan->n_actions, r.results) < 0)) {
                plan_ctx_free(r.ctx);
                r.ctx = NULL;
        }
        r.apply_usec = now_usec() - t;
        *ret = r;
        return 0;
fail:
        reconcile_clear(&r);
        return e;
}

int reconcile_run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
                  const char *state_dir, bool dry_run, struct reconcile *ret)
{
        return run(nl, model, settings, state_dir, dry_run, false, ret);
}

int reconcile_run_ctx(struct kern *nl, const struct cfg_model *model, const char *state_dir, struct reconcile *ret)
{
        return run(nl, model, &model->settings, state_dir, false, true, ret);
}

int reconcile_delta(struct kern *nl, struct plan_ctx *ctx, const struct host_snapshot *known,
                    const struct cfg_model *model, const struct cfg_touched *t, struct reconcile *ret,
                    const char **why)
{
        const struct cfg_settings *s = &model->settings;
        struct kern_apply_opts ao = { .protocol = s->route_protocol, .table = s->route_table };
        struct reconcile r = { .known = known };
        uint64_t t0 = now_usec(), t1;
        int e;

        *why = NULL;
        if ((e = plan_delta(ctx, model, known, t, &r.plan, why)) <= 0)
                return e;
        r.plan_usec = (t1 = now_usec()) - t0;
        r.results = calloc(r.plan->n_actions ? r.plan->n_actions : 1, sizeof(*r.results));
        if (!r.results) {
                reconcile_clear(&r);
                return -ENOMEM;
        }
        r.n_failed = (size_t)kern_apply(nl, &ao, r.plan->actions, r.plan->n_actions, r.results);
        e = plan_ctx_applied(ctx, r.plan->actions, r.plan->n_actions, r.results);
        r.apply_usec = now_usec() - t1;
        *ret = r;
        if (e < 0)
                *why = r.n_failed ? "a change failed" : "out of memory";
        return e < 0 ? e : 1;
}

void reconcile_clear(struct reconcile *r)
{
        host_snapshot_clear(&r->host);
        plan_ctx_free(r->ctx);
        if (r->results)
                host_results_free(r->results, r->plan ? r->plan->n_actions : 0);
        plan_free(r->plan);
        free(r->results);
        *r = (struct reconcile){};
}
