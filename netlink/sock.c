/* Making rtnetlink sockets (see sock.h): options and buffer sizes in one place, so
 * the request socket and the event socket cannot drift apart. Must never send or
 * read anything. */
#include "sock.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include "util.h"

static void set_bool_opt(int fd, int opt)
{
        int one = 1;

        /* Older kernels lack some options (GET_STRICT_CHK is 4.20+); carry on. */
        (void)setsockopt(fd, SOL_NETLINK, opt, &one, sizeof(one));
}

size_t kern_sock_buf(int fd, int opt)
{
        socklen_t len = sizeof(int);
        int v = 0;

        if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0 || v <= 0)
                return 212992; /* the usual default */
        return (size_t)v;
}

/* SO_*BUFFORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; the plain
 * option is capped by those sysctls. The kernel doubles the value and getsockopt()
 * reports the doubled, effective size. */
static void set_buf(int fd, int force_opt, int opt, int want)
{
        if (want <= 0)
                return;
        if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) < 0)
                (void)setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want));
}

static int setup(struct mnl_socket *s, const struct kern_sock_opts *o)
{
        int fd = mnl_socket_get_fd(s);

        if (o->requests) {
                set_bool_opt(fd, NETLINK_EXT_ACK);        /* the kernel's error text */
                set_bool_opt(fd, NETLINK_CAP_ACK);        /* errors do not echo the request */
                set_bool_opt(fd, NETLINK_GET_STRICT_CHK); /* dump requests are validated */
        }
        set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, o->sndbuf);
        set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, o->rcvbuf);
        if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        for (size_t i = 0; i < o->n_groups; i++)
                if (mnl_socket_setsockopt(s, NETLINK_ADD_MEMBERSHIP, (void *)&o->groups[i], sizeof(o->groups[i])) <
                    0)
                        return -errno;
        return 0;
}

int kern_sock_open(const struct kern_sock_opts *o, struct mnl_socket **ret, size_t *ret_sndbuf,
                   size_t *ret_rcvbuf)
{
        struct mnl_socket *s = mnl_socket_open2(NETLINK_ROUTE, o->flags);
        int r;

        if (!s)
                return errno ? -errno : -EIO;
        r = setup(s, o);
        if (r < 0) {
                mnl_socket_close(s);
                return r;
        }
        if (ret_sndbuf)
                *ret_sndbuf = kern_sock_buf(mnl_socket_get_fd(s), SO_SNDBUF);
        if (ret_rcvbuf)
                *ret_rcvbuf = kern_sock_buf(mnl_socket_get_fd(s), SO_RCVBUF);
        *ret = s;
        return 0;
}
