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
#include <string.h>
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
static int save_record(struct reconcile *r, const struct plan *p, const char *dir, bool first,
                       struct host_record *disk)
{
        struct host_record want = p->record;
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
                if (!(want.valid && p->record_first))
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
        if (s) {
                o.route_table = s->route_table;
                o.own_protocol = s->route_protocol; /* our routes in 20 bytes each, not 52 */
        }
        return o;
}

/* Applying a plan, by slices (plan_sink) or all at the end: the record goes down
 * before the first change, each slice is applied, the context brought up to date,
 * and, in a sliced pass that has been long enough to tell its lines' level, the
 * changes reported and taken out of the plan. */
struct applier {
        struct reconcile *r;
        struct kern *nl;
        struct kern_apply_opts ao;
        const char *state_dir;
        struct host_record *disk;
        bool renamed;                       /* the record's device was renamed: saved first */
        const struct reconcile_report *rep; /* NULL: nothing drained */
        size_t applied;                     /* r->plan's actions applied so far */
        size_t cap_results;
        bool started;                       /* the record went down: changes may be made */
        bool ctx_spent;                     /* the context no longer says what the host has */
};

static int apply_start(struct applier *a, const struct plan *p)
{
        struct reconcile *r = a->r;
        int e;

        if (a->started)
                return 0;
        /* The record as the planner used it goes down first: should this pass stop
         * half-way, the next one still finds the device. */
        if ((a->renamed && (e = state_save(a->state_dir, &r->record, r->state_why, sizeof(r->state_why))) < 0) ||
            (e = save_record(r, p, a->state_dir, true, a->disk)) < 0) {
                r->state_error = e;
                return e;
        }
        a->started = true;
        return 0;
}

/* Room for a result per action, zeroed (kern_apply() writes only those that are not).
 * The first time exactly n from calloc(): a whole plan's successes (--once, 100k
 * routes) then stay on the zero page, never written (netlink/host.h); only a sliced
 * pass grows it, by a slice. */
static int results_room(struct applier *a, size_t n)
{
        struct reconcile *r = a->r;
        size_t old = a->cap_results;
        int e;

        if (!old) {
                if (!(r->results = calloc(n ? n : 1, sizeof(*r->results))))
                        return -ENOMEM;
                a->cap_results = n ? n : 1;
                return 0;
        }
        if (n <= old)
                return 0;
        if ((e = GROW(r->results, a->cap_results, n)) < 0)
                return e;
        memset(r->results + old, 0, (a->cap_results - old) * sizeof(*r->results));
        return 0;
}

/* p's actions not applied yet, applied; ctx (NULL: none) told. */
static int apply_rest(struct applier *a, const struct plan *p, struct plan_ctx *ctx)
{
        struct reconcile *r = a->r;
        size_t n = p->n_actions - a->applied;
        int e, failed;

        if ((e = results_room(a, p->n_actions)) < 0)
                return e;
        failed = kern_apply(a->nl, &a->ao, p->actions + a->applied, n, r->results + a->applied);
        r->n_failed += (size_t)failed;
        /* The host as the context says only if everything worked. */
        if (ctx && !a->ctx_spent &&
            (failed || r->state_error || plan_ctx_applied(ctx, p->actions + a->applied, n, r->results + a->applied) < 0))
                a->ctx_spent = true;
        a->applied = p->n_actions;
        return 0;
}

static bool is_route_change(const struct host_change *c)
{
        return c->kind == CHANGE_ADD_ROUTE || c->kind == CHANGE_DEL_ROUTE;
}

/* Report the applied actions not reported yet, and take the routes out of the plan:
 * the few others stay (at its head, in order) for what is told of the pass at its end
 * (the uplink's values, the tunnels removed). Only once the pass has more than
 * PLAN_SINK_KEEP actions: the lines of a shorter one have another level. */
static void drain(struct applier *a, struct plan *p)
{
        struct reconcile *r = a->r;
        size_t k = r->n_reported;

        if (!a->rep || !a->rep->drained || r->n_drained + p->n_actions <= PLAN_SINK_KEEP)
                return;
        a->rep->drained(a->rep->data, p->actions + r->n_reported, r->results + r->n_reported,
                        p->n_actions - r->n_reported);
        for (size_t i = r->n_reported; i < p->n_actions; i++) {
                if (is_route_change(&p->actions[i])) {
                        host_results_free(&r->results[i], 1);
                        r->n_drained++;
                        continue;
                }
                if (k != i) {
                        p->actions[k] = p->actions[i];
                        r->results[k] = r->results[i];
                        r->results[i] = (struct host_result){};
                }
                k++;
        }
        p->n_actions = k;
        r->n_reported = a->applied = k;
}

static int flush(void *data, struct plan *p, struct plan_ctx *ctx)
{
        struct applier *a = data;
        int e;

        if ((e = apply_start(a, p)) < 0 || (e = apply_rest(a, p, ctx)) < 0)
                return e;
        drain(a, p);
        return 0;
}

static int run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
               const char *state_dir, bool dry_run, bool keep_ctx, const struct reconcile_report *rep,
               struct reconcile *ret)
{
        struct reconcile r = {};
        struct kern_observe_opts oo = observe_opts(settings);
        struct host_record disk;
        struct applier a = { .r = &r, .nl = nl, .state_dir = state_dir, .disk = &disk,
                             .ao = { .protocol = settings->route_protocol, .table = settings->route_table } };
        struct plan_sink sink = { .flush = flush, .data = &a };
        uint64_t t = now_usec(), t1;
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
        a.renamed = load >= 0 && record_check_link(&r.record, &r.host) > 0;
        if (load >= 0 && r.record.damaged[0]) {
                r.state_error = -EUCLEAN;
                snprintf(r.state_why, sizeof(r.state_why),
                         "runtime record %.50s/state: %.90s; kept as it is: the uplink's settings are left alone "
                         "until it is fixed or removed",
                         state_dir, r.record.damaged);
                text_utf8_trim(r.state_why);
        }
        disk = r.record;
        a.ctx_spent = r.state_error != 0;
        /* The daemon's pass applies by slices as it plans (the record first). */
        sink.slice = rep && model && !dry_run && load >= 0 ? rep->slice : 0;
        a.rep = sink.slice ? rep : NULL;
        e = !model ? plan_cleanup(settings, &r.host, &r.record, &r.plan)
                   : plan_build_sliced(model, &r.host, &r.record, sink.slice ? &sink : NULL, &r.plan,
                                       keep_ctx ? &r.ctx : NULL);
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
        if ((e = apply_start(&a, r.plan)) < 0) {
                /* Without the record we could not restore later: change nothing. */
                plan_ctx_free(r.ctx);
                r.ctx = NULL;
                *ret = r;
                return e;
        }
        if ((e = apply_rest(&a, r.plan, r.ctx)) < 0)
                goto fail;
        if ((e = save_record(&r, r.plan, state_dir, false, &disk)) < 0)
                r.state_error = e;
        if (r.ctx && (a.ctx_spent || r.n_failed || r.state_error)) {
                plan_ctx_free(r.ctx);
                r.ctx = NULL;
        }
        r.apply_usec = now_usec() - t;
        *ret = r;
        return 0;
fail:
        /* The planner failed (out of memory) after slices were applied: the plan is
         * gone, the results' messages are not. Changes already made stay, unreported,
         * as after a crash half-way: the next pass finds them in place. */
        if (r.results)
                host_results_free(r.results, a.cap_results);
        reconcile_clear(&r);
        return e;
}

int reconcile_run(struct kern *nl, const struct cfg_model *model, const struct cfg_settings *settings,
                  const char *state_dir, bool dry_run, struct reconcile *ret)
{
        return run(nl, model, settings, state_dir, dry_run, false, NULL, ret);
}

int reconcile_pass(struct kern *nl, const struct cfg_model *model, const char *state_dir, bool keep_ctx,
                   const struct reconcile_report *rep, struct reconcile *ret)
{
        return run(nl, model, &model->settings, state_dir, false, keep_ctx, rep, ret);
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
