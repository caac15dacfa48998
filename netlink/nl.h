/* netlink/: the only code that talks to the kernel. Observe the host into a
 * struct host_snapshot, apply planned actions, and watch for events.
 * Returns -errno; the kernel's extended-ack text, when there is one, is copied into
 * the caller's buffer. libnl and libmnl types never leave this folder. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "model.h"
#include "plan.h"
#include "util.h"

struct nl;

int nl_open(struct nl **ret);
/* libnl-3, which netlink/ links, exports a nl_close() of its own and calls it from
 * nl_cache_mngr_free(); a global nl_close() of ours would take over that call. The
 * asm label keeps the C name and gives the symbol another. */
void nl_close(struct nl *nl) __asm__("cu_nl_close");
/* The port id of the socket that makes our changes: notifications of them carry it
 * (see nl_monitor_ignore_sender()). */
uint32_t nl_portid(const struct nl *nl);

/* One consistent snapshot: links (with IPv4 devconf), addresses, routes (see
 * struct host_snapshot), the uplink resolved per the settings, the global devconf
 * values and the uplink's proxy delay. A dump interrupted by a concurrent change
 * (NLM_F_DUMP_INTR) is retried. */
int nl_observe(struct nl *nl, const struct cfg_settings *s, struct host_snapshot *ret);

/* Result of one action: one per planned action, all written, so 100k routes touch
 * n * sizeof() bytes; kept to 16 (first-touch page faults cost 10-30 us per 4 KiB
 * page on the VMs measured by tests/bench/bench_scale.py). Most routes have no
 * message: it is allocated only when there is something to say. */
struct nl_result {
        int error;     /* 0 or -errno */
        char *message; /* NULL, or the kernel's extack text or what was done ("already
                        * present", the tunnel steps); freed by nl_results_free() */
};

/* The message, "" when there is none. */
const char *nl_result_message(const struct nl_result *r);
/* Replace or extend the message. Out of memory leaves it as it was: a message
 * explains an outcome, it is never the outcome. */
_printf_(2, 3) void nl_result_set_message(struct nl_result *r, const char *fmt, ...);
_printf_(2, 3) void nl_result_append_message(struct nl_result *r, const char *fmt, ...);
/* Free the messages of n results (not the array) and zero them. */
void nl_results_free(struct nl_result *r, size_t n);

/* Apply actions in order. Route changes go out in datagrams of up to 256 KiB with
 * one ack each (on the last message); the kernel still reports every failed message,
 * and a route whose outcome is unknown (replies lost) counts as failed. A failed
 * action does not stop the others. results has n entries, all written (zeroed
 * first); free their messages with nl_results_free(). Returns the number of failed
 * actions. */
int nl_apply(struct nl *nl, const struct cfg_settings *s, const struct plan_action *actions, size_t n,
             struct nl_result *results);
