/* netlink/: the only code that talks to the kernel. Observe the host into a
 * struct host_snapshot, apply the changes the planner made, and watch for events. It
 * decides nothing: what to observe and how to mark routes are plain arguments.
 * Returns -errno; the kernel's extended-ack text, when there is one, is copied into
 * the caller's buffer. libnl and libmnl types never leave this folder. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "prefix.h"
#include "util.h"

struct kern;

int kern_open(struct kern **ret);
void kern_close(struct kern *nl);
/* The port id of the socket that makes our changes: notifications of them carry it
 * (see kern_monitor_ignore_sender()). */
uint32_t kern_portid(const struct kern *nl);

/* What to observe beyond what every snapshot holds. */
struct kern_observe_opts {
        /* Also ask the kernel for its route to this address (h->reach; the planner's
         * uplink: can-reach=). family 0 = do not ask. */
        struct cfg_prefix reach;
        /* Narrow the route dumps to what the caller reads: the main table, this table
         * and routes of this protocol in any table (the kernel filters them: strict
         * dump checking). 0 = routes of every table. */
        uint32_t route_table;
        uint8_t route_protocol;
        /* Routes of this protocol in route_table (not main) that the compact form can
         * say go to h->routes4 (struct host_route4); 0 = every route stays whole. */
        uint8_t own_protocol;
};

/* One consistent snapshot: links (with IPv4 devconf and proxy delay), addresses,
 * routes (see struct host_snapshot), the global devconf values, and the route lookup
 * opts asks for (opts may be NULL). A dump interrupted by a concurrent change
 * (NLM_F_DUMP_INTR) is retried. */
int kern_observe(struct kern *nl, const struct kern_observe_opts *opts, struct host_snapshot *ret);

/* How routes are written. */
struct kern_apply_opts {
        /* Every route added or deleted carries this protocol number; the kernel
         * matches it on delete, so a route of another protocol is never removed. */
        uint8_t protocol;
        uint32_t table; /* for a route whose table is 0 */
};

/* Apply actions in order. Route changes go out in datagrams of up to 256 KiB with
 * one ack each (on the last message); the kernel still reports every failed message,
 * and a route whose outcome is unknown (replies lost) counts as failed. A failed
 * action does not stop the others. results has n entries, all written (zeroed
 * first); free their messages with host_results_free(). Returns the number of failed
 * actions. */
int kern_apply(struct kern *nl, const struct kern_apply_opts *opts, const struct host_change *actions, size_t n,
               struct host_result *results);
