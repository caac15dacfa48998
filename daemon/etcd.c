/* The etcd v3 client (etcd.h): list, then watch, over etcd's JSON gateway.
 *
 * Owns: one curl multi handle whose sockets and timer are sd-event sources (curl's
 * multi socket API: curl says which descriptors to poll and when to wake it; nothing
 * ever blocks and nothing polls while idle), made with the first round, which loads
 * libcurl (every curl call goes through cu_curl, curl-dl.h); the requests in flight,
 * the key→value cache and the retry policy. Must never: touch the host, build the
 * model, or decide what a change means; it tells the loop through etcd_ops.
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

#include "curl-dl.h"
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
#define CONNECT_TIMEOUT_MS 3000L
#define REQUEST_TIMEOUT_MS 60000L
/* A silent peer (a partition, a host that died) is noticed through TCP keepalive. */
#define KEEPALIVE_IDLE_S 10L
#define KEEPALIVE_INTVL_S 5L

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

/* ---- the cache: open addressing, linear probing, deletion by backward shift ---- */

struct kv {
        char *key;   /* NUL-terminated (a key holding NUL is refused) */
        char *value; /* NUL-terminated too, value_len bytes before it */
        size_t value_len;
        int64_t mod_revision;
};

struct kvmap {
        struct kv **slots;
        size_t size, n;
};

static void kv_free(struct kv *kv)
{
        if (!kv)
                return;
        free(kv->key);
        free(kv->value);
        free(kv);
}

static void kvmap_clear(struct kvmap *m)
{
        for (size_t i = 0; i < m->size; i++)
                kv_free(m->slots[i]);
        free(m->slots);
        *m = (struct kvmap){};
}

static size_t kvmap_slot(const struct kvmap *m, const char *key)
{
        size_t i = str_hash(key) & (m->size - 1);

        while (m->slots[i] && !streq(m->slots[i]->key, key))
                i = (i + 1) & (m->size - 1);
        return i;
}

static int kvmap_grow(struct kvmap *m)
{
        struct kvmap bigger = { .size = m->size ? m->size * 2 : 1024 };

        bigger.slots = calloc(bigger.size, sizeof(*bigger.slots));
        if (!bigger.slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->size; i++)
                if (m->slots[i])
                        bigger.slots[kvmap_slot(&bigger, m->slots[i]->key)] = m->slots[i];
        bigger.n = m->n;
        free(m->slots);
        *m = bigger;
        return 0;
}

/* Takes kv (also on failure). */
static int kvmap_put(struct kvmap *m, struct kv *kv)
{
        size_t i;
        int r;

        if ((m->n + 1) * 2 > m->size && (r = kvmap_grow(m)) < 0) {
                kv_free(kv);
                return r;
        }
        i = kvmap_slot(m, kv->key);
        if (m->slots[i])
                kv_free(m->slots[i]);
        else {
                if (m->n >= ETCD_MAX_KEYS) {
                        kv_free(kv);
                        return -E2BIG;
                }
                m->n++;
        }
        m->slots[i] = kv;
        return 0;
}

static void kvmap_del(struct kvmap *m, const char *key)
{
        size_t i, j, mask = m->size - 1;

        if (!m->size || !m->slots[i = kvmap_slot(m, key)])
                return;
        kv_free(m->slots[i]);
        m->slots[i] = NULL;
        m->n--;
        /* Move back every entry after the hole that the hole would cut off from its
         * home slot, so lookups never stop early. */
        for (j = (i + 1) & mask; m->slots[j]; j = (j + 1) & mask) {
                size_t home = str_hash(m->slots[j]->key) & mask;

                if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
                        m->slots[i] = m->slots[j];
                        m->slots[j] = NULL;
                        i = j;
                }
        }
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
        size_t prefix; /* REQ_RANGE, REQ_WATCH: index into etcd_prefixes */
        CURL *h;
        struct curl_slist *headers;
        char *buf; /* the body (auth, range), or an error body (watch) */
        size_t len, cap;
        json_tokener *tok;     /* watch: the stream */
        size_t msg_bytes;      /* watch: bytes of the message being parsed */
        bool created;          /* watch: etcd confirmed it */
        bool compacted;        /* watch: asked for a compacted revision */
        char fail[256];        /* why our write callback stopped the transfer */
        char error[CURL_ERROR_SIZE];
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
        bool own_ev;
        CURLM *multi;
        sd_event_source *curl_timer, *retry, *deadline;
        sd_event_source **io; /* every socket source, for etcd_free() */
        size_t n_io, cap_io;
        struct cfg_etcd conf;
        const struct etcd_ops *ops;
        void *userdata;
        bool once;
        enum state state;
        size_t ep;           /* the endpoint in use */
        size_t tries;        /* endpoints tried in this round */
        char why[2048];      /* this round's failures, one per endpoint */
        uint64_t retry_usec; /* the last delay; 0 after a success */
        char *token;         /* etcd authentication */
        /* listing */
        struct req *list;
        struct kvmap building;
        size_t list_prefix;
        char *page_key; /* where the next page starts (binary: the last key and a NUL) */
        size_t page_key_len;
        int64_t list_revision;
        unsigned list_restarts; /* a page's revision compacted mid-list: starts over */
        /* watching */
        struct req *watch[ETCD_N_PREFIXES];
        /* the data */
        struct kvmap cache;
        bool has_data;
        int64_t revision;
        char endpoint[512];
};

static void start_round(struct etcd *e);
static int multi_start(struct etcd *e);
static void attempt_failed(struct etcd *e, const char *fmt, ...) _printf_(2, 3);

static void req_free(struct req *q)
{
        if (!q)
                return;
        if (q->h) {
                cu_curl->multi_remove_handle(q->e->multi, q->h);
                cu_curl->easy_cleanup(q->h);
        }
        cu_curl->slist_free_all(q->headers);
        if (q->tok)
                json_tokener_free(q->tok);
        free(q->buf);
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

static int buf_append(struct req *q, const char *data, size_t n, size_t max)
{
        if (q->len + n + 1 > max)
                return -E2BIG;
        if (GROW(q->buf, q->cap, q->len + n + 1) < 0)
                return -ENOMEM;
        memcpy(q->buf + q->len, data, n);
        q->len += n;
        q->buf[q->len] = '\0';
        return 0;
}

static void watch_message(struct req *q, json_object *msg);

static long response_code(const struct req *q)
{
        long code = 0;

        cu_curl->easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &code);
        return code;
}

/* Feed the stream to the tokener: each complete object is one watch response. */
static size_t watch_write(struct req *q, const char *data, size_t n)
{
        while (n && !q->fail[0]) {
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
                        snprintf(q->fail, sizeof(q->fail), "bad JSON in the watch stream: %s",
                                 json_tokener_error_desc(err));
                else if (q->msg_bytes > ETCD_MAX_MESSAGE)
                        snprintf(q->fail, sizeof(q->fail), "a watch message over %u MiB", ETCD_MAX_MESSAGE >> 20);
        }
        return q->fail[0] ? 0 : 1;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct req *q = userdata;
        size_t n = size * nmemb;
        int r;

        if (q->kind == REQ_WATCH && response_code(q) == 200)
                return watch_write(q, data, n) ? n : 0;
        r = buf_append(q, data, n, q->kind == REQ_WATCH ? 65536 : ETCD_MAX_BODY);
        if (r < 0) {
                snprintf(q->fail, sizeof(q->fail), "%s", r == -E2BIG ? "the response is too large" : strerror(-r));
                return 0;
        }
        return n;
}

static void set_tls(CURL *h, const struct cfg_etcd *c)
{
        if (c->ca_file)
                cu_curl->easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        if (c->ca_pem) {
                struct curl_blob b = { c->ca_pem, strlen(c->ca_pem), CURL_BLOB_COPY };

                cu_curl->easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
        }
        if (c->cert_file)
                cu_curl->easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
        if (c->cert_pem) {
                struct curl_blob b = { c->cert_pem, strlen(c->cert_pem), CURL_BLOB_COPY };

                cu_curl->easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
                cu_curl->easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        }
        if (c->key_file)
                cu_curl->easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
        if (c->key_pem) {
                struct curl_blob b = { c->key_pem, strlen(c->key_pem), CURL_BLOB_COPY };

                cu_curl->easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
                cu_curl->easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        }
}

/* A POST of a JSON body to the endpoint in use. */
static int req_new(struct etcd *e, enum req_kind kind, const char *path, json_object *body, struct req **ret)
{
        _cleanup_(freep) char *url = NULL, *auth = NULL;
        struct req *q = calloc(1, sizeof(*q));
        CURLMcode mr;

        if (!q)
                return -ENOMEM;
        q->e = e;
        q->kind = kind;
        if (asprintf(&url, "%s%s", e->conf.endpoints[e->ep], path) < 0 || !(q->h = cu_curl->easy_init()) ||
            !(q->headers = cu_curl->slist_append(NULL, "Content-Type: application/json")) ||
            (e->token && (asprintf(&auth, "Authorization: %s", e->token) < 0 ||
                          !(q->headers = cu_curl->slist_append(q->headers, auth)))) ||
            (kind == REQ_WATCH && !(q->tok = json_tokener_new()))) {
                req_free(q);
                return -ENOMEM;
        }
        cu_curl->easy_setopt(q->h, CURLOPT_URL, url);
        cu_curl->easy_setopt(q->h, CURLOPT_PROTOCOLS_STR, "http,https");
        cu_curl->easy_setopt(q->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        cu_curl->easy_setopt(q->h, CURLOPT_NOSIGNAL, 1L);
        /* etcd is cluster-internal: a proxy from the environment is not for it. */
        cu_curl->easy_setopt(q->h, CURLOPT_NOPROXY, "*");
        cu_curl->easy_setopt(q->h, CURLOPT_HTTPHEADER, q->headers);
        cu_curl->easy_setopt(q->h, CURLOPT_COPYPOSTFIELDS,
                             json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
        cu_curl->easy_setopt(q->h, CURLOPT_WRITEFUNCTION, on_write);
        cu_curl->easy_setopt(q->h, CURLOPT_WRITEDATA, q);
        cu_curl->easy_setopt(q->h, CURLOPT_PRIVATE, q);
        cu_curl->easy_setopt(q->h, CURLOPT_ERRORBUFFER, q->error);
        cu_curl->easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        if (kind != REQ_WATCH)
                cu_curl->easy_setopt(q->h, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
        cu_curl->easy_setopt(q->h, CURLOPT_TCP_KEEPALIVE, 1L);
        cu_curl->easy_setopt(q->h, CURLOPT_TCP_KEEPIDLE, KEEPALIVE_IDLE_S);
        cu_curl->easy_setopt(q->h, CURLOPT_TCP_KEEPINTVL, KEEPALIVE_INTVL_S);
        set_tls(q->h, &e->conf);
        mr = cu_curl->multi_add_handle(e->multi, q->h);
        if (mr != CURLM_OK) {
                cu_curl->easy_cleanup(q->h);
                q->h = NULL;
                req_free(q);
                return -EIO;
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
        json_object *o = q->buf ? json_tokener_parse(q->buf) : NULL;
        json_object *err = jget(o, "error");
        const char *msg = jstr(jget(o, "message"));

        if (!msg)
                msg = jstr(err) ? jstr(err) : jstr(jget(err, "message"));
        if (msg)
                snprintf(buf, size, "%s", msg);
        else
                snprintf(buf, size, "%.200s", q->buf ? q->buf : "no body");
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
        free(e->token);
        e->token = NULL;
        e->state = ST_LISTING;
        log_debug("etcd: listing from %s", e->conf.endpoints[e->ep]);
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

static uint64_t jittered(uint64_t usec)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* 80-120%: enough spread for a fleet; no need for a better random source. */
        return usec * (80 + (uint64_t)(ts.tv_nsec / 1000) % 41) / 100;
}

static void round_failed(struct etcd *e)
{
        uint64_t now;

        cancel_all(e);
        if (e->once)
                return once_failed(e);
        e->retry_usec = e->retry_usec ? e->retry_usec * 2 : RETRY_MIN_USEC;
        if (e->retry_usec > RETRY_MAX_USEC)
                e->retry_usec = RETRY_MAX_USEC;
        e->state = ST_WAITING;
        sd_event_now(e->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(e->retry, now + jittered(e->retry_usec));
        sd_event_source_set_enabled(e->retry, SD_EVENT_ONESHOT);
        if (e->ops && e->ops->unreachable)
                e->ops->unreachable(e, e->why, e->userdata);
}

/* This endpoint failed: the next one, or, when each had its turn, wait and retry. */
static void attempt_failed(struct etcd *e, const char *fmt, ...)
{
        size_t n = strlen(e->why);
        va_list ap;

        if (n < sizeof(e->why))
                n += (size_t)snprintf(e->why + n, sizeof(e->why) - n, "%s%s: ", n ? "; " : "",
                                      e->conf.endpoints[e->ep]);
        if (n < sizeof(e->why)) {
                va_start(ap, fmt);
                vsnprintf(e->why + n, sizeof(e->why) - n, fmt, ap);
                va_end(ap);
        }
        log_debug("etcd: %s", e->why);
        cancel_all(e);
        e->ep = (e->ep + 1) % e->conf.n_endpoints;
        if (++e->tries < e->conf.n_endpoints)
                begin_attempt(e);
        else
                round_failed(e);
}

static void list_complete(struct etcd *e)
{
        struct kvmap old = e->cache;

        e->cache = e->building;
        e->building = (struct kvmap){};
        kvmap_clear(&old);
        e->revision = e->list_revision;
        e->has_data = true;
        e->retry_usec = 0;
        snprintf(e->endpoint, sizeof(e->endpoint), "%s", e->conf.endpoints[e->ep]);
        req_free(e->list);
        e->list = NULL;
        log_debug("etcd: listed %zu keys at revision %lld from %s", e->cache.n, (long long)e->revision, e->endpoint);
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
        e->tries = 0;
        e->list_restarts = 0;
        e->why[0] = '\0';
        /* No libcurl, no endpoint to try: the round fails as a whole, why says so. */
        if (multi_start(e) < 0)
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
                snprintf(q->fail, sizeof(q->fail), "%s", r == -ENOMEM ? strerror(ENOMEM) : err);
                return;
        }
        if (del) {
                kvmap_del(&e->cache, kv->key);
                kv_free(kv);
        } else if ((r = kvmap_put(&e->cache, kv)) < 0) {
                snprintf(q->fail, sizeof(q->fail), "%s", r == -E2BIG ? "more than the cap of keys" : strerror(-r));
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

                snprintf(q->fail, sizeof(q->fail), "the watch failed: %s", why ? why : "an answer without a result");
                return;
        }
        if (compact > 0) {
                q->compacted = true;
                snprintf(q->fail, sizeof(q->fail), "revision %lld is compacted (compaction at %lld)",
                         (long long)e->revision + 1, (long long)compact);
                return;
        }
        if (json_object_get_boolean(jget(res, "canceled"))) {
                const char *reason = jstr(jget(res, "cancel_reason"));

                snprintf(q->fail, sizeof(q->fail), "etcd cancelled the watch%s%s", reason ? ": " : "",
                         reason ? reason : "");
                return;
        }
        if (json_object_get_boolean(jget(res, "created")))
                q->created = true;
        for (size_t i = 0; i < n && !q->fail[0]; i++)
                apply_event(q, json_object_array_get_idx(events, i), &changed);
        if (rev > e->revision && !q->fail[0])
                e->revision = rev;
        if (changed && e->ops && e->ops->changed)
                e->ops->changed(e, e->userdata);
}

/* ---- transfers that ended ---- */

static void list_request_done(struct etcd *e, struct req *q, CURLcode code)
{
        long status = response_code(q);
        json_object *o;
        char why[256];

        if (code != CURLE_OK)
                return attempt_failed(e, "%s",
                                      q->fail[0] ? q->fail : q->error[0] ? q->error : cu_curl->easy_strerror(code));
        if (status != 200) {
                body_error(q, why, sizeof(why));
                /* The revision of the first page was compacted before a later page was
                 * read: not the endpoint's fault; start over at the newest revision. */
                if (q->kind == REQ_RANGE && e->list_revision && strstr(why, "compacted") &&
                    e->list_restarts++ < 3) {
                        log_notice("etcd: listing from %s: %s; starting over", e->conf.endpoints[e->ep], why);
                        return begin_attempt(e);
                }
                return attempt_failed(e, "HTTP %ld: %s", status, why);
        }
        o = q->buf ? json_tokener_parse(q->buf) : NULL;
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

static void watch_done(struct etcd *e, struct req *q, CURLcode code)
{
        char why[512];

        if (q->compacted) {
                log_notice("etcd: watch from %s: %s; listing again", e->endpoint, q->fail);
                cancel_all(e);
                return start_round(e);
        }
        if (code == CURLE_OK && response_code(q) != 200)
                body_error(q, why, sizeof(why));
        else
                snprintf(why, sizeof(why), "%s",
                         q->fail[0]         ? q->fail
                         : code == CURLE_OK ? "the stream ended"
                         : q->error[0]      ? q->error
                                            : cu_curl->easy_strerror(code));
        log_notice("etcd: watch stream from %s broke (%s); listing again", e->endpoint, why);
        cancel_all(e);
        start_round(e);
}

static void process_done(struct etcd *e)
{
        CURLMsg *m;
        int left;

        /* One message at a time: handling one may remove other handles, and with them
         * their queued messages. */
        while ((m = cu_curl->multi_info_read(e->multi, &left))) {
                struct req *q = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                cu_curl->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
                if (!q)
                        continue;
                if (q->kind == REQ_WATCH)
                        watch_done(e, q, m->data.result);
                else
                        list_request_done(e, q, m->data.result);
        }
}

/* ---- curl's multi socket API on sd-event ---- */

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct etcd *e = userdata;
        int flags = 0, running;

        (void)s;
        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        cu_curl->multi_socket_action(e->multi, fd, flags, &running);
        process_done(e);
        return 0;
}

static void io_forget(struct etcd *e, sd_event_source *src)
{
        for (size_t i = 0; i < e->n_io; i++)
                if (e->io[i] == src) {
                        e->io[i] = e->io[--e->n_io];
                        return;
                }
}

static int on_socket(CURL *h, curl_socket_t fd, int what, void *userp, void *socketp)
{
        struct etcd *e = userp;
        sd_event_source *src = socketp;
        uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);

        (void)h;
        if (what == CURL_POLL_REMOVE) {
                if (src) {
                        io_forget(e, src);
                        sd_event_source_disable_unref(src);
                        cu_curl->multi_assign(e->multi, fd, NULL);
                }
                return 0;
        }
        if (src)
                return sd_event_source_set_io_events(src, events) < 0 ? -1 : 0;
        if (GROW(e->io, e->cap_io, e->n_io + 1) < 0 || sd_event_add_io(e->ev, &src, fd, events, on_io, e) < 0)
                return -1;
        e->io[e->n_io++] = src;
        cu_curl->multi_assign(e->multi, fd, src);
        return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct etcd *e = userdata;
        int running;

        (void)s;
        (void)usec;
        cu_curl->multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        process_done(e);
        return 0;
}

/* curl asks to be woken after timeout_ms (-1: never). It must not be called back from
 * here, so the timer source does it. */
static int on_timer_request(CURLM *multi, long timeout_ms, void *userp)
{
        struct etcd *e = userp;
        uint64_t now;

        (void)multi;
        if (timeout_ms < 0)
                return sd_event_source_set_enabled(e->curl_timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        sd_event_now(e->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(e->curl_timer, now + (uint64_t)timeout_ms * 1000);
        return sd_event_source_set_enabled(e->curl_timer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

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
        size_t n = strlen(e->why);

        (void)s;
        (void)usec;
        snprintf(e->why + n, sizeof(e->why) - n, "%s%s: no answer in time", n ? "; " : "", e->conf.endpoints[e->ep]);
        once_failed(e);
        return 0;
}

/* curl_global_init() once for the first client with a multi handle,
 * curl_global_cleanup() after the last (leak checkers then see OpenSSL's tables go too). */
static unsigned n_clients;

static void global_unref(void)
{
        if (n_clients && --n_clients == 0)
                cu_curl->global_cleanup();
}

/* The multi handle comes with the first round, not with etcd_new(), because that is
 * when libcurl is loaded (curl-dl.c). A load that fails fails the round as an endpoint
 * that does not answer would: why names the library, the operator reads it where
 * unreachable endpoints are reported (the journal, STATUS=, --check's "datastore
 * unreachable:"), and the retry loads again, so installing libcurl mends a running
 * daemon. On failure e->why says why. */
static int multi_start(struct etcd *e)
{
        int r;

        if (e->multi)
                return 0;
        if ((r = cu_curl_load(e->why, sizeof(e->why))) < 0)
                return r;
        if (n_clients == 0 && cu_curl->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                snprintf(e->why, sizeof(e->why), "libcurl: curl_global_init() failed");
                return -EIO;
        }
        n_clients++;
        e->multi = cu_curl->multi_init();
        if (!e->multi) {
                global_unref();
                snprintf(e->why, sizeof(e->why), "libcurl: %s", strerror(ENOMEM));
                return -ENOMEM;
        }
        cu_curl->multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        cu_curl->multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
        cu_curl->multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer_request);
        cu_curl->multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
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
        if ((r = cfg_etcd_copy(conf, &e->conf)) < 0 ||
            (r = sd_event_add_time(ev, &e->curl_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_curl_timer, e)) < 0 ||
            (r = sd_event_add_time(ev, &e->retry, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_retry, e)) < 0) {
                etcd_free(e);
                return r < 0 ? r : -ENOMEM;
        }
        sd_event_source_set_enabled(e->curl_timer, SD_EVENT_OFF);
        sd_event_source_set_enabled(e->retry, SD_EVENT_OFF);
        *ret = e;
        return 0;
}

void etcd_free(struct etcd *e)
{
        if (!e)
                return;
        cancel_all(e);
        if (e->multi) {
                cu_curl->multi_cleanup(e->multi);
                global_unref();
        }
        for (size_t i = 0; i < e->n_io; i++)
                sd_event_source_disable_unref(e->io[i]);
        free(e->io);
        sd_event_source_disable_unref(e->curl_timer);
        sd_event_source_disable_unref(e->retry);
        sd_event_source_disable_unref(e->deadline);
        sd_event_unref(e->ev);
        kvmap_clear(&e->building);
        kvmap_clear(&e->cache);
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
        return e->cache.n;
}

static int kv_cmp(const void *a, const void *b)
{
        return strcmp(((const struct cfg_kv *)a)->key, ((const struct cfg_kv *)b)->key);
}

int etcd_kvs(const struct etcd *e, struct cfg_kv **ret, size_t *ret_n)
{
        struct cfg_kv *v = malloc((e->cache.n ? e->cache.n : 1) * sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < e->cache.size; i++)
                if (e->cache.slots[i])
                        v[n++] = (struct cfg_kv){ e->cache.slots[i]->key, e->cache.slots[i]->value,
                                                  e->cache.slots[i]->value_len };
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
                snprintf(why, why_size, "%s", e->why[0] ? e->why : "no endpoint answered");
                etcd_free(e);
                return -EHOSTUNREACH;
        }
        *ret = e;
        return 0;
}
