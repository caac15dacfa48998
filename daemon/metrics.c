/* Metrics: what a pass leaves on the host and what the daemon did since it started,
 * counted from the plan and the results of each pass, and printed in the Prometheus
 * text exposition format (version 0.0.4) for node_exporter's textfile collector.
 *
 * Names follow Prometheus' conventions: the calico_underlay_ prefix, base units in
 * the name (_seconds), _total on counters, a HELP and a TYPE line per family. Every
 * label value of a family is always printed (0 included), so a rate() over a kind
 * that has not happened yet is 0, not absent. Pure: no I/O, no clock, no logging; the
 * loop decides when, metrics-file.c where. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const double metrics_pass_bounds[METRICS_PASS_BUCKETS] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, INFINITY };

static const char *const route_states[METRICS_ROUTE_STATES] = {
        [METRICS_ROUTES_OURS] = "ours",
        [METRICS_ROUTES_OTHER_PROTOCOL] = "other_protocol",
        [METRICS_ROUTES_CONFLICTING] = "conflicting",
        [METRICS_ROUTES_NEEDS_UPSTREAM] = "needs_upstream",
};

void metrics_init(struct metrics *m)
{
        *m = (struct metrics){ .proxy_arp = -1, .proxy_delay_ms = -1 };
}

static bool tunnel_removed(const struct metrics_pass *p, const char *name)
{
        for (size_t i = 0; i < p->plan->n_actions; i++) {
                const struct host_change *a = &p->plan->actions[i];

                if (a->kind == CHANGE_REMOVE_TUNNEL && !p->results[i].error && streq(a->dev, name))
                        return true;
        }
        return false;
}

/* Configured tunnel devices that are there and up after the pass. tunl0 stays after
 * a delete (the kernel keeps the IPIP fallback device): down, it counts as removed,
 * as the planner counts it. */
static uint64_t count_tunnels(const struct metrics_pass *p)
{
        const struct cfg_settings *s = p->settings;
        const char *names[] = { s->tunnel_ipip, s->tunnel_vxlan, s->tunnel_vxlan_v6 };
        uint64_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const struct host_link *l = names[i] ? host_link_by_name(p->host, names[i]) : NULL;

                n += l && l->up && !tunnel_removed(p, names[i]);
        }
        return n;
}

/* The uplink's values after the pass: what was observed, or what a change that
 * worked set. A restore aimed at a former uplink does not count. */
static void uplink_values(struct metrics *m, const struct metrics_pass *p)
{
        const struct plan *pl = p->plan;
        const struct host_link *l = pl->uplink ? host_link_by_index(p->host, pl->uplink) : NULL;

        snprintf(m->uplink, sizeof(m->uplink), "%s", l ? pl->uplink_name : "");
        m->proxy_arp = l ? l->proxy_arp : -1;
        m->proxy_delay_ms = l ? l->proxy_delay_ms : -1;
        for (size_t i = 0; l && i < pl->n_actions; i++) {
                const struct host_change *a = &pl->actions[i];

                if (p->results[i].error || a->ifindex != pl->uplink)
                        continue;
                if (a->kind == CHANGE_SET_PROXY_ARP)
                        m->proxy_arp = (int)a->value;
                else if (a->kind == CHANGE_SET_PROXY_DELAY)
                        m->proxy_delay_ms = a->value;
        }
}

void metrics_count_changes(struct metrics *m, const struct host_change *a, const struct host_result *res, size_t n,
                           bool drift)
{
        for (size_t i = 0; i < n; i++) {
                unsigned k = (unsigned)a[i].kind;

                if (k >= METRICS_CHANGE_KINDS)
                        continue;
                if (res[i].error)
                        m->failed[k]++;
                else {
                        m->changes[k]++;
                        m->drift_repairs += drift;
                }
        }
}

static void count_actions(struct metrics *m, const struct metrics_pass *p)
{
        size_t from = p->counted < p->plan->n_actions ? p->counted : p->plan->n_actions;

        metrics_count_changes(m, p->plan->actions + from, p->results + from, p->plan->n_actions - from, p->drift);
}

static void route_states_of(struct metrics *m, const struct plan *pl)
{
        size_t other = pl->n_routes_foreign + pl->n_routes_conflicting;

        m->routes[METRICS_ROUTES_OURS] = pl->n_routes_wanted > other ? pl->n_routes_wanted - other : 0;
        m->routes[METRICS_ROUTES_OTHER_PROTOCOL] = pl->n_routes_foreign;
        m->routes[METRICS_ROUTES_CONFLICTING] = pl->n_routes_conflicting;
        m->routes[METRICS_ROUTES_NEEDS_UPSTREAM] = pl->n_blocks_upstream + pl->n_borrowed_upstream;
}

void metrics_observe_pass(struct metrics *m, const struct metrics_pass *p)
{
        m->passes++;
        m->pass_seconds += p->seconds;
        for (size_t i = 0; i < METRICS_PASS_BUCKETS; i++)
                m->pass_buckets[i] += p->seconds <= metrics_pass_bounds[i];
        if (p->converged && p->plan)
                m->last_success_time = p->now;
        if (!p->plan || !p->results)
                return; /* the host as the last pass that planned left it */
        m->have_state = true;
        m->underlay = p->plan->underlay;
        uplink_values(m, p);
        count_actions(m, p);
        route_states_of(m, p->plan);
        m->tunnels_present = count_tunnels(p);
        m->borrowed_addresses = p->plan->n_borrowed;
}

/* ---- the text format ---- */

/* A label value: backslash, double quote and newline escaped, as the format says. */
static void put_label(FILE *f, const char *v)
{
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        fputc('\\', f);
                if (*v == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*v, f);
        }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP calico_underlay_%s %s\n# TYPE calico_underlay_%s %s\n", name, help, name, type);
}

static void put_u(FILE *f, const char *name, uint64_t v)
{
        fprintf(f, "calico_underlay_%s %llu\n", name, (unsigned long long)v);
}

/* Seconds since the epoch to the millisecond, durations to the microsecond. */
static void put_d(FILE *f, const char *name, double v)
{
        fprintf(f, "calico_underlay_%s %.6f\n", name, v);
}

static void by_kind(FILE *f, const char *name, const uint64_t *v)
{
        for (unsigned k = 0; k < METRICS_CHANGE_KINDS; k++)
                fprintf(f, "calico_underlay_%s{kind=\"%s\"} %llu\n", name,
                        host_change_kind_name((enum host_change_kind)k), (unsigned long long)v[k]);
}

static void format_state(FILE *f, const struct metrics *m)
{
        family(f, "underlay_mode", "gauge", "Whether underlay mode is on (an applying pool has natOutgoing false).");
        put_u(f, "underlay_mode", m->have_state && m->underlay);
        family(f, "proxy_arp", "gauge", "The uplink's net.ipv4.conf.<uplink>.proxy_arp after the last pass.");
        if (m->uplink[0] && m->proxy_arp >= 0) {
                fputs("calico_underlay_proxy_arp{interface=\"", f);
                put_label(f, m->uplink);
                fprintf(f, "\"} %d\n", m->proxy_arp);
        }
        family(f, "proxy_delay_seconds", "gauge", "The uplink's proxy ARP delay (neigh proxy_delay) after the last pass.");
        if (m->uplink[0] && m->proxy_delay_ms >= 0) {
                fputs("calico_underlay_proxy_delay_seconds{interface=\"", f);
                put_label(f, m->uplink);
                fprintf(f, "\"} %.3f\n", (double)m->proxy_delay_ms / 1000.0);
        }
        family(f, "block_routes", "gauge",
               "Routes for underlay blocks and borrowed addresses by state: ours, provided by another protocol, held "
               "by a conflicting foreign route, or needing upstream routing.");
        for (unsigned i = 0; i < METRICS_ROUTE_STATES; i++)
                fprintf(f, "calico_underlay_block_routes{state=\"%s\"} %llu\n", route_states[i],
                        (unsigned long long)m->routes[i]);
        family(f, "borrowed_addresses", "gauge",
               "Borrowed pod addresses (IPAMBlock secondary.node) that other nodes host, each wanting a host route.");
        put_u(f, "borrowed_addresses", m->borrowed_addresses);
        family(f, "tunnels_present", "gauge", "Configured IPIP/VXLAN tunnel devices present and up after the last pass.");
        put_u(f, "tunnels_present", m->tunnels_present);
}

static void format_passes(FILE *f, const struct metrics *m)
{
        family(f, "pass_duration_seconds", "histogram", "Reconcile passes (observe, plan, apply) and their duration.");
        for (size_t i = 0; i < METRICS_PASS_BUCKETS; i++) {
                if (isinf(metrics_pass_bounds[i]))
                        fputs("calico_underlay_pass_duration_seconds_bucket{le=\"+Inf\"}", f);
                else
                        fprintf(f, "calico_underlay_pass_duration_seconds_bucket{le=\"%g\"}", metrics_pass_bounds[i]);
                fprintf(f, " %llu\n", (unsigned long long)m->pass_buckets[i]);
        }
        put_d(f, "pass_duration_seconds_sum", m->pass_seconds);
        put_u(f, "pass_duration_seconds_count", m->passes);
        family(f, "drift_repairs_total", "counter", "Changes that repaired drift (something else changed what we own).");
        put_u(f, "drift_repairs_total", m->drift_repairs);
        family(f, "changes_total", "counter", "Changes applied to the host, by kind.");
        by_kind(f, "changes_total", m->changes);
        family(f, "failed_actions_total", "counter", "Changes the kernel refused, by kind.");
        by_kind(f, "failed_actions_total", m->failed);
        family(f, "last_success_timestamp_seconds", "gauge", "When the last pass with nothing failed ended (Unix time).");
        if (m->last_success_time > 0)
                put_d(f, "last_success_timestamp_seconds", m->last_success_time);
}

static void format_source(FILE *f, const struct metrics *m, double now)
{
        family(f, "datastore_up", "gauge", "Whether the datastore (files, etcdv3 or kubernetes) answers.");
        if (m->datastore)
                fprintf(f, "calico_underlay_datastore_up{datastore=\"%s\"} %d\n", m->datastore, m->datastore_up);
        family(f, "model_timestamp_seconds", "gauge", "When the model in use was loaded (Unix time).");
        if (m->model_time > 0)
                put_d(f, "model_timestamp_seconds", m->model_time);
        family(f, "model_age_seconds", "gauge", "Age of the model in use when this file was written.");
        if (m->model_time > 0)
                put_d(f, "model_age_seconds", now > m->model_time ? now - m->model_time : 0);
}

int metrics_format(const struct metrics *m, const char *version, double now, char **ret)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        family(f, "build_info", "gauge", "calico-underlayd's version.");
        fputs("calico_underlay_build_info{version=\"", f);
        put_label(f, version);
        fputs("\"} 1\n", f);
        format_state(f, m);
        format_passes(f, m);
        format_source(f, m, now);
        if (ferror(f)) {
                fclose(f);
                free(buf);
                return -ENOMEM;
        }
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}
