/* The etcd v3 client (etcd.h): list, then watch, over etcd's JSON gateway.
 *
 * Owns: etcd's protocol (the requests, their JSON, paging, what a watch message or a
 * compacted revision means for the cache), the requests in flight, the key→value cache
 * and the retry policy. Reading etcd's answers into values (range pages, the watch
 * stream, tokens, error bodies) is etcd-parse.c's, pure so that it is unit-tested and
 * fuzzed on its own; HTTP itself (curl on the loop, TLS, timeouts, failover
 * bookkeeping) is http.c's. Must never: touch the host, build the model, or decide
 * what a change means; it tells the loop through etcd_ops.
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
#include <strings.h>
#include <time.h>

#include "etcd-grpc.h"
#include "http.h"
#include "load.h"
#include "strtab.h"
#include "log.h"
#include "util.h"

/* In key order (etcd's, bytewise): a list then reads every key in order, which the
 * cache packs as it comes (etcd-cache.h; out of order, it would keep them on top,
 * unpacked), and a one-shot list hands a sink every key in key order
 * (etcd_list_once()). */
const char *const etcd_prefixes[ETCD_N_PREFIXES] = {
        CFG_ETCD_BLOCK_PREFIX,
        CFG_ETCD_AFFINITY_PREFIX,
        CFG_ETCD_RESOURCES_PREFIX "felixconfigurations/",
        CFG_ETCD_RESOURCES_PREFIX "ippools/",
        CFG_ETCD_RESOURCES_PREFIX "nodes/",
};

/* Retry: the first after a second, doubling up to half a minute, each drawn from
 * 80-120% of that so a fleet does not come back in step. */
#define RETRY_MIN_USEC (1000 * 1000ULL)
#define RETRY_MAX_USEC (30 * 1000 * 1000ULL)
/* Every watch of a round must be confirmed (etcd answers a create_request with a
 * `created` message at once) within this long, else the round failed: a peer that took
 * the connection (and TLS) but never answers would hold the watch for ever, as no
 * overall timeout bounds a stream and TCP keepalive cannot see a silent live peer. The
 * same scale as the stream connect timeout (STREAM_CONNECT_TIMEOUT_MS, http.c). */
#define WATCH_CREATED_USEC (30 * 1000 * 1000ULL)
/* A confirmed watch can go silent too (etcd wedged, a proxy holding the stream, a
 * partition TCP keepalive does not see through a proxy): the watches ask etcd for
 * progress notifications (`progress_notify`: a message without events when a watch has
 * had none for etcd's --experimental-watch-progress-notify-interval, 10 minutes by
 * default; the interval flag since etcd 3.4, server/etcdserver/api/v3rpc/watch.go; etcd
 * sends one only to a watch that has caught up and had no events since the last
 * tick, so two intervals and a tenth may pass between them), so a watch that
 * says nothing for 25 minutes, two and a half of those intervals, is given up and the
 * data listed again. CALICO_UNDERLAY_ETCD_WATCH_SILENCE (seconds, 0 = never) sets it for
 * an etcd with a longer interval, or a proxy that drops the notifications. */
#define WATCH_SILENCE_USEC (25 * 60 * 1000000ULL)

/* ---- range ends ---- */

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

/* ---- the cache (etcd-cache.h) ---- */

/* Takes kv (also on failure). */
static int kvmap_put(struct etcd_cache *c, struct etcd_kv *kv)
{
        struct cfg_kv had;
        int r;

        if (etcd_cache_n(c) >= ETCD_MAX_KEYS && (r = etcd_cache_get(c, kv->key, &had)) <= 0)
                r = r < 0 ? r : -E2BIG;
        else
                r = etcd_cache_put(c, kv->key, kv->value, kv->value_len, kv->record);
        etcd_kv_free(kv);
        return r;
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
        struct etcd_stream stream; /* watch */
        bool created;          /* watch: etcd confirmed it */
        uint64_t heard;        /* watch: when its last message came (CLOCK_MONOTONIC) */
        bool compacted;        /* watch: asked for a compacted revision */
        bool grpc;             /* auth, range: sent over gRPC */
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
        /* WATCH_CREATED_USEC after the watches started; once they are confirmed, the
         * silence_usec after the oldest of their last messages */
        sd_event_source *watch_timer;
        uint64_t silence_usec; /* 0: a confirmed watch may be silent for ever */
        struct cfg_etcd conf;
        const struct etcd_ops *ops;
        void *userdata;
        bool once;
        enum state state;
        struct http_failover fo; /* the endpoint in use, this round's failures */
        char *token;         /* etcd authentication */
        /* The list speaks gRPC (HTTP/2) unless the endpoint did not (its flag set when
         * it answered otherwise: it is asked over the JSON gateway from then on) or
         * CALICO_UNDERLAY_ETCD_GATEWAY=1 says not to; the watch uses the gateway. */
        bool grpc;
        bool *gateway_only; /* per endpoint */
        /* Why the endpoint grpc_why_ep was last left for its gateway: a gateway that
         * fails too is reported with it (the gateway's error alone would hide it). */
        char grpc_why[200];
        size_t grpc_why_ep;
        /* listing */
        struct req *list;
        struct etcd_cache building;
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
        struct etcd_cache cache;
        bool compact; /* keep IPAM and Node values as records (etcd_compact()) */
        const struct etcd_sink *sink; /* --once: keys handed over, not kept */
        size_t n_sunk;                /* keys handed to it in this list */
        char *last_key;               /* the last of them */
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
        etcd_stream_clear(&q->stream);
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
        if (e->watch_timer)
                sd_event_source_set_enabled(e->watch_timer, SD_EVENT_OFF);
}

static int watch_message(struct etcd_watch_msg *m, void *userdata);

/* Feed the stream: each complete object is one watch response. */
static bool watch_data(struct http_req *h, const char *data, size_t n, void *userdata)
{
        struct req *q = userdata;
        char err[256];
        int r;

        if (http_req_failed(h))
                return false;
        r = etcd_stream_feed(&q->stream, data, n, watch_message, q, err, sizeof(err));
        if (r == -EBADMSG)
                http_req_fail(h, "%s", err);
        else if (r < 0 && r != -ECANCELED)
                http_req_fail(h, "%s", strerror(-r));
        return !http_req_failed(h);
}

static void request_done(struct http_req *h, void *userdata);

/* A POST to the endpoint in use: a JSON body (the gateway), or len bytes of a gRPC
 * message (grpc). */
static int req_send(struct etcd *e, enum req_kind kind, const char *path, const char *body, size_t len, bool grpc,
                    struct req **ret)
{
        _cleanup_(freep) char *url = NULL, *auth = NULL;
        const struct cfg_etcd *c = &e->conf;
        const struct http_tls tls = { c->ca_file, c->ca_pem, c->cert_file, c->cert_pem, c->key_file, c->key_pem };
        const char *headers[] = { grpc ? "Content-Type: application/grpc" : "Content-Type: application/json",
                                  grpc ? "TE: trailers" : NULL, NULL, NULL };
        struct req *q = calloc(1, sizeof(*q));
        int r;

        if (!q)
                return -ENOMEM;
        q->e = e;
        q->kind = kind;
        q->grpc = grpc;
        /* etcd reads the token from the "token" metadata on gRPC, from Authorization on
         * the gateway. */
        if (asprintf(&url, "%s%s", c->endpoints[e->fo.cur], path) < 0 ||
            (e->token && asprintf(&auth, "%s: %s", grpc ? "token" : "Authorization", e->token) < 0) ||
            (kind == REQ_WATCH && etcd_stream_init(&q->stream) < 0)) {
                req_free(q);
                return -ENOMEM;
        }
        headers[grpc ? 2 : 1] = auth;
        r = http_send(e->http,
                      &(const struct http_request){
                              .url = url,
                              .body = body,
                              .body_len = len,
                              .http2 = grpc,
                              .headers = headers,
                              .tls = &tls,
                              .stream = kind == REQ_WATCH,
                              .max_body = grpc ? ETCD_MAX_BODY + ETCD_GRPC_PREFIX + 1 : ETCD_MAX_BODY,
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

static int req_new(struct etcd *e, enum req_kind kind, const char *path, json_object *body, struct req **ret)
{
        return req_send(e, kind, path, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), 0, false, ret);
}

/* ---- JSON helpers ---- */

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

/* The message of an error body (etcd_parse_error()). */
static void body_error(const struct req *q, char *buf, size_t size)
{
        const char *body = http_req_body(q->h);

        etcd_parse_error(body, body ? strlen(body) : 0, buf, size);
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
        if (e->grpc) {
                _cleanup_(freep) char *msg = NULL;
                size_t len;

                json_object_put(body);
                if (!end || etcd_grpc_range_request(e->page_key ? e->page_key : prefix,
                                                    e->page_key ? e->page_key_len : strlen(prefix), end, end_len,
                                                    ETCD_PAGE, e->list_revision, &msg, &len) < 0)
                        return -ENOMEM;
                return req_send(e, REQ_RANGE, ETCD_GRPC_RANGE, msg, len, true, &e->list);
        }
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
        json_object *body;
        int r = -ENOMEM;

        if (e->grpc) {
                _cleanup_(freep) char *msg = NULL;
                size_t len;

                if (etcd_grpc_auth_request(e->conf.username, e->conf.password, &msg, &len) < 0)
                        return -ENOMEM;
                return req_send(e, REQ_AUTH, ETCD_GRPC_AUTH, msg, len, true, &e->list);
        }
        body = json_object_new_object();
        if (body) {
                json_object_object_add(body, "name", json_object_new_string(e->conf.username));
                json_object_object_add(body, "password", json_object_new_string(e->conf.password));
                r = req_new(e, REQ_AUTH, "/v3/auth/authenticate", body, &e->list);
        }
        json_object_put(body);
        return r;
}

static void list_complete(struct etcd *e);
static void start_watches(struct etcd *e);
static void sink_page(struct etcd *e, struct etcd_range *page);

/* An IPAM or Node value as the record the load takes from it (a few dozen bytes instead
 * of the JSON, an IPAMBlock's hundreds), when the client was asked to. */
static int kv_compact(const struct etcd *e, struct etcd_kv *kv)
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

/* The next page starts just after the last key of this one (its NUL added). */
static int set_page_key(struct etcd *e, const char *last)
{
        free(e->page_key);
        e->page_key_len = strlen(last) + 1;
        e->page_key = malloc(e->page_key_len);
        if (!e->page_key)
                return -ENOMEM;
        memcpy(e->page_key, last, e->page_key_len);
        return 0;
}

static void next_page(struct etcd *e, const struct etcd_range *page)
{
        int r;

        if (!page->more || !page->n_kvs) {
                free(e->page_key);
                e->page_key = NULL;
                if (++e->list_prefix == ETCD_N_PREFIXES)
                        return list_complete(e);
        }
        if ((r = send_range(e)) < 0)
                attempt_failed(e, "%s", strerror(-r));
}

/* A range page handed to the sink, key by key: every key after the one before it in
 * the whole list (the prefixes are in key order), so no key is handed over twice.
 * The next page is asked for first: etcd reads it while the sink loads this one. */
static void sink_page(struct etcd *e, struct etcd_range *page)
{
        const char *prev = e->last_key;
        size_t n = page->n_kvs;
        bool last;
        int r;

        for (size_t i = 0; i < n; i++) {
                if (prev && strcmp(page->kvs[i]->key, prev) <= 0)
                        return attempt_failed(e, "a range answer with %.200s after %.200s: not in key order",
                                              page->kvs[i]->key, prev);
                prev = page->kvs[i]->key;
        }
        if (e->n_sunk + n > ETCD_MAX_KEYS)
                return attempt_failed(e, "more than the cap of keys");
        if (n) {
                free(e->last_key);
                if (!(e->last_key = strdup(page->kvs[n - 1]->key)) || set_page_key(e, e->last_key) < 0)
                        return attempt_failed(e, "%s", strerror(ENOMEM));
        }
        last = (!page->more || !n) && e->list_prefix + 1 == ETCD_N_PREFIXES;
        if (!last) {
                next_page(e, page);
                if (e->state != ST_LISTING)
                        return;
                /* On its way before this page is loaded, not after. */
                http_kick(e->http);
        }
        for (size_t i = 0; i < n; i++) {
                const struct etcd_kv *kv = page->kvs[i];

                /* The key alone, for its name (etcd_input_name()): input number n_sunk. */
                if ((r = etcd_cache_put(&e->building, kv->key, "", 0, false)) < 0 ||
                    (r = e->sink->kv(&(const struct cfg_kv){ kv->key, kv->value, kv->value_len, false },
                                     e->sink->userdata)) < 0)
                        return attempt_failed(e, "%s", strerror(-r));
                e->n_sunk++;
        }
        if (last)
                next_page(e, page);
}

/* A range page: its keys into the new cache, then the next page or prefix. */
static void range_done(struct etcd *e, struct etcd_range *page)
{
        size_t n = page->n_kvs;
        int r;

        if (!e->list_revision)
                e->list_revision = page->revision;
        if (e->sink)
                return sink_page(e, page);
        if (n && set_page_key(e, page->kvs[n - 1]->key) < 0)
                return attempt_failed(e, "%s", strerror(ENOMEM));
        for (size_t i = 0; i < n; i++) {
                struct etcd_kv *kv = TAKE_PTR(page->kvs[i]);

                if ((r = kv_compact(e, kv)) < 0) {
                        etcd_kv_free(kv);
                        return attempt_failed(e, "%s", strerror(-r));
                }
                if ((r = kvmap_put(&e->building, kv)) < 0)
                        return attempt_failed(e, "%s", r == -E2BIG ? "more than the cap of keys" : strerror(-r));
        }
        next_page(e, page);
}

/* CALICO_UNDERLAY_ETCD_WATCH_SILENCE=SECONDS: how long a confirmed watch may say
 * nothing (WATCH_SILENCE_USEC); 0 = for ever. */
static uint64_t watch_silence(void)
{
        const char *v = getenv("CALICO_UNDERLAY_ETCD_WATCH_SILENCE");
        unsigned long long s;
        char *end;

        if (!v || !*v)
                return WATCH_SILENCE_USEC;
        errno = 0;
        s = strtoull(v, &end, 10);
        if (errno || *end || *v == '-' || s > 100ULL * 365 * 24 * 3600) {
                log_warning("etcd: CALICO_UNDERLAY_ETCD_WATCH_SILENCE=%.40s is not a number of seconds; using %llu",
                            v, WATCH_SILENCE_USEC / 1000000);
                return WATCH_SILENCE_USEC;
        }
        return s * 1000000ULL;
}

/* CALICO_UNDERLAY_ETCD_GATEWAY=1: list over the JSON gateway only (tests, and an
 * escape hatch should gRPC misbehave somewhere). */
static bool gateway_wanted(void)
{
        const char *v = getenv("CALICO_UNDERLAY_ETCD_GATEWAY");

        return v && *v && strcmp(v, "0") != 0;
}

static void begin_attempt(struct etcd *e)
{
        int r;

        cancel_all(e);
        etcd_cache_clear(&e->building);
        free(e->page_key);
        e->page_key = NULL;
        e->list_prefix = 0;
        e->list_revision = 0;
        e->list_pages = 0;
        e->list_bytes = 0;
        if (e->sink) {
                e->sink->reset(e, e->sink->userdata);
                e->n_sunk = 0;
                free(e->last_key);
                e->last_key = NULL;
        }
        free(e->token);
        e->token = NULL;
        e->state = ST_LISTING;
        e->grpc = !e->gateway_only[e->fo.cur] && !gateway_wanted();
        log_debug("etcd: listing from %s over %s", e->conf.endpoints[e->fo.cur], e->grpc ? "gRPC" : "the JSON gateway");
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
        if (!e->grpc && e->gateway_only[e->fo.cur] && e->grpc_why[0] && e->grpc_why_ep == e->fo.cur)
                snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason), " (over gRPC: %s)", e->grpc_why);
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
        struct etcd_cache old = e->cache;

        e->cache = e->building;
        e->building = (struct etcd_cache){};
        etcd_cache_clear(&old);
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
        log_debug("etcd: listed %zu keys at revision %lld from %s over %s", etcd_n_keys(e), (long long)e->revision,
                  e->endpoint, e->grpc ? "gRPC" : "the JSON gateway");
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
        sd_event_source_set_time(e->watch_timer, loop_now(e) + WATCH_CREATED_USEC);
        sd_event_source_set_enabled(e->watch_timer, SD_EVENT_ONESHOT);
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
                        json_object_object_add(create, "progress_notify", json_object_new_boolean(1));
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

/* Takes the event's kv. */
static int apply_event(struct etcd *e, struct etcd_event *ev)
{
        struct etcd_kv *kv = TAKE_PTR(ev->kv);
        int r;

        if ((r = kv_compact(e, kv)) < 0) {
                etcd_kv_free(kv);
                return r;
        }
        pending_add(e, kv->key);
        if (ev->del) {
                r = etcd_cache_del(&e->cache, kv->key);
                etcd_kv_free(kv);
                return r;
        }
        return kvmap_put(&e->cache, kv);
}

static bool all_created(const struct etcd *e)
{
        for (size_t i = 0; i < ETCD_N_PREFIXES; i++)
                if (!e->watch[i] || !e->watch[i]->created)
                        return false;
        return true;
}

/* The confirmed watch heard from longest ago (all_created()). */
static size_t quietest(const struct etcd *e)
{
        size_t q = 0;

        for (size_t i = 1; i < ETCD_N_PREFIXES; i++)
                if (e->watch[i]->heard < e->watch[q]->heard)
                        q = i;
        return q;
}

/* Every watch confirmed: the timer now waits for the quietest one's silence. A
 * message does not move the timer (a syscall per event): it fires, finds who spoke
 * since, and waits again. */
static void arm_silence(struct etcd *e)
{
        if (!e->silence_usec) {
                sd_event_source_set_enabled(e->watch_timer, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_time(e->watch_timer, e->watch[quietest(e)]->heard + e->silence_usec);
        sd_event_source_set_enabled(e->watch_timer, SD_EVENT_ONESHOT);
}

/* One watch response; -ECANCELED when it failed the watch (the stream is read no
 * further). */
static int watch_message(struct etcd_watch_msg *m, void *userdata)
{
        struct req *q = userdata;
        struct etcd *e = q->e;
        bool changed = false;
        int r = 0;

        q->heard = loop_now(e);
        switch (m->kind) {
        case ETCD_WATCH_FAILED:
                http_req_fail(q->h, "the watch failed: %s", m->why);
                return -ECANCELED;
        case ETCD_WATCH_COMPACTED:
                q->compacted = true;
                http_req_fail(q->h, "revision %lld is compacted (compaction at %lld)", (long long)e->revision + 1,
                              (long long)m->compact_revision);
                return -ECANCELED;
        case ETCD_WATCH_CANCELED:
                http_req_fail(q->h, "etcd cancelled the watch%s%s", m->why[0] ? ": " : "", m->why);
                return -ECANCELED;
        case ETCD_WATCH_BAD:
                http_req_fail(q->h, "%s", m->why);
                return -ECANCELED;
        case ETCD_WATCH_EVENTS:
                break;
        }
        if (m->created && !q->created) {
                q->created = true;
                if (all_created(e))
                        arm_silence(e);
        }
        for (size_t i = 0; i < m->n_events && r >= 0; i++) {
                r = apply_event(e, &m->events[i]);
                changed = true;
        }
        if (r < 0)
                http_req_fail(q->h, "%s", r == -E2BIG ? "more than the cap of keys" : strerror(-r));
        else if (m->revision > e->revision)
                /* What STATUS= and --check show, and the compaction message: the
                 * watches never resume from it (they start after a list, from its
                 * revision), and it could not serve as such: one maximum over five
                 * streams, one of which may lag another. */
                e->revision = m->revision;
        if (changed && e->ops && e->ops->changed)
                e->ops->changed(e, e->userdata);
        return r < 0 ? -ECANCELED : 0;
}

/* ---- transfers that ended ---- */

/* A gRPC answer that is not one (no HTTP/2, not application/grpc): an endpoint that
 * does not speak it (an old or foreign gateway, a proxy that only knows HTTP/1.1).
 * True when the list starts over on the same endpoint through the JSON gateway, which
 * it will use from then on. */
static bool fall_back_to_gateway(struct etcd *e, struct req *q)
{
        const char *ct = http_req_header(q->h, "content-type");

        if (!q->grpc || (http_req_is_http2(q->h) && ct && strncasecmp(ct, "application/grpc", 16) == 0))
                return false;
        /* Nothing answered: the gateway would not fare better. A stream reset (its
         * headers may be lost with it: no HTTP/2 seen) comes from an HTTP/2 peer. */
        if (!http_req_connected(q->h) || http_req_stream_reset(q->h))
                return false;
        if (http_req_status(q->h))
                snprintf(e->grpc_why, sizeof(e->grpc_why), "%s, status %ld%s%s",
                         http_req_is_http2(q->h) ? "HTTP/2" : "HTTP/1", http_req_status(q->h),
                         http_req_error(q->h) ? ": " : "", http_req_error(q->h) ? http_req_error(q->h) : "");
        else /* an HTTP/1.1 server's answer to HTTP/2's preface, a stream refused (GOAWAY) */
                snprintf(e->grpc_why, sizeof(e->grpc_why), "no HTTP/2 answer%s%s", http_req_error(q->h) ? ": " : "",
                         http_req_error(q->h) ? http_req_error(q->h) : "");
        e->grpc_why_ep = e->fo.cur;
        log_debug("etcd: %s does not answer gRPC (%s); listing through its JSON gateway", e->conf.endpoints[e->fo.cur],
                  e->grpc_why);
        e->gateway_only[e->fo.cur] = true;
        begin_attempt(e);
        return true;
}

/* What a gRPC answer's status says (grpc-status 0: nothing, else why). */
static bool grpc_failed(const struct req *q, char *why, size_t size)
{
        const char *st = http_req_header(q->h, "grpc-status");
        char msg[200];

        if (st && streq(st, "0"))
                return false;
        if (!st) {
                snprintf(why, size, "a gRPC answer without grpc-status");
                return true;
        }
        etcd_grpc_message(http_req_header(q->h, "grpc-message"), msg, sizeof(msg));
        snprintf(why, size, "gRPC status %.8s: %s", st, msg[0] ? msg : "no message");
        return true;
}

/* The answer failed (why): a compacted revision starts the list over, anything else
 * is the endpoint's failure. */
static void answer_failed(struct etcd *e, struct req *q, const char *why)
{
        /* The revision of the first page was compacted before a later page was read:
         * not the endpoint's fault; start over at the newest revision. */
        if (q->kind == REQ_RANGE && e->list_revision && strstr(why, "compacted") && e->list_restarts++ < 3) {
                log_notice("etcd: listing from %s: %s; starting over", e->conf.endpoints[e->fo.cur], why);
                return begin_attempt(e);
        }
        attempt_failed(e, "%s", why);
}

static void list_request_done(struct etcd *e, struct req *q)
{
        long status = http_req_status(q->h);
        const char *err = http_req_error(q->h), *body;
        struct etcd_range page;
        char why[512], msg[256];
        size_t len;
        int r;

        if (fall_back_to_gateway(e, q))
                return;
        if (err)
                return attempt_failed(e, "%s", err);
        if (q->grpc && status == 200 && grpc_failed(q, why, sizeof(why)))
                return answer_failed(e, q, why);
        if (status != 200) {
                body_error(q, msg, sizeof(msg));
                snprintf(why, sizeof(why), "HTTP %ld: %s", status, msg);
                return answer_failed(e, q, why);
        }
        body = http_req_body(q->h);
        len = body ? http_req_body_len(q->h) : 0;
        /* One list is bounded: an etcd (or something posing as one) that answers
         * "more" for ever, or pages that never end, is an endpoint that failed. */
        if (q->kind == REQ_RANGE && body &&
            (++e->list_pages > ETCD_MAX_PAGES || (e->list_bytes += len) > ETCD_MAX_LIST_BYTES))
                return attempt_failed(e, "the list did not end after %u pages (%zu MiB): the answers say \"more\" "
                                         "past the caps of %u pages and %u MiB",
                                      e->list_pages, e->list_bytes >> 20, ETCD_MAX_PAGES, ETCD_MAX_LIST_BYTES >> 20);
        if (q->kind == REQ_AUTH) {
                r = q->grpc ? etcd_grpc_parse_auth(body, len, &e->token, why, sizeof(why))
                            : etcd_parse_auth(body, len, &e->token, why, sizeof(why));
                req_free(e->list);
                e->list = NULL;
                if (r < 0)
                        return attempt_failed(e, "%s", r == -ENOMEM ? strerror(ENOMEM) : why);
                if (send_range(e) < 0)
                        attempt_failed(e, "%s", strerror(ENOMEM));
                return;
        }
        /* The body is the request's: read before the request goes. */
        r = q->grpc ? etcd_grpc_parse_range(body, len, &page, why, sizeof(why))
                    : etcd_parse_range(body, len, &page, why, sizeof(why));
        req_free(e->list);
        e->list = NULL;
        if (r < 0)
                return attempt_failed(e, "%s", r == -ENOMEM ? strerror(ENOMEM) : why);
        range_done(e, &page);
        etcd_range_clear(&page);
}

/* The watches of this round are over (what: "watch stream broke from EP", ...; in
 * short, after the endpoint: "ended", "timed out"; why):
 * list again, at once after watches that had stayed up a while, else after the next
 * back-off step (jittered, capped): a watch that fails right away, over and over, must
 * not become a full list every few milliseconds from every node. The line saying so is
 * logged at most once a minute, with how many it stood for. */
static void watches_over(struct etcd *e, const char *what, const char *brief, const char *why)
{
        uint64_t now = loop_now(e), delay = http_failover_down(&e->fo, now);
        unsigned suppressed = 0;
        char later[64] = "";

        if (delay)
                snprintf(later, sizeof(later), " in %.1f s", (double)delay / 1e6);
        if (http_failover_log(&e->fo, now, &suppressed)) {
                char more[96] = "";

                if (suppressed)
                        snprintf(more, sizeof(more), " (and %u more times since the last report)", suppressed);
                log_notice("etcd: %s (%s); listing again%s%s", what, why, later, more);
        } else
                log_debug("etcd: watch from %s %s (%s); listing again%s", e->endpoint, brief, why, later);
        cancel_all(e);
        if (!delay)
                return start_round(e);
        e->state = ST_WAITING;
        sd_event_source_set_time(e->retry, now + delay);
        sd_event_source_set_enabled(e->retry, SD_EVENT_ONESHOT);
}

/* A watch ended. */
static void watch_done(struct etcd *e, struct req *q)
{
        const char *err = http_req_error(q->h);
        char why[512], what[600];

        if (q->compacted)
                snprintf(why, sizeof(why), "%s", err ? err : "compacted");
        else if (!err && http_req_status(q->h) != 200)
                body_error(q, why, sizeof(why));
        else
                snprintf(why, sizeof(why), "%s", err ? err : "the stream ended");
        snprintf(what, sizeof(what), "watch %sfrom %s", q->compacted ? "" : "stream broke ", e->endpoint);
        watches_over(e, what, "ended", why);
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

/* A watch of this round was not confirmed in time (an endpoint that took the
 * connection and went silent), or a confirmed one has said nothing, not even a progress
 * notification, for silence_usec. */
static int on_watch_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct etcd *e = userdata;
        size_t silent = 0, q;
        char why[200], what[600];

        (void)s;
        (void)usec;
        if (all_created(e)) {
                q = quietest(e);
                if (loop_now(e) < e->watch[q]->heard + e->silence_usec) {
                        arm_silence(e);
                        return 0;
                }
                snprintf(why, sizeof(why), "no message on the watch of %s in %llu s, not even a progress notification",
                         etcd_prefixes[q], (unsigned long long)(e->silence_usec / 1000000));
                snprintf(what, sizeof(what), "watch from %s went silent", e->endpoint);
                watches_over(e, what, "went silent", why);
                return 0;
        }
        for (size_t i = 0; i < ETCD_N_PREFIXES; i++)
                silent += !e->watch[i] || !e->watch[i]->created;
        snprintf(why, sizeof(why), "%zu of %d watches not confirmed by etcd in %llu s", silent, ETCD_N_PREFIXES,
                 WATCH_CREATED_USEC / 1000000);
        snprintf(what, sizeof(what), "watch from %s timed out", e->endpoint);
        watches_over(e, what, "timed out", why);
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
            (r = (e->gateway_only = calloc(conf->n_endpoints, sizeof(bool))) ? 0 : -ENOMEM) < 0 ||
            (r = sd_event_add_time(ev, &e->retry, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_retry, e)) < 0 ||
            (r = sd_event_add_time(ev, &e->watch_timer, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_watch_timer, e)) <
                    0) {
                etcd_free(e);
                return r < 0 ? r : -ENOMEM;
        }
        e->fo = (struct http_failover){ .n = conf->n_endpoints, .min_usec = RETRY_MIN_USEC, .max_usec = RETRY_MAX_USEC };
        e->silence_usec = watch_silence();
        sd_event_source_set_enabled(e->retry, SD_EVENT_OFF);
        sd_event_source_set_enabled(e->watch_timer, SD_EVENT_OFF);
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
        sd_event_source_disable_unref(e->watch_timer);
        sd_event_unref(e->ev);
        etcd_cache_clear(&e->building);
        etcd_cache_clear(&e->cache);
        pending_clear(e);
        free(e->page_key);
        free(e->token);
        free(e->gateway_only);
        free(e->last_key);
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

void etcd_input_name(const void *ctx, uint32_t input, char *buf, size_t size)
{
        const struct etcd *e = ctx;

        etcd_cache_name(e->state == ST_LISTING ? &e->building : &e->cache, input, buf, size);
}

size_t etcd_n_keys(const struct etcd *e)
{
        return e->sink ? e->n_sunk : etcd_cache_n(&e->cache);
}

struct etcd_cache *etcd_cache(struct etcd *e)
{
        return &e->cache;
}

int etcd_list_once(const struct cfg_etcd *conf, uint64_t timeout_usec, const struct etcd_sink *sink,
                   struct etcd **ret, char *why, size_t why_size)
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
        e->sink = sink;
        /* One list, one model: the JSON of an IPAMBlock need not outlive its reading. */
        e->compact = !sink;
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
        int r;

        if (e->pending_lost || !e->has_data)
                return -EAGAIN;
        v = malloc((e->n_pending ? e->n_pending : 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        if (e->n_pending > 1)
                qsort(e->pending, e->n_pending, sizeof(*e->pending), str_cmp);
        for (size_t i = 0; i < e->n_pending; i++) {
                struct cfg_kv kv;

                if (n && streq(v[n - 1].key, e->pending[i]))
                        continue;
                /* A key that is gone comes with its number too: the model may still have it. */
                if ((r = etcd_cache_get(&e->cache, e->pending[i], &kv)) < 0) {
                        free(v);
                        return r;
                }
                kv.key = e->pending[i];
                v[n++] = kv;
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
