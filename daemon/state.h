/* The record of what the uplink's settings were before our first change, kept in the
 * runtime directory ($RUNTIME_DIRECTORY, as systemd sets it; default
 * /run/calico-underlay) so that the end of underlay mode, --cleanup, or a restarted
 * daemon restores them. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_DEFAULT_DIR "/run/calico-underlay"

/* What the daemon recorded before it first changed the uplink's settings, so that
 * the end of underlay mode restores them. The planner reads and writes it as a value;
 * state.c keeps it in the file. */
struct host_record {
        bool valid;
        char ifname[IFNAMSIZ];
        int proxy_arp;          /* -1 = not recorded */
        int64_t proxy_delay_ms; /* -1 = not recorded */
        /* The device's index when recorded (0 = unknown: records of 0.1.0). A renamed
         * device keeps its index: the record follows it to its new name. */
        int ifindex;
};

/* The directory to use: the first entry of $RUNTIME_DIRECTORY, else the default. */
const char *state_dir(char *buf, size_t size);
/* Missing file: *ret = { .valid = false }. A malformed file is -EINVAL. */
int state_load(const char *dir, struct host_record *ret);
/* Written atomically (temporary file + rename); !rec->valid removes the file. */
int state_save(const char *dir, const struct host_record *rec);
bool state_equal(const struct host_record *a, const struct host_record *b);
