/* IP prefixes (IPv4 and IPv6) as plain values: parse, print, compare, contain.
 * Pure functions; no allocation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_prefix {
        uint8_t family; /* AF_INET or AF_INET6; 0 = none */
        uint8_t len;
        uint8_t addr[16]; /* network byte order; IPv4 uses the first 4 bytes */
};

#define CFG_PREFIX_STRLEN 50 /* "ffff:...:ffff/128" plus NUL, with room to spare */

enum {
        CFG_PREFIX_HOST_BITS = 1, /* parse: host bits set (not canonical) */
};

/* Parse "a.b.c.d/n" or "x::y/n". With require_len false a bare address parses as a
 * host prefix (/32, /128). Returns 0, CFG_PREFIX_HOST_BITS when the address has bits
 * past the length (*ret then holds the address as written), or -EINVAL. */
int cfg_prefix_parse(const char *s, bool require_len, struct cfg_prefix *ret);
/* Parse a bare address (no length). */
int cfg_addr_parse(const char *s, struct cfg_prefix *ret);
int cfg_prefix_fmt(const struct cfg_prefix *p, char *buf, size_t size);
/* Address only, without "/len". */
int cfg_addr_fmt(const struct cfg_prefix *p, char *buf, size_t size);
unsigned cfg_prefix_maxlen(const struct cfg_prefix *p);
/* Clear the bits past len. */
void cfg_prefix_mask(struct cfg_prefix *p);
/* outer contains inner (same family, outer->len <= inner->len, shared leading bits). */
bool cfg_prefix_contains(const struct cfg_prefix *outer, const struct cfg_prefix *inner);
bool cfg_prefix_overlaps(const struct cfg_prefix *a, const struct cfg_prefix *b);
bool cfg_prefix_eq(const struct cfg_prefix *a, const struct cfg_prefix *b);
/* Total order: family, address, length. */
int cfg_prefix_cmp(const struct cfg_prefix *a, const struct cfg_prefix *b);
