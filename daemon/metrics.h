/* Metrics in the Prometheus text format (node_exporter's textfile collector): the
 * counters and the state after the last pass, and their formatting. Pure: no I/O, no
 * clock (the caller passes the time); metrics-file.c writes the text out. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "model.h"
#include "plan.h"

#define METRICS_CHANGE_KINDS (CHANGE_DEL_RULE + 1) /* every enum host_change_kind */
#define METRICS_PASS_BUCKETS 9 /* the last is +Inf */

enum metrics_route_state {
        METRICS_ROUTES_OURS,           /* wanted, ours to install and keep */
        METRICS_ROUTES_OTHER_PROTOCOL, /* wanted, and an equivalent foreign route provides it */
        METRICS_ROUTES_CONFLICTING,    /* wanted, but a different foreign route holds the prefix */
        METRICS_ROUTES_NEEDS_UPSTREAM, /* no direct route possible: the switch or BGP must route it */
        METRICS_ROUTE_STATES,
};

struct metrics {
        /* the host after the last pass that planned */
        bool have_state;
        bool underlay;
        char uplink[IFNAMSIZ];          /* "" = none */
        int proxy_arp;                  /* -1 = unknown */
        int64_t proxy_delay_ms;         /* -1 = unknown */
        uint64_t routes[METRICS_ROUTE_STATES];
        uint64_t borrowed_addresses;    /* hosted by other nodes (plan->n_borrowed) */
        uint64_t tunnels_present;
        /* the source */
        const char *datastore;          /* "files" or "etcdv3"; NULL = not known yet */
        bool datastore_up;
        double model_time;              /* wall clock of the last valid model; 0 = none yet */
        double last_success_time;       /* wall clock of the last pass with nothing failed; 0 = none */
        /* counters since start */
        uint64_t passes;
        uint64_t pass_buckets[METRICS_PASS_BUCKETS]; /* cumulative, as Prometheus wants them */
        double pass_seconds;
        uint64_t drift_repairs;
        uint64_t changes[METRICS_CHANGE_KINDS];
        uint64_t failed[METRICS_CHANGE_KINDS];
};

/* One reconcile pass, as the loop saw it. */
struct metrics_pass {
        const struct plan *plan;            /* NULL: the pass failed before it planned */
        size_t counted;                     /* its first actions, counted already
                                             * (metrics_count_changes(): a sliced pass) */
        const struct host_snapshot *host;   /* observed before the actions */
        const struct host_result *results;  /* one per plan action */
        const struct cfg_settings *settings;
        double seconds;                     /* how long it took */
        double now;                         /* wall clock when it ended */
        bool drift;                         /* its changes repaired drift */
        bool converged;                     /* nothing failed */
};

/* The upper bounds of the pass duration histogram (seconds; the last is +Inf). */
extern const double metrics_pass_bounds[METRICS_PASS_BUCKETS];

void metrics_init(struct metrics *m);
void metrics_observe_pass(struct metrics *m, const struct metrics_pass *p);
/* n changes of a pass and their results, counted as they are applied (a sliced pass,
 * whose plan no longer holds them at its end). */
void metrics_count_changes(struct metrics *m, const struct host_change *a, const struct host_result *res, size_t n,
                           bool drift);
/* The whole exposition, NUL-terminated, in *ret (free()); now: wall clock, for the
 * model's age. -ENOMEM on failure. */
int metrics_format(const struct metrics *m, const char *version, double now, char **ret);
