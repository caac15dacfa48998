/* libFuzzer target for daemon/etcd-parse.c: etcd's answers on its JSON gateway as the
 * client (daemon/etcd.c) reads them. Every input is read four ways: as a range (list)
 * page, as an authentication answer, as an error body, and as a watch stream, the
 * last twice: in one piece, and cut at arbitrary points (as curl hands a stream over,
 * in pieces of any size; the cuts come from a generator seeded with the input's hash).
 * The promises: no crash, no leak, no undefined behaviour; a refusal says why; what
 * is accepted keeps the caps (revisions in range, keys non-empty without NUL, values
 * within ETCD_MAX_VALUE and NUL-terminated); and the stream means the same however it
 * is cut (the same messages, the same end). Seeds: real answers of Debian's etcd
 * (tests/fuzz-etcd-capture.py), kept in tests/fuzz-corpus/etcd. The same input is
 * also read as the gRPC transport's answers (daemon/etcd-grpc.c): a RangeResponse and
 * an AuthenticateResponse, framed, and a grpc-message trailer, with the same promises;
 * a real RangeResponse of etcd 3.4 is a seed (grpc-range-ippools). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd-grpc.h"
#include "etcd-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                   \
        do {                       \
                if (!(x))          \
                        abort();   \
        } while (0)

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
        const unsigned char *c = p;

        for (size_t i = 0; i < n; i++)
                h = (h ^ c[i]) * 0x100000001b3ULL;
        return h;
}

static void check_kv(const struct etcd_kv *kv, bool with_value)
{
        CHECK(kv && kv->key && kv->key[0]);
        if (with_value) {
                CHECK(kv->value && kv->value_len <= ETCD_MAX_VALUE && kv->value[kv->value_len] == '\0');
        } else
                CHECK(!kv->value);
}

static void check_range(const char *data, size_t size)
{
        struct etcd_range r = { .revision = -1 };
        char err[256] = "";
        int k = etcd_parse_range(data, size, &r, err, sizeof(err));

        if (k < 0) {
                CHECK(k == -EBADMSG || k == -ENOMEM);
                CHECK(err[0]);
                CHECK(r.revision == -1 && !r.kvs); /* untouched */
                return;
        }
        CHECK(r.revision > 0 && r.revision < INT64_MAX);
        CHECK(!r.n_kvs == !r.kvs);
        for (size_t i = 0; i < r.n_kvs; i++)
                check_kv(r.kvs[i], true);
        etcd_range_clear(&r);
}

static void check_grpc(const char *data, size_t size)
{
        struct etcd_range r = { .revision = -1 };
        char err[256] = "", *token = NULL, msg[64], *s;
        int k = etcd_grpc_parse_range(data, size, &r, err, sizeof(err));

        if (k < 0) {
                CHECK(k == -EBADMSG || k == -EFBIG || k == -ENOMEM);
                CHECK(k == -ENOMEM || err[0]);
                CHECK(r.revision == -1 && !r.kvs);
        } else {
                CHECK(r.revision > 0 && r.revision < INT64_MAX);
                CHECK(!r.n_kvs == !r.kvs);
                for (size_t i = 0; i < r.n_kvs; i++)
                        check_kv(r.kvs[i], true);
                etcd_range_clear(&r);
        }
        k = etcd_grpc_parse_auth(data, size, &token, err, sizeof(err));
        CHECK(k == 0 ? token && token[0] && !strpbrk(token, "\r\n") : !token && (k == -ENOMEM || err[0]));
        free(token);
        /* The trailer's text: NUL-terminated, printable, within the buffer. */
        if ((s = malloc(size + 1))) {
                memcpy(s, data, size);
                s[size] = '\0';
                etcd_grpc_message(s, msg, sizeof(msg));
                CHECK(strlen(msg) < sizeof(msg));
                for (const char *c = msg; *c; c++)
                        CHECK((unsigned char)*c >= ' ' && *c != 0x7f);
                free(s);
        }
}

static void check_auth_error(const char *data, size_t size)
{
        char *token = NULL, err[256] = "", buf[64];
        int k = etcd_parse_auth(data, size, &token, err, sizeof(err));

        CHECK(k == 0 ? token != NULL : err[0] != '\0' && token == NULL);
        free(token);
        etcd_parse_error(data, size, buf, sizeof(buf));
        CHECK(strlen(buf) < sizeof(buf));
}

struct digest {
        uint64_t h;
        size_t n;
};

static int on_message(struct etcd_watch_msg *m, void *userdata)
{
        struct digest *d = userdata;

        CHECK(m->kind <= ETCD_WATCH_BAD);
        CHECK(m->n_events == 0 || (m->kind == ETCD_WATCH_EVENTS && m->events));
        if (m->kind != ETCD_WATCH_EVENTS && m->kind != ETCD_WATCH_COMPACTED)
                CHECK(m->kind == ETCD_WATCH_CANCELED || m->why[0]);
        if (m->kind == ETCD_WATCH_EVENTS)
                CHECK(m->revision >= 0 && m->revision < INT64_MAX);
        d->h = fnv(d->h, &m->kind, sizeof(m->kind));
        d->h = fnv(d->h, &m->created, sizeof(m->created));
        d->h = fnv(d->h, &m->revision, sizeof(m->revision));
        d->h = fnv(d->h, &m->compact_revision, sizeof(m->compact_revision));
        d->h = fnv(d->h, m->why, strlen(m->why));
        for (size_t i = 0; i < m->n_events; i++) {
                struct etcd_kv *kv = m->events[i].kv;

                check_kv(kv, !m->events[i].del);
                d->h = fnv(d->h, &m->events[i].del, sizeof(bool));
                d->h = fnv(d->h, kv->key, strlen(kv->key) + 1);
                if (kv->value)
                        d->h = fnv(d->h, kv->value, kv->value_len);
                /* The client takes some events' kv (etcd.c's apply_event()). */
                if (i % 2) {
                        etcd_kv_free(kv);
                        m->events[i].kv = NULL;
                }
        }
        d->n++;
        return 0;
}

/* The whole stream in one piece, or cut where the generator says; the digest of what
 * came out, and how it ended. */
static int feed(const char *data, size_t size, uint64_t seed, struct digest *d, char *err, size_t err_size)
{
        struct etcd_stream s;
        int r = 0;

        CHECK(etcd_stream_init(&s) == 0);
        if (!seed)
                r = etcd_stream_feed(&s, data, size, on_message, d, err, err_size);
        else
                for (size_t off = 0, n; off < size; off += n) {
                        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
                        n = 1 + seed % (seed & 256 ? 8 : 700);
                        if (n > size - off)
                                n = size - off;
                        if ((r = etcd_stream_feed(&s, data + off, n, on_message, d, err, err_size)) < 0)
                                break;
                }
        etcd_stream_clear(&s);
        return r;
}

static void check_stream(const char *data, size_t size)
{
        struct digest one = { 14695981039346656037ULL, 0 }, cut = one;
        char err1[256] = "", err2[256] = "";
        int r1 = feed(data, size, 0, &one, err1, sizeof(err1));
        int r2 = feed(data, size, fnv(14695981039346656037ULL, data, size) | 1, &cut, err2, sizeof(err2));

        CHECK(r1 == 0 || ((r1 == -EBADMSG) && err1[0]));
        CHECK(r1 == r2 && one.h == cut.h && one.n == cut.n && strcmp(err1, err2) == 0);
}

static void check_base64(const uint8_t *data, size_t size)
{
        size_t n = size < 300 ? size : 300, len;
        char *s = etcd_base64_encode(data, n), *back;

        CHECK(s && strlen(s) == (n + 2) / 3 * 4);
        CHECK(etcd_base64_decode(s, &back, &len) == 0);
        CHECK(len == n && memcmp(back, data, n) == 0 && back[n] == '\0');
        free(back);
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* A copy the exact size, so that reading past the end is caught. */
        char *copy = malloc(size ? size : 1);

        if (!copy)
                return 0;
        memcpy(copy, data, size);
        check_range(copy, size);
        check_auth_error(copy, size);
        check_grpc(copy, size);
        check_stream(copy, size);
        check_base64(data, size);
        free(copy);
        return 0;
}
