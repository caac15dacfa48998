/* The record of what the uplink's settings were before our first change, and of the
 * protocol and table our routes carry, kept in the runtime directory
 * ($RUNTIME_DIRECTORY, as systemd sets it; default /run/calico-underlay) so that the end
 * of underlay mode, --cleanup, or a restarted daemon restores the settings and finds
 * its routes after routeProtocol or routeTable changed. */
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
        /* net.ipv6.conf.<ifname>.proxy_ndp before our first change (IPv6 underlay
         * mode), when has_proxy_ndp. */
        bool has_proxy_ndp;
        int proxy_ndp;
        bool has_proxy_delay6; /* net.ipv6.neigh.<ifname>.proxy_delay (ms) before our first change */
        int64_t proxy_delay6_ms;
        /* The device's index when recorded (0 = unknown: records of 0.1.0). A renamed
         * device keeps its index: the record follows it to its new name. */
        int ifindex;
        /* The protocol and table our routes carry (0 = not recorded: no route of ours
         * is wanted, or a record of 0.1.0). When the settings change either, the routes
         * of the recorded pair are still ours to withdraw. Kept with or without the
         * uplink's values above (valid). */
        uint8_t route_protocol;
        uint32_t route_table;
        /* The record on disk does not parse, or does not match the device it names
         * (name and ifindex): why. It is kept as it is, never replaced by values the
         * daemon set itself, and nothing is restored from it. */
        char damaged[256];
};

/* The initializer of a record that holds nothing: every value "not recorded". */
#define HOST_RECORD_INIT { .proxy_arp = -1, .proxy_delay_ms = -1 }

/* The directory to use: the first entry of $RUNTIME_DIRECTORY, else the default. */
const char *state_dir(char *buf, size_t size);
/* Missing file (or folder): *ret = { .valid = false }. A file that does not parse is
 * returned with ret->damaged saying why (and 0). A folder that is not ours (owned by
 * another user, or a symlink) is -EPERM; other errors -errno; why says what. */
int state_load(const char *dir, struct host_record *ret, char *why, size_t why_size);
/* Written atomically: a new temporary file (O_EXCL|O_NOFOLLOW: never through a link
 * someone left in its place) renamed over the record. A record with neither the
 * uplink's values nor a route owner removes the file. Refuses (-EPERM) a folder owned
 * by another user. */
int state_save(const char *dir, const struct host_record *rec, char *why, size_t why_size);
bool state_equal(const struct host_record *a, const struct host_record *b);
/* Some part is recorded (the file exists). */
bool state_present(const struct host_record *rec);
