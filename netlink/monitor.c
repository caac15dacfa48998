/* The event socket. Its receive buffer is made large (several MB) because a bulk
 * route change of BIRD's floods it; our own changes can be kept out of it altogether
 * by a socket filter (kern_monitor_ignore_sender). If the kernel still overruns it
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

#include "nl-parse.h"
#include "sock.h"
#include "util.h"

#define MONITOR_RCVBUF (8 << 20)
/* datagrams read per call, at most */
#define NL_MONITOR_BATCH 1024

struct kern_monitor {
        struct mnl_socket *sock;
};

int kern_monitor_open(struct kern_monitor **ret)
{
        /* IPv6 too: IPv6 block routes of ours, the uplink's IPv6 prefixes (on-link). Rule
         * groups: a rule of ours deleted or changed by hand is repaired at once. */
        static const unsigned groups[] = { RTNLGRP_LINK,        RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE,
                                           RTNLGRP_IPV4_NETCONF, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE,
                                           RTNLGRP_IPV4_RULE,    RTNLGRP_IPV6_RULE };
        const struct kern_sock_opts o = { .flags = SOCK_NONBLOCK | SOCK_CLOEXEC, .rcvbuf = MONITOR_RCVBUF,
                                          .groups = groups, .n_groups = ELEMENTSOF(groups) };
        struct kern_monitor *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        r = kern_sock_open(&o, &m->sock, NULL, NULL);
        if (r < 0) {
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void kern_monitor_close(struct kern_monitor *m)
{
        if (!m)
                return;
        if (m->sock)
                mnl_socket_close(m->sock);
        free(m);
}

int kern_monitor_fd(const struct kern_monitor *m)
{
        return mnl_socket_get_fd(m->sock);
}

int kern_monitor_ignore_sender(struct kern_monitor *m, uint32_t portid)
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

/* One datagram. Only the kernel's own notifications count (sender port 0): a local
 * process may send to our port, and we must not act on it. A truncated datagram lost
 * notifications just like an overrun. */
static ssize_t recv_one(struct kern_monitor *m, void *buf, size_t size, bool *ret_lost)
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

int kern_monitor_drain(struct kern_monitor *m, void (*fn)(const struct kern_event *ev, void *userdata), void *userdata)
{
        static char buf[64 << 10] __attribute__((aligned(8))); /* one reader; holds any notification */
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
                /* A malformed datagram (a message too short for its header, bytes
                 * left over): what it said is unknown, so do not trust what we know. */
                if (n > 0 && kern_parse_events(buf, (size_t)n, fn, userdata) < 0)
                        lost = true;
        }
        return lost;
}

size_t kern_monitor_rcvbuf(const struct kern_monitor *m)
{
        return kern_sock_buf(mnl_socket_get_fd(m->sock), SO_RCVBUF);
}
