/* The etcd v3 client (etcd.h): list, then watch, over etcd's JSON gateway.
 *
 * Owns: etcd's protocol (the requests, their JSON, paging, the watch stream, what a
 * compacted revision means), the requests in flight, the key→value cache and the
 * retry policy. HTTP itself (curl on the loop, TLS, timeouts, failover bookkeeping)
 * is http.c's. Must never: touch the host, build the model, or decide what a change
 * means; it tells the loop through etcd_ops.
 *
 * The gateway's facts this code rests on (etcd 3.4): POST /v3/kv/range takes base64
 * `key` and `range_end` and returns `kvs` with base64 keys and values, `more` when a
 * `limit` cut it short, and `header.revision`; a later page asks for the same
 * `revision` so the whole list is one snapshot. POST /v3/watch with a `create_request`
 * streams one JSON object per batch of events; 64-bit numbers come as strings, and an
 * event's `type` is left out for PUT. A watch from a compacted revision is answered
 * with `compact_revision` and cancelled. */
#include "etcd.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "load.h"
#include "strtab.h"
#include "log.h"
#include "util.h"

const char *const etcd_prefixes[ETCD_N_PREFIXES] = {
        CFG_ETCD_RESOURCES_PREFIX "ippools/",
        CFG_ETCD_RESOURCES_PREFIX "nodes/",
        CFG_ETCD_RESOURCES_PREFIX "felixconfigurations/",
        CFG_ETCD_AFFINITY_PREFIX,
        CFG_ETCD_BLOCK_PREFIX,
};

/* Retry: the first after a second, doubling up to half a minute, each drawn from
 * 80-120% of that so a fleet does not come back in step. */
#define RETRY_MIN_USEC (1000 * 1000ULL)
#define RETRY_MAX_USEC (30 * 1000 * 1000ULL)

/* ---- base64 (etcd's keys and values) ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_base64_encode(const void *data, size_t len)
{
        const unsigned char *p = data;
        char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
                             (i + 2 < len ? p[i + 2] : 0);

                *o++ = b64_alphabet[v >> 18 & 63];
                *o++ = b64_alphabet[v >> 12 & 63];
                *o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
                *o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

static int b64_value(char c)
{
        const char *p = c ? strchr(b64_alphabet, c) : NULL;

        return p ? (int)(p - b64_alphabet) : -1;
}

/* Strict: padded, no whitespace. The result is NUL-terminated (not counted in *ret_len). */
int etcd_base64_decode(const char *s, char **ret, size_t *ret_len)
{
        size_t len = strlen(s), n = 0;
        char *out;

        if (len % 4)
                return -EINVAL;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                int a = b64_value(s[i]), b = b64_value(s[i + 1]), c = b64_value(s[i + 2]), d = b64_value(s[i + 3]);
                bool last = i + 4 == len;

                if (a < 0 || b < 0 || (c < 0 && !(last && s[i + 2] == '=' && s[i + 3] == '=')) ||
                    (d < 0 && !(last && s[i + 3] == '='))) {
                        free(out);
                        return -EINVAL;
                }
                out[n++] = (char)(a << 2 | b >> 4);
                if (c >= 0)
                        out[n++] = (char)((b & 15) << 4 | c >> 2);
                if (c >= 0 && d >= 0)
                        out[n++] = (char)((c & 3) << 6 | d);
        }
        out[n] = '\0';
        *ret = out;
        *ret_len = n;
        return 0;
}

char *etcd_prefix_end(const char *prefix, size_t len, size_t *ret_len)
{
        char *end = malloc(len + 1);

        if (!end)
                return NULL;
        memcpy(end, prefix, len);
        while (len && (unsigned char)end[len - 1] == 0xff)
                len--;
        if (!len) {
                free(end);
                return NULL;
        }
        end[len - 1]++;
        end[len] = '\0';
        *ret_len = len;
        return end;
}

/* ---- the cache: a string table (strtab.h) of struct kv by key ---- */

struct kv {
        char *key;   /* NUL-terminated (a key holding NUL is refused) */
        char *value; /* NUL-terminated too, value_len bytes before it; or a record */
        size_t value_len;
        int64_t mod_revision;
        bool record; /* value is cfg_kv_compact()'s record of the value (etcd_compact()) */
};

struct kvmap {
        struct strtab t;
};

static void kv_free(struct kv *kv)
{
        if (!kv)
                return;
        free(kv->key);
        free(kv->value);
        free(kv);
}

static const char *kv_key(const void *entry, const void *ctx)
{
        (void)ctx;
        return ((const struct kv *)entry)->key;
}

static void kvmap_clear(struct kvmap *m)
{
        for (size_t i = 0; i < m->t.size; i++)
                kv_free(m->t.slots[i]);
        strtab_clear(&m->t);
}

/* Takes kv (also on failure). */
static int kvmap_put(struct kvmap *m, struct kv *kv)
{
        void *old = NULL;
        int r;

        if (m->t.n >= ETCD_MAX_KEYS && !strtab_get(&m->t, kv->key, kv_key, NULL)) {
                kv_free(kv);
                return -E2BIG;
        }
        if ((r = strtab_put(&m->t, kv, kv_key, NULL, &old)) < 0) {
                kv_free(kv);
                return r;
        }
        kv_free(old);
        return 0;
}

static void kvmap_del(struct kvmap *m, const char *key)
{
        kv_free(strtab_remove(&m->t, key, kv_key, NULL));
}

/* ---- requests ---- */

enum req_kind {
        REQ_AUTH,
        REQ_RANGE,
        REQ_WATCH,
};

struct req {
        struct etcd *e;
        enum req_kind kind;
        size_t prefix;         /* REQ_RANGE, REQ_WATCH: index into etcd_prefixes */
        struct http_req *h;
        json_tokener *tok;     /* watch: the stream */
        size_t msg_bytes;      /* watch: bytes of the message being parsed */
        bool created;          /* watch: etcd confirmed it */
        bool compacted;        /* watch: asked for a compacted revision */
};

enum state {
        ST_IDLE,
        ST_LISTING, /* auth and range requests, one at a time */
        ST_WATCHING,
        ST_WAITING, /* for the retry timer */
        ST_DONE,    /* --once: listed */
        ST_FAILED,  /* --once: every endpoint failed */
};

struct etcd {
        sd_event *ev;
        struct http *http;
        sd_event_source *retry, *deadline;
        struct cfg_etcd conf;
        const struct etcd_ops *ops;
        void *userdata;
        bool once;
        enum state state;
        struct http_failover fo; /* the endpoint in use, this round's failures */
        char *token;         /* etcd authentication */
        /* listing */
        struct req *list;
        struct kvmap building;
        size_t list_prefix;
        char *page_key; /* where the next page starts (binary: the last key and a NUL) */
        size_t page_key_len;
        int64_t list_revision;
        unsigned list_restarts; /* a page's revision compacted mid-list: starts over */
        unsigned list_pages;    /* range answers in this list, and their bytes: capped */
        size_t list_bytes;
        /* watching */
        struct req *watch[ETCD_N_PREFIXES];
        /* the data */
        struct kvmap cache;
        bool compact; /* keep IPAM values as records (etcd_compact()) */
        /* the keys watch events changed since etcd_changes_reset(), for in-place
         * updates (source-etcd.c): unknown after a list, or past ETCD_MAX_PENDING */
        char **pending;
        size_t n_pending, cap_pending;
        bool pending_lost;
        bool has_data;
        int64_t revision;
        char endpoint[512];
};

static void start_round(struct etcd *e);
static void attempt_failed(struct etcd *e, const char *fmt, ...) _printf_(2, 3);

static void req_free(struct req *q)
{
        if (!q)
                return;
        http_req_free(q->h);
        if (q->tok)
                json_tokener_free(q->tok);
        free(q);
}

/* Everything in flight goes; the cache stays. */
static void cancel_all(struct etcd *e)
{
        req_free(e->list);
        e->list = NULL;
        for (size_t i = 0; i < ETCD_N_PREFIXES; i++) {
                req_free(e->watch[i]);
                e->watch[i] = NULL;
        }
}

static void watch_message(struct req *q, json_object *msg);

/* Feed the stream to the tokener: each complete object is one watch response. */
static bool watch_data(struct http_req *h, const char *data, size_t n, void *userdata)
{
        struct req *q = userdata;

        while (n && !http_req_failed(h)) {
                json_object *msg = json_tokener_parse_ex(q->tok, data, (int)(n > INT32_MAX ? INT32_MAX : n));
                enum json_tokener_error err = json_tokener_get_error(q->tok);
                size_t used = (size_t)json_tokener_get_parse_end(q->tok);

                if (used == 0 || used > n)
                        used = n;
                q->msg_bytes += used;
                data += used;
                n -= used;
                if (msg) {
                        q->msg_bytes = 0;
                        watch_message(q, msg);
                        json_object_put(msg);
                } else if (err != json_tokener_continue)
                        http_req_fail(h, "bad JSON in the watch stream: %s", json_tokener_error_desc(err));
                else if (q->msg_bytes > ETCD_MAX_MESSAGE)
                        http_req_fail(h, "a watch message over %u MiB", ETCD_MAX_MESSAGE >> 20);
        }
        return !http_req_failed(h);
}

static void request_done(struct http_req *h, void *userdata);

/* A POST of a JSON body to the endpoint in use. */
static int req_new(struct etcd *e, enum req_kind kind, const char *path, json_object *body, struct req **ret)
{
        _cleanup_(freep) char *url = NULL, *auth = NULL;
        const struct cfg_etcd *c = &e->conf;
        const struct http_tls tls = { c->ca_file, c->ca_pem, c->cert_file, c->cert_pem, c->key_file, c->key_pem };
        const char *headers[] = { "Content-Type: application/json", NULL, NULL };
        struct req *q = calloc(1, sizeof(*q));
        int r;

        if (!q)
                return -ENOMEM;
        q->e = e;
        q->kind = kind;
        if (asprintf(&url, "%s%s", c->endpoints[e->fo.cur], path) < 0 ||
            (e->token && asprintf(&auth, "Authorization: %s", e->token) < 0) ||
            (kind == REQ_WATCH && !(q->tok = json_tokener_new()))) {
                req_free(q);
                return -ENOMEM;
        }
        headers[1] = auth;
        r = http_send(e->http,
                      &(const struct http_request){
                              .url = url,
                              .body = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
                              .headers = headers,
                              .tls = &tls,
                              .stream = kind == REQ_WATCH,
                              .max_body = ETCD_MAX_BODY,
                              .on_data = watch_data,
                              .on_done = request_done,
                              .userdata = q,
                      },
                      &q->h);
        if (r < 0) {
                req_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

/* ---- JSON helpers ---- */

static json_object *jget(json_object *o, const char *key)
{
        json_object *v = NULL;

        return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A 64-bit number, which the gateway prints as a string. */
static int64_t jint(json_object *o)
{
        if (json_object_is_type(o, json_type_string))
                return strtoll(json_object_get_string(o), NULL, 10);
        return o ? json_object_get_int64(o) : 0;
}

static const char *jstr(json_object *o)
{
        return json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static int add_b64(json_object *o, const char *key, const char *data, size_t len)
{
        char *s = etcd_base64_encode(data, len);
        json_object *v = s ? json_object_new_string(s) : NULL;

        free(s);
        if (!v)
                return -ENOMEM;
        json_object_object_add(o, key, v);
        return 0;
}

/* The message of an error body: {"error": "...", "message": "...", "code": N} (range)
 * or {"error": {"message": "...", ...}} (watch), else the text itself. */
static void body_error(const struct req *q, char *buf, size_t size)
{
        const char *body = http_req_body(q->h);
        json_object *o = body ? json_tokener_parse(body) : NULL;
        json_object *err = jget(o, "error");
        const char *msg = jstr(jget(o, "message"));

        if (!msg)
                msg = jstr(err) ? jstr(err) : jstr(jget(err, "message"));
        if (msg)
                snprintf(buf, size, "%s", msg);
        else
                snprintf(buf, size, "%.200s", body ? body : "no body");
        json_object_put(o);
}

/* ---- listing ---- */

static int send_range(struct etcd *e)
{
        const char *prefix = etcd_prefixes[e->list_prefix];
        _cleanup_(freep) char *end = NULL;
        json_object *body = json_object_new_object();
        size_t end_len = 0;
        int r;

        end = etcd_prefix_end(prefix, strlen(prefix), &end_len);
        if (!body || !end)
                r = -ENOMEM;
        else if ((r = add_b64(body, "key", e->page_key ? e->page_key : prefix,
                              e->page_key ? e->page_key_len : strlen(prefix))) >= 0 &&
                 (r = add_b64(body, "range_end", end, end_len)) >= 0) {
                json_object_object_add(body, "limit", json_object_new_int64(ETCD_PAGE));
                if (e->list_revision)
                        json_object_object_add(body, "revision", json_object_new_int64(e->list_revision));
                r = req_new(e, REQ_RANGE, "/v3/kv/range", body, &e->list);
        }
        json_object_put(body);
        return r;
}

static int send_auth(struct etcd *e)
{
        json_object *body = json_object_new_object();
        int r = -ENOMEM;

        if (body) {
                json_object_object_add(body, "name", json_object_new_string(e->conf.username));
                json_object_object_add(body, "password", json_object_new_string(e->conf.password));
                r = req_new(e, REQ_AUTH, "/v3/auth/authenticate", body, &e->list);
        }
        json_object_put(body);
        return r;
}

/* One kv of a range or watch response into a new struct kv. */
static int kv_from_json(json_object *o, bool with_value, struct kv **ret, char *err, size_t errsize)
{
        const char *k = jstr(jget(o, "key")), *v = jstr(jget(o, "value"));
        struct kv *kv = calloc(1, sizeof(*kv));
        size_t len;
        int r;

        if (!kv)
                return -ENOMEM;
        if (!k || (r = etcd_base64_decode(k, &kv->key, &len)) < 0 || strlen(kv->key) != len || !len) {
                snprintf(err, errsize, "a key that is not base64 text");
                kv_free(kv);
                return -EBADMSG;
        }
        /* A missing value is an empty one (Calico's old affinities have none). */
        if (with_value && (r = etcd_base64_decode(v ? v : "", &kv->value, &kv->value_len)) < 0) {
                snprintf(err, errsize, "the value of %.200s is not base64", kv->key);
                kv_free(kv);
                return -EBADMSG;
        }
        if (kv->value_len > ETCD_MAX_VALUE) {
                snprintf(err, errsize, "the value of %.200s is over %u MiB", kv->key, ETCD_MAX_VALUE >> 20);
                kv_free(kv);
                return -EBADMSG;
        }
        kv->mod_revision = jint(jget(o, "mod_revision"));
        *ret = kv;
        return 0;
}

static void list_complete(struct etcd *e);
static void start_watches(struct etcd *e);

/* An IPAM value as the record the load takes from it (a few dozen bytes instead of the
 * JSON, an IPAMBlock's hundreds), when the client was asked to. */
static int kv_compact(const struct etcd *e, struct kv *kv)
{
        char *rec = NULL;
        size_t n = 0;
        int r;

        if (!e->compact || !kv->value)
                return 0;
        r = cfg_kv_compact(&(struct cfg_kv){ kv->key, kv->value, kv->value_len, false }, &rec, &n);
        if (r <= 0)
                return r;
        free(kv->value);
        kv->value = rec;
        kv->value_len = n;
        kv->record = true;
        return 0;
}

static uint64_t loop_now(const struct etcd *e)
{
        uint64_t now = 0;

        sd_event_now(e->ev, CLOCK_MONOTONIC, &now);
        return now;
}

/* A range page: its keys into the new cache, then the next page or prefix. */
static void range_done(struct etcd *e, json_object *o)
{
        json_object *kvs = jget(o, "kvs");
        int64_t rev = jint(jget(jget(o, "header"), "revision"));
        char err[256];
        size_t n = json_object_is_type(kvs, json_type_array) ? json_object_array_length(kvs) : 0;
        struct kv *kv = NULL;
        int r;

        if (rev <= 0)
                return attempt_failed(e, "a range response without a revision");
        if (!e->list_revision)
                e->list_revision = rev;
        for (size_t i = 0; i < n; i++) {
                if ((r = kv_from_json(json_object_array_get_idx(kvs, i), true, &kv, err, sizeof(err))) < 0)
                        return attempt_failed(e, "%s", r == -ENOMEM ? strerror(ENOMEM) : err);
                if (i + 1 == n) {
                        /* The next page starts just after the last key. */
                        free(e->page_key);
                        e->page_key_len = strlen(kv->key) + 1;
                        if (!(e->page_key = malloc(e->page_key_len))) {
                                kv_free(kv);
                                return attempt_failed(e, "%s", strerror(ENOMEM));
                        }
                        memcpy(e->page_key, kv->key, e->page_key_len); /* with its NUL */
                }
                if ((r = kv_compact(e, kv)) < 0) {
                        kv_free(kv);
                        return attempt_failed(e, "%s", strerror(-r));
                }
                if ((r = kvmap_put(&e->building, kv)) < 0)
                        return attempt_failed(e, "%s", r == -E2BIG ? "more than the cap of keys" : strerror(-r));
        }
        if (!json_object_get_boolean(jget(o, "more")) || !n) {
                free(e->page_key);
                e->page_key = NULL;
                if (++e->list_prefix == ETCD_N_PREFIXES)
                        return list_complete(e);
        }
        if ((r = send_range(e)) < 0)
                attempt_failed(e, "%s", strerror(-r));
}

static void begin_attempt(struct etcd *e)
{
        int r;

        cancel_all(e);
        kvmap_clear(&e->building);
        free(e->page_key);
        e->page_key = NULL;
        e->list_prefix = 0;
        e->list_revision = 0;
        e->list_pages = 0;
        e->list_bytes = 0;
        free(e->token);
        e->token = NULL;
        e->state = ST_LISTING;
        log_debug("etcd: listing from %s", e->conf.endpoints[e->fo.cur]);
        r = e->conf.username ? send_auth(e) : send_range(e);
        if (r < 0)
                attempt_failed(e, "%s", strerror(-r));
}

static void once_failed(struct etcd *e)
{
        e->state = ST_FAILED;
        cancel_all(e);
        sd_event_exit(e->ev, 0);
}

static void round_failed(struct etcd *e)
{
        uint64_t now;

        cancel_all(e);
        if (e->once)
                return once_failed(e);
        e->state = ST_WAITING;
        sd_event_now(e->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(e->retry, now + http_failover_backoff(&e->fo));
        sd_event_source_set_enabled(e->retry, SD_EVENT_ONESHOT);
        if (e->ops && e->ops->unreachable)
                e->ops->unreachable(e, e->fo.why, e->userdata);
}

/* This endpoint failed: the next one, or, when each had its turn, wait and retry. */
static void attempt_failed(struct etcd *e, const char *fmt, ...)
{
        char reason[1024];
        const char *ep = e->conf.endpoints[e->fo.cur];
        bool more;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        more = http_failover_next(&e->fo, ep, "%s", reason);
        log_debug("etcd: %s", e->fo.why);
        cancel_all(e);
        if (more)
                begin_attempt(e);
        else
                round_failed(e);
}

static void pending_clear(struct etcd *e)
{
        for (size_t i = 0; i < e->n_pending; i++)
                free(e->pending[i]);
        free(e->pending);
        e->pending = NULL;
        e->n_pending = e->cap_pending = 0;
}

/* A watch event changed key: remember it (once is enough, duplicates go at
 * etcd_changes()); beyond the cap, or without memory, the changes are lost as a whole
 * (the next model is a full build). */
static void pending_add(struct etcd *e, const char *key)
{
        if (e->pending_lost)
                return;
        if (e->n_pending >= ETCD_MAX_PENDING || GROW(e->pending, e->cap_pending, e->n_pending + 1) < 0 ||
            !(e->pending[e->n_pending] = strdup(key))) {
                pending_clear(e);
                e->pending_lost = true;
                return;
        }
        e->n_pending++;
}

static void list_complete(struct etcd *e)
{
        struct kvmap old = e->cache;

        e->cache = e->building;
        e->building = (struct kvmap){};
        kvmap_clear(&old);
        /* Anything may have changed between the old cache and the new list. */
        pending_clear(e);
        e->pending_lost = true;
        e->revision = e->list_revision;
        e->has_data = true;
        /* The back-off restarts only once the watches stay up (watch_done()). */
        http_failover_up(&e->fo, loop_now(e));
        snprintf(e->endpoint, sizeof(e->endpoint), "%s", e->conf.endpoints[e->fo.cur]);
        req_free(e->list);
        e->list = NULL;
        log_debug("etcd: listed %zu keys at revision %lld from %s", e->cache.t.n, (long long)e->revision,
                  e->endpoint);
        if (e->once) {
                e->state = ST_DONE;
                sd_event_exit(e->ev, 0);
                return;
        }
        start_watches(e);
        if (e->ops && e->ops->synced)
                e->ops->synced(e, e->userdata);
}

static void start_round(struct etcd *e)
{
        http_failover_round(&e->fo);
        e->list_restarts = 0;
        /* No libcurl, no endpoint to try: the round fails as a whole, why says so. */
        if (http_start(e->http, e->fo.why, sizeof(e->fo.why)) < 0)
                return round_failed(e);
        begin_attempt(e);
}

/* ---- watching ---- */

static void start_watches(struct etcd *e)
{
        e->state = ST_WATCHING;
        for (size_t i = 0; i < ETCD_N_PREFIXES; i++) {
                const char *prefix = etcd_prefixes[i];
                json_object *body = json_object_new_object(), *create = json_object_new_object();
                _cleanup_(freep) char *end = NULL;
                size_t end_len = 0;
                int r = -ENOMEM;

                end = etcd_prefix_end(prefix, strlen(prefix), &end_len);
                if (body && create && end && add_b64(create, "key", prefix, strlen(prefix)) >= 0 &&
                    add_b64(create, "range_end", end, end_len) >= 0) {
                        json_object_object_add(create, "start_revision", json_object_new_int64(e->revision + 1));
                        json_object_object_add(body, "create_request", create);
                        create = NULL;
                        r = req_new(e, REQ_WATCH, "/v3/watch", body, &e->watch[i]);
                        if (r >= 0)
                                e->watch[i]->prefix = i;
                }
                json_object_put(create);
                json_object_put(body);
                if (r < 0) {
                        log_warning("etcd: cannot start a watch: %s; listing again", strerror(-r));
                        return attempt_failed(e, "cannot start a watch: %s", strerror(-r));
                }
        }
}

static void apply_event(struct req *q, json_object *ev, bool *changed)
{
        struct etcd *e = q->e;
        const char *type = jstr(jget(ev, "type"));
        bool del = type && streq(type, "DELETE");
        struct kv *kv = NULL;
        char err[256];
        int r;

        r = kv_from_json(jget(ev, "kv"), !del, &kv, err, sizeof(err));
        if (r < 0) {
                http_req_fail(q->h, "%s", r == -ENOMEM ? strerror(ENOMEM) : err);
                return;
        }
        if ((r = kv_compact(e, kv)) < 0) {
                kv_free(kv);
                http_req_fail(q->h, "%s", strerror(-r));
                return;
        }
        pending_add(e, kv->key);
        if (del) {
                kvmap_del(&e->cache, kv->key);
                kv_free(kv);
        } else if ((r = kvmap_put(&e->cache, kv)) < 0) {
                http_req_fail(q->h, "%s", r == -E2BIG ? "more than the cap of keys" : strerror(-r));
                return;
        }
        *changed = true;
}

static void watch_message(struct req *q, json_object *msg)
{
        struct etcd *e = q->e;
        json_object *res = jget(msg, "result"), *events = jget(res, "events");
        int64_t rev = jint(jget(jget(res, "header"), "revision")), compact = jint(jget(res, "compact_revision"));
        size_t n = json_object_is_type(events, json_type_array) ? json_object_array_length(events) : 0;
        bool changed = false;

        if (jget(msg, "error") || !res) {
                json_object *err = jget(msg, "error");
                const char *why = jstr(jget(err, "message")) ? jstr(jget(err, "message")) : jstr(err);

                http_req_fail(q->h, "the watch failed: %s", why ? why : "an answer without a result");
                return;
        }
        if (compact > 0) {
                q->compacted = true;
                http_req_fail(q->h, "revision %lld is compacted (compaction at %lld)",
                         (long long)e->revision + 1, (long long)compact);
                return;
        }
        if (json_object_get_boolean(jget(res, "canceled"))) {
                const char *reason = jstr(jget(res, "cancel_reason"));

                http_req_fail(q->h, "etcd cancelled the watch%s%s", reason ? ": " : "",
                         reason ? reason : "");
                return;
        }
        if (json_object_get_boolean(jget(res, "created")))
                q->created = true;
        for (size_t i = 0; i < n && !http_req_failed(q->h); i++)
                apply_event(q, json_object_array_get_idx(events, i), &changed);
        if (rev > e->revision && !http_req_failed(q->h))
                e->revision = rev;
        if (changed && e->ops && e->ops->changed)
                e->ops->changed(e, e->userdata);
}

/* ---- transfers that ended ---- */

static void list_request_done(struct etcd *e, struct req *q)
{
        long status = http_req_status(q->h);
        const char *err = http_req_error(q->h), *body;
        json_object *o;
        char why[256];

        if (err)
                return attempt_failed(e, "%s", err);
        if (status != 200) {
                body_error(q, why, sizeof(why));
                /* The revision of the first page was compacted before a later page was
                 * read: not the endpoint's fault; start over at the newest revision. */
                if (q->kind == REQ_RANGE && e->list_revision && strstr(why, "compacted") &&
                    e->list_restarts++ < 3) {
                        log_notice("etcd: listing from %s: %s; starting over", e->conf.endpoints[e->fo.cur], why);
                        return begin_attempt(e);
                }
                return attempt_failed(e, "HTTP %ld: %s", status, why);
        }
        body = http_req_body(q->h);
        /* One list is bounded: an etcd (or something posing as one) that answers
         * "more" for ever, or pages that never end, is an endpoint that failed. */
        if (q->kind == REQ_RANGE && body &&
            (++e->list_pages > ETCD_MAX_PAGES || (e->list_bytes += strlen(body)) > ETCD_MAX_LIST_BYTES))
                return attempt_failed(e, "the list did not end after %u pages (%zu MiB): the answers say \"more\" "
                                         "past the caps of %u pages and %u MiB",
                                      e->list_pages, e->list_bytes >> 20, ETCD_MAX_PAGES, ETCD_MAX_LIST_BYTES >> 20);
        o = body ? json_tokener_parse(body) : NULL;
        if (!o)
                return attempt_failed(e, "the answer is not JSON");
        if (q->kind == REQ_AUTH) {
                const char *token = jstr(jget(o, "token"));

                e->token = token ? strdup(token) : NULL;
                json_object_put(o);
                req_free(e->list);
                e->list = NULL;
                if (!e->token)
                        return attempt_failed(e, "authentication gave no token");
                if (send_range(e) < 0)
                        attempt_failed(e, "%s", strerror(ENOMEM));
                return;
        }
        req_free(e->list);
        e->list = NULL;
        range_done(e, o);
        json_object_put(o);
}

/* A watch ended: list again, at once after a watch that had stayed up a while, else
 * after the next back-off step (jittered, capped): a watch that fails right away, over
 * and over, must not become a full list every few milliseconds from every node. The
 * line saying so is logged at most once a minute, with how many it stood for. */
static void watch_done(struct etcd *e, struct req *q)
{
        const char *err = http_req_error(q->h);
        uint64_t now = loop_now(e), delay = http_failover_down(&e->fo, now);
        unsigned suppressed = 0;
        char why[512], later[64] = "";

        if (q->compacted)
                snprintf(why, sizeof(why), "%s", err ? err : "compacted");
        else if (!err && http_req_status(q->h) != 200)
                body_error(q, why, sizeof(why));
        else
                snprintf(why, sizeof(why), "%s", err ? err : "the stream ended");
        if (delay)
                snprintf(later, sizeof(later), " in %.1f s", (double)delay / 1e6);
        if (http_failover_log(&e->fo, now, &suppressed)) {
                char more[96] = "";

                if (suppressed)
                        snprintf(more, sizeof(more), " (and %u more times since the last report)", suppressed);
                log_notice("etcd: watch %sfrom %s (%s); listing again%s%s", q->compacted ? "" : "stream broke ",
                           e->endpoint, why, later, more);
        } else
                log_debug("etcd: watch from %s ended (%s); listing again%s", e->endpoint, why, later);
        cancel_all(e);
        if (!delay)
                return start_round(e);
        e->state = ST_WAITING;
        sd_event_source_set_time(e->retry, now + delay);
        sd_event_source_set_enabled(e->retry, SD_EVENT_ONESHOT);
}

static void request_done(struct http_req *h, void *userdata)
{
        struct req *q = userdata;

        (void)h;
        if (q->kind == REQ_WATCH)
                watch_done(q->e, q);
        else
                list_request_done(q->e, q);
}

/* ---- timers ---- */

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        (void)s;
        (void)usec;
        start_round(userdata);
        return 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct etcd *e = userdata;
        size_t n = strlen(e->fo.why);

        (void)s;
        (void)usec;
        snprintf(e->fo.why + n, sizeof(e->fo.why) - n, "%s%s: no answer in time", n ? "; " : "",
                 e->conf.endpoints[e->fo.cur]);
        once_failed(e);
        return 0;
}

/* ---- public ---- */

int etcd_new(sd_event *ev, const struct cfg_etcd *conf, const struct etcd_ops *ops, void *userdata,
             struct etcd **ret)
{
        struct etcd *e;
        int r;

        if (!conf->n_endpoints)
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->ev = sd_event_ref(ev);
        e->ops = ops;
        e->userdata = userdata;
        if ((r = cfg_etcd_copy(conf, &e->conf)) < 0 || (r = http_new(ev, &e->http)) < 0 ||
            (r = sd_event_add_time(ev, &e->retry, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_retry, e)) < 0) {
                etcd_free(e);
                return r < 0 ? r : -ENOMEM;
        }
        e->fo = (struct http_failover){ .n = conf->n_endpoints, .min_usec = RETRY_MIN_USEC, .max_usec = RETRY_MAX_USEC };
        sd_event_source_set_enabled(e->retry, SD_EVENT_OFF);
        *ret = e;
        return 0;
}

void etcd_free(struct etcd *e)
{
        if (!e)
                return;
        cancel_all(e);
        http_free(e->http);
        sd_event_source_disable_unref(e->retry);
        sd_event_source_disable_unref(e->deadline);
        sd_event_unref(e->ev);
        kvmap_clear(&e->building);
        kvmap_clear(&e->cache);
        pending_clear(e);
        free(e->page_key);
        free(e->token);
        cfg_etcd_clear(&e->conf);
        free(e);
}

int etcd_start(struct etcd *e)
{
        start_round(e);
        return 0;
}

void etcd_relist(struct etcd *e)
{
        if (e->state == ST_WAITING)
                sd_event_source_set_enabled(e->retry, SD_EVENT_OFF);
        cancel_all(e);
        start_round(e);
}

const struct cfg_etcd *etcd_conf(const struct etcd *e)
{
        return &e->conf;
}

bool etcd_has_data(const struct etcd *e)
{
        return e && e->has_data;
}

const char *etcd_endpoint(const struct etcd *e)
{
        return e->endpoint;
}

int64_t etcd_revision(const struct etcd *e)
{
        return e->revision;
}

size_t etcd_n_keys(const struct etcd *e)
{
        return e->cache.t.n;
}

static int kv_cmp(const void *a, const void *b)
{
        return strcmp(((const struct cfg_kv *)a)->key, ((const struct cfg_kv *)b)->key);
}

int etcd_kvs(const struct etcd *e, struct cfg_kv **ret, size_t *ret_n)
{
        const struct strtab *t = &e->cache.t;
        struct cfg_kv *v = malloc((t->n ? t->n : 1) * sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < t->size; i++) {
                const struct kv *kv = t->slots[i];

                if (kv)
                        v[n++] = (struct cfg_kv){ kv->key, kv->value, kv->value_len, kv->record };
        }
        qsort(v, n, sizeof(*v), kv_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

int etcd_list_once(const struct cfg_etcd *conf, uint64_t timeout_usec, struct etcd **ret, char *why,
                   size_t why_size)
{
        sd_event *ev = NULL;
        struct etcd *e = NULL;
        uint64_t now;
        int r;

        if ((r = sd_event_new(&ev)) < 0)
                return r;
        r = etcd_new(ev, conf, NULL, NULL, &e);
        sd_event_unref(ev); /* the client holds it */
        if (r < 0)
                return r;
        e->once = true;
        sd_event_now(ev, CLOCK_MONOTONIC, &now);
        if ((r = sd_event_add_time(ev, &e->deadline, CLOCK_MONOTONIC, now + timeout_usec, 10000, on_deadline, e)) < 0) {
                etcd_free(e);
                return r;
        }
        start_round(e);
        if (e->state == ST_LISTING && (r = sd_event_loop(ev)) < 0) {
                etcd_free(e);
                return r;
        }
        if (e->state != ST_DONE) {
                snprintf(why, why_size, "%s", e->fo.why[0] ? e->fo.why : "no endpoint answered");
                etcd_free(e);
                return -EHOSTUNREACH;
        }
        *ret = e;
        return 0;
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int etcd_changes(struct etcd *e, struct cfg_kv **ret, size_t *ret_n)
{
        struct cfg_kv *v;
        size_t n = 0;

        if (e->pending_lost || !e->has_data)
                return -EAGAIN;
        v = malloc((e->n_pending ? e->n_pending : 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        if (e->n_pending > 1)
                qsort(e->pending, e->n_pending, sizeof(*e->pending), str_cmp);
        for (size_t i = 0; i < e->n_pending; i++) {
                const struct kv *kv;

                if (n && streq(v[n - 1].key, e->pending[i]))
                        continue;
                kv = strtab_get(&e->cache.t, e->pending[i], kv_key, NULL);
                v[n++] = (struct cfg_kv){ e->pending[i], kv ? kv->value : NULL, kv ? kv->value_len : 0,
                                          kv && kv->record };
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

void etcd_compact(struct etcd *e)
{
        e->compact = true;
}

void etcd_changes_reset(struct etcd *e)
{
        pending_clear(e);
        e->pending_lost = false;
}
