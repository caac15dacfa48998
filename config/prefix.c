/* IP prefix values. Parsing is strict: no leading zeros tricks beyond what inet_pton
 * accepts, a length within the family's range, and host bits reported to the caller
 * (Calico rejects pools and blocks that are not canonical networks). */
#include "prefix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned cfg_prefix_maxlen(const struct cfg_prefix *p)
{
        return p->family == AF_INET6 ? 128 : 32;
}

static int parse_len(const char *s, unsigned max, unsigned *ret)
{
        unsigned v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(*s - '0');
                if (v > max)
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

int cfg_addr_parse(const char *s, struct cfg_prefix *ret)
{
        struct cfg_prefix p = {};

        if (inet_pton(AF_INET, s, p.addr) == 1) {
                p.family = AF_INET;
                p.len = 32;
        } else if (inet_pton(AF_INET6, s, p.addr) == 1) {
                p.family = AF_INET6;
                p.len = 128;
        } else
                return -EINVAL;
        *ret = p;
        return 0;
}

int cfg_prefix_parse(const char *s, bool require_len, struct cfg_prefix *ret)
{
        char buf[INET6_ADDRSTRLEN + 8];
        struct cfg_prefix p, masked;
        const char *slash = strchr(s, '/');
        size_t alen = slash ? (size_t)(slash - s) : strlen(s);
        unsigned len;
        int r;

        if (alen == 0 || alen >= sizeof(buf))
                return -EINVAL;
        if (!slash && require_len)
                return -EINVAL;
        memcpy(buf, s, alen);
        buf[alen] = 0;
        r = cfg_addr_parse(buf, &p);
        if (r < 0)
                return r;
        if (slash) {
                r = parse_len(slash + 1, cfg_prefix_maxlen(&p), &len);
                if (r < 0)
                        return r;
                p.len = (uint8_t)len;
        }
        masked = p;
        cfg_prefix_mask(&masked);
        *ret = p;
        return memcmp(masked.addr, p.addr, sizeof(p.addr)) ? CFG_PREFIX_HOST_BITS : 0;
}

void cfg_prefix_mask(struct cfg_prefix *p)
{
        unsigned max = cfg_prefix_maxlen(p) / 8;

        for (unsigned i = 0; i < 16; i++) {
                unsigned bit = i * 8;

                if (i >= max || bit >= p->len)
                        p->addr[i] = 0;
                else if (p->len - bit < 8)
                        p->addr[i] &= (uint8_t)(0xff << (8 - (p->len - bit)));
        }
}

/* Dotted quad without inet_ntop() and printf: --once prints two addresses on each
 * of up to 100k lines. out has room for 16 bytes; returns the end (not terminated). */
static char *fmt_ip4(const uint8_t *a, char *out)
{
        for (int i = 0; i < 4; i++) {
                unsigned v = a[i];

                if (i)
                        *out++ = '.';
                if (v >= 100)
                        *out++ = (char)('0' + v / 100);
                if (v >= 10)
                        *out++ = (char)('0' + v / 10 % 10);
                *out++ = (char)('0' + v % 10);
        }
        return out;
}

int cfg_addr_fmt(const struct cfg_prefix *p, char *buf, size_t size)
{
        if (!p->family)
                return snprintf(buf, size, "none");
        if (p->family == AF_INET && size >= INET_ADDRSTRLEN) {
                char *end = fmt_ip4(p->addr, buf);

                *end = '\0';
                return (int)(end - buf);
        }
        if (!inet_ntop(p->family, p->addr, buf, (socklen_t)size))
                return -ENOSPC;
        return (int)strlen(buf);
}

int cfg_prefix_fmt(const struct cfg_prefix *p, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN];

        if (!p->family)
                return snprintf(buf, size, "none");
        if (p->family == AF_INET && size >= sizeof("255.255.255.255/32")) {
                char *end = fmt_ip4(p->addr, buf);
                unsigned len = p->len;

                *end++ = '/';
                if (len >= 100)
                        *end++ = (char)('0' + len / 100);
                if (len >= 10)
                        *end++ = (char)('0' + len / 10 % 10);
                *end++ = (char)('0' + len % 10);
                *end = '\0';
                return (int)(end - buf);
        }
        inet_ntop(p->family, p->addr, a, sizeof(a));
        return snprintf(buf, size, "%s/%u", a, p->len);
}

static bool leading_bits_eq(const uint8_t *a, const uint8_t *b, unsigned len)
{
        unsigned full = len / 8, rest = len % 8;

        if (memcmp(a, b, full))
                return false;
        if (!rest)
                return true;
        return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool cfg_prefix_contains(const struct cfg_prefix *outer, const struct cfg_prefix *inner)
{
        return outer->family == inner->family && outer->len <= inner->len &&
               leading_bits_eq(outer->addr, inner->addr, outer->len);
}

bool cfg_prefix_overlaps(const struct cfg_prefix *a, const struct cfg_prefix *b)
{
        return cfg_prefix_contains(a, b) || cfg_prefix_contains(b, a);
}

bool cfg_prefix_eq(const struct cfg_prefix *a, const struct cfg_prefix *b)
{
        return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

int cfg_prefix_cmp(const struct cfg_prefix *a, const struct cfg_prefix *b)
{
        int c;

        if (a->family != b->family)
                return a->family < b->family ? -1 : 1;
        c = memcmp(a->addr, b->addr, 16);
        if (c)
                return c < 0 ? -1 : 1;
        return a->len == b->len ? 0 : (a->len < b->len ? -1 : 1);
}
