/* Which device is the uplink: policy over an observed snapshot, part of the planner.
 * Pure: no I/O, no kernel; the snapshot carries what it needs (links, addresses,
 * routes, and for can-reach= the kernel's answer to a route lookup). */
#pragma once

#include <stddef.h>

#include "host.h"
#include "model.h"

/* The uplink per the settings (uplink: auto, a device name, interface=REGEX,
 * can-reach=ADDRESS; DESIGN.md §2.1). Returns its ifindex, a link of h; or 0 with
 * the reason in err (e.g. `no interface named "eth9"`). */
int uplink_choose(const struct cfg_settings *s, const struct host_snapshot *h, char *err, size_t err_size);
