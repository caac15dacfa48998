/* Internal to netlink/: the one place rtnetlink sockets are made (nl.c's request
 * socket, monitor.c's event socket). libmnl only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct mnl_socket;

struct kern_sock_opts {
        int flags;               /* mnl_socket_open2(): SOCK_CLOEXEC, SOCK_NONBLOCK */
        bool requests;           /* extended acks, capped acks, strict dump checks */
        int sndbuf, rcvbuf;      /* wanted sizes (the kernel doubles them); 0 = default */
        const unsigned *groups;  /* RTNLGRP_* to join */
        size_t n_groups;
};

/* A NETLINK_ROUTE socket bound to a port of the kernel's choosing. The effective
 * buffer sizes (as getsockopt() reports them) in ret_sndbuf and ret_rcvbuf, either
 * may be NULL. */
int kern_sock_open(const struct kern_sock_opts *o, struct mnl_socket **ret, size_t *ret_sndbuf,
                   size_t *ret_rcvbuf);
/* The effective size of a socket buffer: SO_SNDBUF or SO_RCVBUF. */
size_t kern_sock_buf(int fd, int opt);
