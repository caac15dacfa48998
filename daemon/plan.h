/* The planner: model + observed host (+ what was recorded before our first change)
 * → desired state → ordered actions and findings. Pure: no I/O, no logging, no clock.
 * Every rule of DESIGN.md §3 lives here, so each is testable without root. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "model.h"

enum plan_kind {
        PLAN_SET_PROXY_DELAY,
        PLAN_SET_PROXY_ARP,
        PLAN_DEL_ROUTE,
        PLAN_ADD_ROUTE,
        PLAN_REMOVE_TUNNEL,
};

#define PLAN_TUNNEL_ADDRS_MAX 8
#define PLAN_TUNNELS_MAX 4

/* remove-tunnel: the device's kind and the Calico addresses on it (removed when the
 * kernel keeps the device, as it keeps the IPIP fallback tunl0). Kept beside the
 * actions, not in each: a route action must stay small (100k of them at scale). */
struct plan_tunnel {
        char kind[16];
        struct cfg_prefix addrs[PLAN_TUNNEL_ADDRS_MAX];
        size_t n_addrs;
        bool foreign_addrs; /* someone else's addresses are on it: leave the device up */
};

struct plan_action {
        enum plan_kind kind;
        int ifindex;
        char dev[IFNAMSIZ];
        int64_t value;   /* proxy_arp (0/1) or proxy delay (ms) */
        bool restore;    /* putting back the value recorded before our first change */
        bool replace;    /* add-route: replaces an own route with the same key */
        struct host_route route;
        uint32_t pool;   /* index into model->pools, UINT32_MAX when none */
        const struct plan_tunnel *tunnel; /* remove-tunnel: never NULL (plan->tunnels) */
};

enum plan_severity {
        PLAN_BLOCKING,
        PLAN_WARNING,
        PLAN_INFO,
};

struct plan_finding {
        enum plan_severity severity;
        const char *code; /* stable, e.g. "needs-upstream-routing" */
        char *message;
};

struct plan_pool {
        uint32_t pool;
        bool applies;
        bool underlay;
        char reason[160];
};

struct plan {
        bool underlay;                 /* underlay mode is on */
        bool tunnels_unneeded;         /* every applying pool is Never/Never */
        int uplink;                    /* ifindex, 0 = none */
        char uplink_name[IFNAMSIZ];
        struct plan_pool *pools;
        size_t n_pools;
        struct plan_action *actions;
        size_t n_actions;
        struct plan_tunnel tunnels[PLAN_TUNNELS_MAX]; /* what remove-tunnel actions point to */
        size_t n_tunnels;
        struct plan_finding *findings;
        size_t n_findings;
        size_t n_blocking;
        size_t n_routes_wanted;        /* block routes we want (ours or satisfied by others) */
        size_t n_routes_foreign;       /* of those, provided by another protocol */
        /* What the record must hold after the actions are applied. Write it before
         * the first action that changes a recorded value when record_first is set. */
        struct host_record record;
        bool record_first;
};

int plan_build(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
               struct plan **ret);
/* --cleanup: delete every route carrying our protocol, restore recorded values. */
int plan_cleanup(const struct cfg_settings *s, const struct host_snapshot *h, const struct host_record *rec,
                 struct plan **ret);
void plan_free(struct plan *p);

const char *plan_kind_name(enum plan_kind k);       /* "add-route", ... as in --check JSON */
const char *plan_severity_name(enum plan_severity s); /* "blocking", "warning", "info" */
const char *plan_route_type_name(uint8_t type);      /* "unicast", "blackhole", ... */
/* One line: "add-route 10.0.0.0/26 via 192.168.1.2 dev eth0 proto 211 metric 1024". */
int plan_action_fmt(const struct plan_action *a, char *buf, size_t size);
