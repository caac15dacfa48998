/* etcd's gRPC messages for the list (etcd-grpc.h), written and read by hand: five
 * messages need no protobuf library.
 *
 * Owns: the field numbers (etcd 3.4's api/etcdserverpb/rpc.proto: RangeRequest key 1,
 * range_end 2, limit 3, revision 4; RangeResponse header 1, kvs 2, more 3, count 4;
 * ResponseHeader revision 3; AuthenticateRequest name 1, password 2;
 * AuthenticateResponse token 2; mvccpb/kv.proto's KeyValue key 1, mod_revision 3,
 * value 5), protobuf's wire format (varints, wire types 0 varint, 1 fixed 64, 2
 * length-delimited, 5 fixed 32; 3 and 4 are groups, which proto3 never sends) and
 * gRPC's framing (a flag byte, 1 when compressed, and a 32-bit big-endian length before
 * each message). Must never: read past the buffer, trust a length, or allocate what the
 * answer's size does not bound. */
#include "etcd-grpc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- writing ---- */

enum {
        WT_VARINT = 0,
        WT_FIXED64 = 1,
        WT_LEN = 2,
        WT_FIXED32 = 5,
};

static size_t put_varint(uint8_t *p, uint64_t v)
{
        size_t n = 0;

        do {
                p[n++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
                v >>= 7;
        } while (v);
        return n;
}

static size_t put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
        size_t n = put_varint(p, (uint64_t)field << 3 | WT_LEN);

        n += put_varint(p + n, len);
        memcpy(p + n, data, len);
        return n + len;
}

static size_t put_int(uint8_t *p, unsigned field, int64_t v)
{
        size_t n = put_varint(p, (uint64_t)field << 3 | WT_VARINT);

        return n + put_varint(p + n, (uint64_t)v);
}

/* A buffer with room for the prefix and fields of these sizes (each field at most a
 * 10-byte tag, a 10-byte length and its data); the prefix is written by frame_end(). */
static uint8_t *frame_new(size_t data)
{
        return malloc(ETCD_GRPC_PREFIX + data + 4 * 20);
}

static void frame_end(uint8_t *buf, size_t n, char **ret, size_t *ret_len)
{
        size_t len = n - ETCD_GRPC_PREFIX;

        buf[0] = 0; /* not compressed */
        buf[1] = (uint8_t)(len >> 24);
        buf[2] = (uint8_t)(len >> 16);
        buf[3] = (uint8_t)(len >> 8);
        buf[4] = (uint8_t)len;
        *ret = (char *)buf;
        *ret_len = n;
}

int etcd_grpc_range_request(const char *key, size_t key_len, const char *end, size_t end_len, int64_t limit,
                            int64_t revision, char **ret, size_t *ret_len)
{
        uint8_t *buf = frame_new(key_len + end_len);
        size_t n = ETCD_GRPC_PREFIX;

        if (!buf)
                return -ENOMEM;
        n += put_bytes(buf + n, 1, key, key_len);
        if (end_len)
                n += put_bytes(buf + n, 2, end, end_len);
        if (limit)
                n += put_int(buf + n, 3, limit);
        if (revision)
                n += put_int(buf + n, 4, revision);
        frame_end(buf, n, ret, ret_len);
        return 0;
}

int etcd_grpc_auth_request(const char *name, const char *password, char **ret, size_t *ret_len)
{
        size_t nl = strlen(name), pl = strlen(password), n = ETCD_GRPC_PREFIX;
        uint8_t *buf = frame_new(nl + pl);

        if (!buf)
                return -ENOMEM;
        n += put_bytes(buf + n, 1, name, nl);
        n += put_bytes(buf + n, 2, password, pl);
        frame_end(buf, n, ret, ret_len);
        return 0;
}

/* ---- reading ---- */

struct pb {
        const uint8_t *p, *end;
        char *err;
        size_t err_size;
};

static int pb_fail(struct pb *b, const char *fmt, ...) _printf_(2, 3);
static int pb_fail(struct pb *b, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(b->err, b->err_size, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* At most ten bytes, the tenth carrying the 64th bit only. */
static int pb_varint(struct pb *b, uint64_t *ret)
{
        uint64_t v = 0;

        for (unsigned i = 0; i < 10; i++) {
                uint8_t c;

                if (b->p == b->end)
                        return pb_fail(b, "a truncated varint");
                c = *b->p++;
                if (i == 9 && c > 1)
                        return pb_fail(b, "a varint over 64 bits");
                v |= (uint64_t)(c & 0x7f) << (7 * i);
                if (!(c & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return pb_fail(b, "a varint over 64 bits");
}

struct field {
        unsigned num, wt;
        uint64_t v;              /* WT_VARINT */
        const uint8_t *data;     /* WT_LEN */
        size_t len;
};

/* The next field; fixed-size ones are skipped over (none is read here). */
static int pb_field(struct pb *b, struct field *f)
{
        uint64_t tag = 0, len = 0;
        int r;

        if ((r = pb_varint(b, &tag)) < 0)
                return r;
        f->num = (unsigned)(tag >> 3);
        f->wt = (unsigned)(tag & 7);
        if (tag >> 3 == 0 || tag >> 3 > 536870911)
                return pb_fail(b, "a field number out of range");
        switch (f->wt) {
        case WT_VARINT:
                return pb_varint(b, &f->v);
        case WT_FIXED64:
        case WT_FIXED32:
                len = f->wt == WT_FIXED64 ? 8 : 4;
                if ((size_t)(b->end - b->p) < len)
                        return pb_fail(b, "a truncated field %u", f->num);
                b->p += len;
                return 0;
        case WT_LEN:
                if ((r = pb_varint(b, &len)) < 0)
                        return r;
                if (len > (uint64_t)(b->end - b->p))
                        return pb_fail(b, "field %u is longer than the message", f->num);
                f->data = b->p;
                f->len = (size_t)len;
                b->p += len;
                return 0;
        default:
                return pb_fail(b, "field %u has wire type %u (a group or none)", f->num, f->wt);
        }
}

static int pb_want(struct pb *b, const struct field *f, unsigned wt, const char *what)
{
        if (f->wt != wt)
                return pb_fail(b, "%s (field %u) has wire type %u, not %u", what, f->num, f->wt, wt);
        return 0;
}

/* An int64 (a varint holding its two's complement). */
static int64_t as_int64(uint64_t v)
{
        return (int64_t)v;
}

static int header_read(struct pb *b, const struct field *f, int64_t *rev)
{
        struct pb h = { f->data, f->data + f->len, b->err, b->err_size };
        struct field g;
        int r;

        while (h.p < h.end) {
                if ((r = pb_field(&h, &g)) < 0)
                        return r;
                if (g.num == 3) {
                        if ((r = pb_want(&h, &g, WT_VARINT, "header.revision")) < 0)
                                return r;
                        *rev = as_int64(g.v);
                }
        }
        return 0;
}

static char *dup_bytes(const uint8_t *data, size_t len)
{
        char *s = malloc(len + 1);

        if (s) {
                memcpy(s, data, len);
                s[len] = '\0';
        }
        return s;
}

static int kv_read(struct pb *b, const struct field *f, struct etcd_kv **ret)
{
        struct pb m = { f->data, f->data + f->len, b->err, b->err_size };
        const uint8_t *key = NULL, *value = NULL;
        size_t key_len = 0, value_len = 0;
        int64_t mod = 0;
        struct field g;
        struct etcd_kv *kv;
        int r;

        while (m.p < m.end) {
                if ((r = pb_field(&m, &g)) < 0)
                        return r;
                if (g.num == 1 || g.num == 5) {
                        if ((r = pb_want(&m, &g, WT_LEN, g.num == 1 ? "a key" : "a value")) < 0)
                                return r;
                        if (g.num == 1)
                                key = g.data, key_len = g.len;
                        else
                                value = g.data, value_len = g.len;
                } else if (g.num == 3) {
                        if ((r = pb_want(&m, &g, WT_VARINT, "a mod_revision")) < 0)
                                return r;
                        mod = as_int64(g.v);
                }
        }
        if (!key_len || memchr(key, '\0', key_len))
                return pb_fail(b, "a key that is empty or holds NUL");
        if (value_len > ETCD_MAX_VALUE)
                return pb_fail(b, "the value of %.*s is over %u MiB", (int)(key_len < 200 ? key_len : 200),
                               (const char *)key, ETCD_MAX_VALUE >> 20);
        if (!(kv = calloc(1, sizeof(*kv))))
                return -ENOMEM;
        kv->key = dup_bytes(key, key_len);
        kv->value = dup_bytes(value ? value : (const uint8_t *)"", value_len);
        kv->value_len = value_len;
        kv->mod_revision = mod;
        if (!kv->key || !kv->value) {
                etcd_kv_free(kv);
                return -ENOMEM;
        }
        *ret = kv;
        return 0;
}

/* The message of a unary answer: one frame, uncompressed, exactly the body. */
static int unframe(struct pb *b, const void *body, size_t len, size_t cap)
{
        const uint8_t *p = body;
        size_t n;

        if (!body || len < ETCD_GRPC_PREFIX)
                return pb_fail(b, "an answer shorter than gRPC's message prefix");
        if (p[0] == 1)
                return pb_fail(b, "a compressed message (none was asked for)");
        if (p[0] != 0)
                return pb_fail(b, "a message prefix with flags %#x", p[0]);
        n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (n > cap) {
                pb_fail(b, "a message of %zu bytes, over the cap of %zu MiB", n, cap >> 20);
                return -EFBIG;
        }
        if (n != len - ETCD_GRPC_PREFIX)
                return pb_fail(b, "a message of %zu bytes in an answer of %zu", n, len - ETCD_GRPC_PREFIX);
        b->p = p + ETCD_GRPC_PREFIX;
        b->end = b->p + n;
        return 0;
}

static int range_field(struct pb *b, const struct field *f, struct etcd_range *r, size_t *cap)
{
        int k;

        switch (f->num) {
        case 1:
                if ((k = pb_want(b, f, WT_LEN, "header")) < 0)
                        return k;
                return header_read(b, f, &r->revision);
        case 2:
                if ((k = pb_want(b, f, WT_LEN, "kvs")) < 0)
                        return k;
                /* No page holds more keys than the client takes in all. */
                if (r->n_kvs >= ETCD_MAX_PAGE_KVS)
                        return pb_fail(b, "a range response with more than %u keys", ETCD_MAX_PAGE_KVS);
                if (GROW(r->kvs, *cap, r->n_kvs + 1) < 0)
                        return -ENOMEM;
                if ((k = kv_read(b, f, &r->kvs[r->n_kvs])) < 0)
                        return k;
                r->n_kvs++;
                return 0;
        case 3:
        case 4:
                if ((k = pb_want(b, f, WT_VARINT, f->num == 3 ? "more" : "count")) < 0)
                        return k;
                if (f->num == 3)
                        r->more = f->v != 0;
                else
                        r->count = as_int64(f->v);
                return 0;
        default:
                return 0;
        }
}

int etcd_grpc_parse_range(const void *body, size_t len, struct etcd_range *ret, char *err, size_t err_size)
{
        struct pb b = { .err = err, .err_size = err_size };
        struct etcd_range r = {};
        struct field f;
        size_t cap = 0;
        int k;

        if ((k = unframe(&b, body, len, ETCD_MAX_BODY)) < 0)
                return k;
        while (b.p < b.end)
                if ((k = pb_field(&b, &f)) < 0 || (k = range_field(&b, &f, &r, &cap)) < 0) {
                        etcd_range_clear(&r);
                        return k;
                }
        if (r.revision <= 0 || r.revision == INT64_MAX) {
                k = pb_fail(&b, "a range response %s", r.revision ? "at a revision out of range" : "without a revision");
                etcd_range_clear(&r);
                return k;
        }
        *ret = r;
        return 0;
}

int etcd_grpc_parse_auth(const void *body, size_t len, char **ret, char *err, size_t err_size)
{
        struct pb b = { .err = err, .err_size = err_size };
        const uint8_t *token = NULL;
        size_t token_len = 0;
        struct field f;
        char *t;
        int k;

        if ((k = unframe(&b, body, len, 1u << 20)) < 0)
                return k == -EFBIG ? -EBADMSG : k;
        while (b.p < b.end) {
                if ((k = pb_field(&b, &f)) < 0)
                        return k;
                if (f.num == 2) {
                        if ((k = pb_want(&b, &f, WT_LEN, "token")) < 0)
                                return k;
                        token = f.data, token_len = f.len;
                }
        }
        if (!token_len || memchr(token, '\0', token_len) || memchr(token, '\n', token_len) ||
            memchr(token, '\r', token_len))
                return pb_fail(&b, "authentication gave no token");
        if (!(t = dup_bytes(token, token_len)))
                return -ENOMEM;
        *ret = t;
        return 0;
}

static int hex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Control characters would reach the log and the status line: replaced. */
static bool printable(char c)
{
        return (unsigned char)c >= ' ' && c != 0x7f;
}

void etcd_grpc_message(const char *s, char *buf, size_t size)
{
        size_t n = 0;

        if (!size)
                return;
        for (; s && *s && n + 1 < size; s++) {
                if (*s == '%' && hex(s[1]) >= 0 && hex(s[2]) >= 0) {
                        char c = (char)(hex(s[1]) << 4 | hex(s[2]));

                        s += 2;
                        buf[n++] = printable(c) ? c : '?';
                } else
                        buf[n++] = printable(*s) ? *s : '?';
        }
        buf[n] = '\0';
}
