/* libFuzzer target for the rtnetlink message parsers (netlink/parse.c, through
 * netlink/nl-parse.h: the code nl.c and monitor.c run). The input is used two ways:
 *
 * 1. as one datagram, the way the daemon reads one: walked with mnl_nlmsg_ok() and
 *    mnl_nlmsg_next() as nl.c's transact() and batch_collect() walk replies, and
 *    through kern_parse_events() as monitor.c's kern_monitor_drain() reads notifications. Every message is copied so that it ends where an inaccessible page begins,
 *    then handed to every parser: a read past the message faults even inside libmnl,
 *    which is not instrumented (in the daemon it would read stale bytes of a larger
 *    buffer, silently);
 * 2. as one message body: byte 0 picks a message type the daemon handles (route,
 *    link, address, netconf, neightbl, error/ack, done), byte 1 its flags (e.g.
 *    NLM_F_ACK_TLVS | NLM_F_CAPPED for an ack with extack), and a header of the right
 *    length is put in front of the rest, so mutations go to the parsers, not to
 *    keeping nlmsg_len consistent.
 *
 * Beyond "no crash, no undefined behaviour", what a parser returns must keep the
 * promises its callers rely on (families, prefix lengths, NUL-terminated texts).
 * Seeds: messages the kernel really sent, captured by tests/fuzz-netlink-capture.py
 * (run by tests/fuzz.sh as root). */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/netconf.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nl-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                   \
        do {                       \
                if (!(x))          \
                        abort();   \
        } while (0)

/* Two buffers (a datagram, one message of it), each followed by a PROT_NONE page. */
#define ARENA_BYTES (1u << 20)

struct arena {
        uint8_t *base;
};

static struct arena arenas[2];

static void arena_init(struct arena *a)
{
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        uint8_t *p = mmap(NULL, ARENA_BYTES + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        CHECK(p != MAP_FAILED);
        CHECK(mprotect(p + ARENA_BYTES, page, PROT_NONE) == 0);
        a->base = p;
}

/* Copy len bytes so they end at the guard page (less the padding to the 4-byte
 * alignment a struct nlmsghdr needs). NULL when too large. */
static void *arena_put(struct arena *a, const void *p, size_t len)
{
        size_t aligned = (len + 3) & ~(size_t)3;
        uint8_t *at;

        if (!a->base)
                arena_init(a);
        if (aligned > ARENA_BYTES)
                return NULL;
        at = a->base + ARENA_BYTES - aligned;
        memcpy(at, p, len);
        memset(at + len, 0, aligned - len);
        return at;
}

static void check_prefix(const struct cfg_prefix *p, bool may_be_empty)
{
        if (may_be_empty && p->family == 0)
                return;
        CHECK(p->family == AF_INET || p->family == AF_INET6);
        CHECK(p->len <= cfg_prefix_maxlen(p));
}

static void check_text(const char *buf, size_t size)
{
        CHECK(memchr(buf, '\0', size) != NULL);
}

/* Every parser on one message of exactly nlmsg_len bytes. */
static void parse_all(const struct nlmsghdr *nlh)
{
        struct host_route rt;
        struct host_rule rule;
        struct host_addr ha;
        struct host_snapshot h = { .all_forwarding = -1, .all_rp_filter = -1 };
        struct host_reach reach = {};
        struct kern_event ev;
        char msg[124], tiny[4];
        int64_t ms = -1;
        int r, ifindex = 0;

        if (!nlh)
                return;
        if (kern_parse_route(nlh, &rt) == 0) {
                check_prefix(&rt.dst, false);
                check_prefix(&rt.gateway, true);
                CHECK(rt.gateway.family == 0 || rt.gateway.len == cfg_prefix_maxlen(&rt.gateway));
        }
        if (kern_parse_rule(nlh, &rule) == 0) {
                check_prefix(&rule.dst, true);
                CHECK(rule.dst.family == AF_INET || rule.dst.family == AF_INET6);
        }
        if (kern_parse_addr(nlh, &ha) > 0)
                check_prefix(&ha.addr, false);
        kern_parse_netconf(nlh, &h);
        CHECK(h.n_links == 0 && h.links == NULL);
        if (kern_parse_neightbl_delay(nlh, &ifindex, &ms) > 0)
                CHECK(ms >= -1 && ifindex > 0);
        if (kern_parse_reach(nlh, &reach) > 0)
                check_prefix(&reach.prefsrc, true);

        memset(msg, 'x', sizeof(msg));
        msg[sizeof(msg) - 1] = '\0';
        r = kern_parse_ack(nlh, msg, sizeof(msg));
        CHECK(r <= 0 && r != INT32_MIN);
        check_text(msg, sizeof(msg));
        r = kern_parse_ack(nlh, tiny, sizeof(tiny)); /* truncation of the extack text */
        CHECK(r <= 0);
        (void)kern_parse_ack(nlh, NULL, 0);
        memset(msg, 0, sizeof(msg));
        r = kern_parse_done(nlh, msg, sizeof(msg));
        CHECK(r <= 0);
        check_text(msg, sizeof(msg));

        r = kern_parse_event(nlh, &ev);
        CHECK(r >= -EBADMSG && r <= 1 && (r >= 0 || r == -EBADMSG));
        if (r > 0) {
                CHECK(ev.type <= NL_EV_RULE);
                check_text(ev.ifname, sizeof(ev.ifname));
        }
}

static void on_event(const struct kern_event *ev, void *userdata)
{
        size_t *n = userdata;

        CHECK(ev->type <= NL_EV_RULE);
        check_text(ev->ifname, sizeof(ev->ifname));
        (*n)++;
}

static void fuzz_datagram(const uint8_t *data, size_t size)
{
        uint8_t *buf = arena_put(&arenas[0], data, size);
        const struct nlmsghdr *nlh;
        size_t events = 0;
        int len = (int)size, r;

        if (!buf)
                return;
        for (nlh = (const struct nlmsghdr *)buf; kern_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                parse_all(arena_put(&arenas[1], nlh, nlh->nlmsg_len));
        r = kern_parse_events(buf, size, on_event, &events);
        CHECK(r == 0 || r == -EBADMSG);
}

static const uint16_t types[] = {
        RTM_NEWROUTE, RTM_DELROUTE,     RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR,
        RTM_NEWNETCONF, RTM_NEWNEIGHTBL, NLMSG_ERROR, NLMSG_DONE,  NLMSG_NOOP,  RTM_NEWRULE, RTM_DELRULE,
};

static void fuzz_message(const uint8_t *data, size_t size)
{
        size_t body = size - 2, len = sizeof(struct nlmsghdr) + body;
        struct nlmsghdr *nlh;
        static uint8_t *tmp;

        if (len > ARENA_BYTES)
                return;
        if (!tmp)
                CHECK((tmp = malloc(ARENA_BYTES)));
        nlh = (struct nlmsghdr *)tmp;
        *nlh = (struct nlmsghdr){
                .nlmsg_len = (uint32_t)len,
                .nlmsg_type = types[data[0] % (sizeof(types) / sizeof(types[0]))],
                /* byte 1 spreads over the flags that matter: NLM_F_MULTI (0x2), NLM_F_ACK,
                 * NLM_F_ECHO, NLM_F_DUMP_INTR (0x10), NLM_F_CAPPED (0x100), NLM_F_ACK_TLVS */
                .nlmsg_flags = (uint16_t)((data[1] & 0x0f) << 1 | (data[1] & 0x30) << 4),
        };
        memcpy(nlh + 1, data + 2, body);
        parse_all(arena_put(&arenas[1], nlh, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        fuzz_datagram(data, size);
        if (size >= 2)
                fuzz_message(data, size);
        return 0;
}
