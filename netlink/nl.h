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
#include "util.h"

struct kern;

int kern_open(struct kern **ret);
/* libnl-3, which netlink/ links, exports a kern_close() of its own and calls it from
 * nl_cache_mngr_free(); a global kern_close() of ours would take over that call. The
 * asm label keeps the C name and gives the symbol another. */
void kern_close(struct kern *nl) __asm__("cu_nl_close");
/* The port id of the socket that makes our changes: notifications of them carry it
 * (see kern_monitor_ignore_sender()). */
uint32_t kern_portid(const struct kern *nl);

/* One consistent snapshot: links (with IPv4 devconf), addresses, routes (see
 * struct host_snapshot), the uplink resolved per the settings, the global devconf
 * values and the uplink's proxy delay. A dump interrupted by a concurrent change
 * (NLM_F_DUMP_INTR) is retried. */
int kern_observe(struct kern *nl, const struct cfg_settings *s, struct host_snapshot *ret);

/* Apply actions in order. Route changes go out in datagrams of up to 256 KiB with
 * one ack each (on the last message); the kernel still reports every failed message,
 * and a route whose outcome is unknown (replies lost) counts as failed. A failed
 * action does not stop the others. results has n entries, all written (zeroed
 * first); free their messages with host_results_free(). Returns the number of failed
 * actions. */
int kern_apply(struct kern *nl, const struct cfg_settings *s, const struct host_change *actions, size_t n,
             struct host_result *results);
