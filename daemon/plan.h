/* The planner: model + observed host (+ what was recorded before our first change)
 * → desired state → ordered actions and findings. Pure: no I/O, no logging, no clock.
 * Every rule of DESIGN.md §3 lives here, so each is testable without root. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "model.h"
#include "state.h"

#define PLAN_TUNNELS_MAX 4
#define PLAN_TABLE_MAIN 254
/* Our policy rules (DESIGN.md §3.2): per underlay pool `to POOL lookup main
 * suppress_prefixlength BLOCKSIZE-1` at PLAN_RULE_PRIORITY_MAIN, then `to POOL lookup
 * OURS` at PLAN_RULE_PRIORITY_OURS. Below the main rule (32766), or the main table's
 * default route would answer pool destinations before our table is asked; and after
 * the rules others add on purpose, so their policy routing keeps precedence: Felix's
 * WireGuard rule (99, WireguardRoutingRulePriority in projectcalico/calico
 * felix/config/config_params.go), the AWS VPC CNI's (512-1536), Cilium's (0-100),
 * Tailscale's (5210-5310), and the ones `ip rule add` without a priority places (the
 * kernel picks one below the lowest existing non-zero priority, so they land before
 * ours). One fixed priority per kind rather than per pool: pools never overlap, so
 * the pairs never meet, and a fixed number makes them easy to find (`ip rule | grep
 * 3270`). 32764 and 32765 are avoided: wg-quick's rules get them on hosts with no other
 * rule. */
#define PLAN_RULE_PRIORITY_MAIN 32700
#define PLAN_RULE_PRIORITY_OURS 32701

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
        bool underlay;                 /* underlay mode is on (an applying IPv4 underlay pool) */
        bool underlay6;                /* IPv6 underlay mode: an applying IPv6 underlay pool */
        size_t n_proxies_wanted;       /* IPv6 proxy neighbour entries for local pods */
        bool tunnels_unneeded;         /* every applying pool is Never/Never */
        bool tunnel6_unneeded;         /* every applying IPv6 pool has vxlanMode Never */
        int uplink;                    /* ifindex, 0 = none (uplink.c chose it) */
        char uplink_name[IFNAMSIZ];
        char uplink_error[128];        /* why there is none */
        struct plan_pool *pools;
        size_t n_pools;
        struct host_change *actions;
        size_t n_actions;
        struct host_tunnel tunnels[PLAN_TUNNELS_MAX]; /* what remove-tunnel actions point to */
        size_t n_tunnels;
        struct host_rule *rules;       /* what add-rule and delete-rule actions point to */
        size_t n_rules;
        struct plan_finding *findings;
        size_t n_findings;
        size_t n_blocking;
        size_t n_routes_wanted;        /* block routes we want (ours or satisfied by others) */
        size_t n_routes_foreign;       /* of those, provided by another protocol */
        size_t n_routes_conflicting;   /* of those, blocked by a different foreign route */
        size_t n_blocks_upstream;      /* underlay blocks only upstream routing reaches */
        size_t n_borrowed;             /* borrowed addresses hosted by other nodes (their routes
                                        * are among n_routes_wanted) */
        size_t n_borrowed_upstream;    /* of those, only upstream routing reaches them */
        /* What the record must hold after the actions are applied. Write it before
         * the first action that changes a recorded value when record_first is set. */
        struct host_record record;
        bool record_first;
};

int plan_build(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
               struct plan **ret);
/* A full pass in slices (issue 16: its memory must not grow with the number of
 * changes): the route walk hands its actions to flush() whenever slice more wait.
 * flush() applies p->actions from where it stopped the last time (those before were
 * applied then), brings ctx up to date (plan_ctx_applied(); ctx NULL: the pass keeps
 * none), reports them, and may take reported ones out of p->actions, keeping the
 * rest in order (a shorter n_actions). Its first call comes after every action that
 * precedes the routes was planned and p->record and p->record_first are final (the
 * record goes down before the first change). A negative return stops the plan with
 * that error. The actions left in p->actions when the plan returns are the caller's
 * to apply, as without a sink. */
struct plan_ctx;
struct plan_sink {
        size_t slice;
        int (*flush)(void *data, struct plan *p, struct plan_ctx *ctx);
        void *data;
};

/* The lines of a pass of at most this many actions are logged at another level: a
 * sink keeps that many reported before it knows (an allowance in the reserve). */
#define PLAN_SINK_KEEP 64

/* plan_build() (ctx NULL) or plan_build_ctx(), with the route walk's actions by
 * slices to sink (NULL: none, the whole plan is returned). */
int plan_build_sliced(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
                      const struct plan_sink *sink, struct plan **ret, struct plan_ctx **ctx);
/* Delta passes (issue 16): what plan_build() computed once that a later pass over a
 * few prefixes needs (the uplink, this node's addresses, the addresses no route may
 * cover, which pools apply, each prefix's share of the plan's counts) and the
 * kernel's routes per prefix (our table, foreign ones in main), kept up to date with
 * plan_ctx_applied(). Holds no pointer into the model or the snapshot. */
struct plan_ctx;
/* plan_build(), and the context in *ctx (NULL when none can be made: routes of a
 * previous routeProtocol/routeTable to withdraw, or out of memory). */
int plan_build_ctx(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
                   struct plan **ret, struct plan_ctx **ctx);
/* The results of applying a plan made from c (plan_build_ctx() or plan_delta()): the
 * routes added and deleted. -ESTALE when an action failed or changed something else
 * than routes and rules (the context no longer says what the host has: drop it),
 * -ENOMEM. */
int plan_ctx_applied(struct plan_ctx *c, const struct host_change *a, size_t n, const struct host_result *res);
/* A route event of the kernel's (rtnetlink) that the loop does not answer with a
 * full pass: another's route in main (BIRD's, a static one) came (removed false) or
 * went. Kept in c, and its prefix planned again by the next plan_delta() (its counts,
 * its findings). 0: noted, or nothing c keeps; 1: only a full pass can tell (ours in
 * main, a route covering a pool, too many such changes); -ENOMEM: c is spent. */
int plan_ctx_route(struct plan_ctx *c, const struct host_route *r, bool removed);
/* Replan only the prefixes t touched, in m (the model after the change; the one c was
 * made from, updated in place, or any model differing from it only there), against h
 * (the snapshot c was made from: links and addresses). 1 with *ret: exactly the route
 * changes plan_build() would make for those prefixes (add, replace, delete in our
 * table; nothing else), the findings about them, and the whole plan's counts and
 * global fields. 0 with *why: only a full pass can tell (t->all, a pool, the settings,
 * this node's address, a pool starting or stopping to apply, a node's address inside
 * a block); c is then spent (plan_ctx_free()). -errno: c is spent too. */
int plan_delta(struct plan_ctx *c, const struct cfg_model *m, const struct host_snapshot *h,
               const struct cfg_touched *t, struct plan **ret, const char **why);
void plan_ctx_free(struct plan_ctx *c);
/* The heap c holds (its arrays and strings, without the allocator's overhead). */
size_t plan_ctx_bytes(const struct plan_ctx *c);
/* --cleanup: delete every rule and route carrying our protocol, restore recorded values. */
int plan_cleanup(const struct cfg_settings *s, const struct host_snapshot *h, const struct host_record *rec,
                 struct plan **ret);
void plan_free(struct plan *p);
/* A finding about something the planner does not see (the datastore's transport),
 * added by the caller after plan_build(); code must be a string literal. */
_printf_(4, 5) int plan_add_finding(struct plan *p, enum plan_severity sev, const char *code, const char *fmt, ...);

const char *host_change_kind_name(enum host_change_kind k);       /* "add-route", ... as in --check JSON */
const char *plan_severity_name(enum plan_severity s); /* "blocking", "warning", "info" */
const char *plan_route_type_name(uint8_t type);      /* "unicast", "blackhole", ... */
/* One line: "add-route 10.0.0.0/26 via 192.168.1.2 dev eth0 proto 211 metric 1024". */
int host_change_fmt(const struct host_change *a, char *buf, size_t size);
