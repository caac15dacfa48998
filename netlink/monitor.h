/* rtnetlink event monitor: link, IPv4 address, route, policy rule (IPv4 and IPv6) and
 * IPv4 netconf notifications,
 * handed to the caller as plain events. The caller decides what is relevant. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "host.h"

enum kern_event_type {
        NL_EV_LINK,
        NL_EV_ADDR,
        NL_EV_ROUTE,
        NL_EV_NETCONF,
        NL_EV_RULE,
};

struct kern_event {
        enum kern_event_type type;
        bool removed;
        int ifindex; /* netconf: -1 = "all", -2 = "default" */
        char ifname[IFNAMSIZ];
        struct host_route route; /* NL_EV_ROUTE */
        struct host_rule rule;   /* NL_EV_RULE */
};

struct kern_monitor;

int kern_monitor_open(struct kern_monitor **ret);
void kern_monitor_close(struct kern_monitor *m);
int kern_monitor_fd(const struct kern_monitor *m);
/* Drop, in the kernel (a socket filter), the notifications of changes requested
 * through the netlink socket with this port id (kern_portid(): our own changes). They
 * tell us nothing, would start a reconcile pass for nothing, and a bulk change of
 * 100k routes would overrun the event socket (about 1 KiB of buffer each). Changes
 * the kernel makes by itself or others make still arrive. */
int kern_monitor_ignore_sender(struct kern_monitor *m, uint32_t portid);
/* Read what is pending (non-blocking; at most a bounded number of datagrams per call,
 * so the socket may still be readable afterwards) and call fn for each event.
 * Returns 0; 1 when notifications were lost (ENOBUFS: the kernel overran the
 * socket; or a truncated datagram): the caller must resync from a full dump; or
 * -errno on a socket error. */
int kern_monitor_drain(struct kern_monitor *m, void (*fn)(const struct kern_event *ev, void *userdata), void *userdata);
/* The receive buffer the kernel granted (bytes, as getsockopt reports it). */
size_t kern_monitor_rcvbuf(const struct kern_monitor *m);
