/* The event socket. Its receive buffer is made large (several MB) because a bulk
 * route change of BIRD's floods it; our own changes can be kept out of it altogether
 * by a socket filter (nl_monitor_ignore_sender). If the kernel still overruns it
 * (ENOBUFS), notifications are lost and the caller must do a full resync. */
#include "monitor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/filter.h>
#include <linux/netconf.h>
#include <linux/rtnetlink.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

#define MONITOR_RCVBUF (8 << 20)
/* datagrams read per call, at most */
#define NL_MONITOR_BATCH 1024

struct nl_monitor {
        struct mnl_socket *sock;
};

int nl_monitor_open(struct nl_monitor **ret)
{
        static const unsigned groups[] = { RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE,
                                           RTNLGRP_IPV4_NETCONF };
        struct nl_monitor *m = calloc(1, sizeof(*m));
        int buf = MONITOR_RCVBUF, r;

        if (!m)
                return -ENOMEM;
        m->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (!m->sock || mnl_socket_bind(m->sock, 0, MNL_SOCKET_AUTOPID) < 0)
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(groups); i++)
                if (mnl_socket_setsockopt(m->sock, NETLINK_ADD_MEMBERSHIP, (void *)&groups[i], sizeof(groups[i])) < 0)
                        goto fail;
        if (setsockopt(mnl_socket_get_fd(m->sock), SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
                (void)setsockopt(mnl_socket_get_fd(m->sock), SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        *ret = m;
        return 0;
fail:
        r = -errno;
        nl_monitor_close(m);
        return r ? r : -EIO;
}

void nl_monitor_close(struct nl_monitor *m)
{
        if (!m)
                return;
        if (m->sock)
                mnl_socket_close(m->sock);
        free(m);
}

int nl_monitor_fd(const struct nl_monitor *m)
{
        return mnl_socket_get_fd(m->sock);
}

int nl_monitor_ignore_sender(struct nl_monitor *m, uint32_t portid)
{
        /* Classic BPF loads words big-endian: compare with the port id as it lies in
         * memory, read that way. A notification is one message per datagram. */
        struct sock_filter code[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_pid)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(portid), 0, 1),
                BPF_STMT(BPF_RET | BPF_K, 0),
                BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
        };
        struct sock_fprog prog = { .len = ELEMENTSOF(code), .filter = code };

        if (portid == 0)
                return -EINVAL; /* the kernel's own notifications */
        if (setsockopt(mnl_socket_get_fd(m->sock), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
                return -errno;
        return 0;
}

static void parse_route(const struct nlmsghdr *h, struct nl_event *ev)
{
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(h);
        const struct nlattr *a;
        size_t alen = rtm->rtm_family == AF_INET6 ? 16 : 4;

        ev->route.dst.family = rtm->rtm_family;
        ev->route.dst.len = rtm->rtm_dst_len;
        ev->route.table = rtm->rtm_table;
        ev->route.protocol = rtm->rtm_protocol;
        ev->route.type = rtm->rtm_type;
        mnl_attr_for_each(a, h, sizeof(*rtm)) {
                switch (mnl_attr_get_type(a)) {
                case RTA_DST:
                        if (mnl_attr_get_payload_len(a) == alen)
                                memcpy(ev->route.dst.addr, mnl_attr_get_payload(a), alen);
                        break;
                case RTA_TABLE:
                        ev->route.table = mnl_attr_get_u32(a);
                        break;
                case RTA_OIF:
                        ev->route.oif = (int)mnl_attr_get_u32(a);
                        break;
                default:
                        break;
                }
        }
        ev->ifindex = ev->route.oif;
}

static void parse_link(const struct nlmsghdr *h, struct nl_event *ev)
{
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
        const struct nlattr *a;

        ev->ifindex = ifi->ifi_index;
        mnl_attr_for_each(a, h, sizeof(*ifi))
                if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
                        snprintf(ev->ifname, sizeof(ev->ifname), "%s", mnl_attr_get_str(a));
}

static void parse_netconf(const struct nlmsghdr *h, struct nl_event *ev)
{
        const struct nlattr *a;

        mnl_attr_for_each(a, h, sizeof(struct netconfmsg))
                if (mnl_attr_get_type(a) == NETCONFA_IFINDEX && mnl_attr_get_payload_len(a) >= 4)
                        ev->ifindex = (int)mnl_attr_get_u32(a);
}

struct drain_ctx {
        void (*fn)(const struct nl_event *ev, void *userdata);
        void *userdata;
};

static int on_msg(const struct nlmsghdr *h, void *data)
{
        struct drain_ctx *c = data;
        struct nl_event ev = {};

        switch (h->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
                ev.type = NL_EV_LINK;
                ev.removed = h->nlmsg_type == RTM_DELLINK;
                parse_link(h, &ev);
                break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
                ev.type = NL_EV_ADDR;
                ev.removed = h->nlmsg_type == RTM_DELADDR;
                ev.ifindex = (int)((const struct ifaddrmsg *)mnl_nlmsg_get_payload(h))->ifa_index;
                break;
        case RTM_NEWROUTE:
        case RTM_DELROUTE:
                ev.type = NL_EV_ROUTE;
                ev.removed = h->nlmsg_type == RTM_DELROUTE;
                parse_route(h, &ev);
                break;
        case RTM_NEWNETCONF:
                ev.type = NL_EV_NETCONF;
                parse_netconf(h, &ev);
                break;
        default:
                return MNL_CB_OK;
        }
        c->fn(&ev, c->userdata);
        return MNL_CB_OK;
}

/* One datagram. Only the kernel's own notifications count (sender port 0): a local
 * process may send to our port, and we must not act on it. A truncated datagram lost
 * notifications just like an overrun. */
static ssize_t recv_one(struct nl_monitor *m, void *buf, size_t size, bool *ret_lost)
{
        struct sockaddr_nl sa = {};
        struct iovec iov = { buf, size };
        struct msghdr msg = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        n = recvmsg(mnl_socket_get_fd(m->sock), &msg, 0);
        if (n < 0)
                return -errno;
        if (msg.msg_flags & MSG_TRUNC) {
                *ret_lost = true;
                return 0;
        }
        if (msg.msg_namelen != sizeof(sa) || sa.nl_pid != 0)
                return 0;
        return n;
}

int nl_monitor_drain(struct nl_monitor *m, void (*fn)(const struct nl_event *ev, void *userdata), void *userdata)
{
        struct drain_ctx c = { fn, userdata };
        static char buf[64 << 10]; /* one reader; large enough for any notification */
        bool lost = false;
        ssize_t n;

        /* Bounded, so that a flood of notifications cannot starve signals and the
         * watchdog: the socket stays readable and the caller comes back. */
        for (int i = 0; i < NL_MONITOR_BATCH; i++) {
                n = recv_one(m, buf, sizeof(buf), &lost);
                if (n == -EINTR)
                        continue;
                if (n == -ENOBUFS) {
                        lost = true; /* the kernel dropped notifications: keep reading */
                        continue;
                }
                if (n < 0)
                        return n == -EAGAIN || n == -EWOULDBLOCK ? lost : (int)n;
                if (n > 0 && mnl_cb_run(buf, (size_t)n, 0, 0, on_msg, &c) < 0 && errno != ESRCH && errno != EPROTO)
                        lost = true; /* a malformed batch: do not trust what we know */
        }
        return lost;
}

size_t nl_monitor_rcvbuf(const struct nl_monitor *m)
{
        socklen_t len = sizeof(int);
        int v = 0;

        if (getsockopt(mnl_socket_get_fd(m->sock), SOL_SOCKET, SO_RCVBUF, &v, &len) < 0 || v < 0)
                return 0;
        return (size_t)v;
}
