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
 * n * sizeof() bytes. Kept to 128 bytes: first-touch page faults cost 10-30 us per
 * 4 KiB page on the VMs measured (tests/bench/bench_scale.py), and 26 MB of 260-byte
 * results were ~80 ms of a ~600 ms apply of 100k routes. */
struct nl_result {
        int error;          /* 0 or -errno */
        char message[124];  /* the kernel's extack text, or what was done (tunnels);
                             * truncated when longer */
};

/* Apply actions in order. Route changes go out in datagrams of up to 256 KiB with
 * one ack each (on the last message); the kernel still reports every failed message,
 * and a route whose outcome is unknown (replies lost) counts as failed. A failed
 * action does not stop the others. results has n entries, all written. Returns the
 * number of failed actions. */
int nl_apply(struct nl *nl, const struct cfg_settings *s, const struct plan_action *actions, size_t n,
             struct nl_result *results);
