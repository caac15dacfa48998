/* etcd's answers read into values (etcd-parse.h).
 *
 * Owns: what the JSON gateway's answers mean (etcd 3.4): a range page's `kvs` with base64
 * `key` and `value`, `more`, `count` and `header.revision`; the watch stream, one JSON
 * object per batch of events, each `{"result": {...}}` with `created`, `events` (an
 * event's `type` is left out for PUT), `compact_revision`, `canceled` and
 * `cancel_reason`, or `{"error": {...}}`; the token of an authentication; the message of
 * an error body. 64-bit numbers come as strings. Must never: do I/O, log, or decide what
 * an answer means for the client (etcd.c does); every size the answer controls has a
 * cap, and an answer that breaks one is refused with a reason, never trusted. */
#include "etcd-parse.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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

/* ---- JSON helpers ---- */

static json_object *jget(json_object *o, const char *key)
{
        json_object *v = NULL;

        return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A 64-bit number, which the gateway prints as a string; anything else is 0, and a
 * number past int64 saturates (strtoll, json-c). */
static int64_t jint(json_object *o)
{
        double d;

        switch (json_object_get_type(o)) {
        case json_type_string:
                return strtoll(json_object_get_string(o), NULL, 10);
        case json_type_int:
                return json_object_get_int64(o);
        case json_type_double:
                /* json-c casts a double itself, NaN included (undefined behaviour). */
                d = json_object_get_double(o);
                if (isnan(d))
                        return 0;
                if (d >= 9.2e18)
                        return INT64_MAX;
                if (d <= -9.2e18)
                        return INT64_MIN;
                return (int64_t)d;
        default:
                return 0;
        }
}

static const char *jstr(json_object *o)
{
        return json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

/* A whole answer: len bytes, one JSON value (what follows it is ignored, as
 * json_tokener_parse() does), nested at most json-c's default depth (32). NULL when it
 * is not, *ret_why saying why (NULL: out of memory). */
static json_object *parse_json(const char *body, size_t len, const char **ret_why)
{
        enum json_tokener_error e;
        json_tokener *tok;
        json_object *o;

        *ret_why = "no body";
        if (!body || len > INT_MAX)
                return NULL;
        if (!(tok = json_tokener_new())) {
                *ret_why = NULL;
                return NULL;
        }
        o = json_tokener_parse_ex(tok, body, (int)len);
        if (!o && json_tokener_get_error(tok) == json_tokener_continue)
                o = json_tokener_parse_ex(tok, "", 1); /* the end: a number at the very end completes */
        e = json_tokener_get_error(tok);
        if (e != json_tokener_success) {
                json_object_put(o);
                o = NULL;
                *ret_why = json_tokener_error_desc(e);
        }
        json_tokener_free(tok);
        return o;
}

static json_object *parse_body(const char *body, size_t len)
{
        const char *why;

        return parse_json(body, len, &why);
}

/* A revision the client may count on: positive, with room for the next one (the
 * client watches from revision + 1). */
static bool revision_ok(int64_t rev)
{
        return rev > 0 && rev < INT64_MAX;
}

/* ---- one key and value ---- */

void etcd_kv_free(struct etcd_kv *kv)
{
        if (!kv)
                return;
        free(kv->key);
        free(kv->value);
        free(kv);
}

static int kv_from_json(json_object *o, bool with_value, struct etcd_kv **ret, char *err, size_t err_size)
{
        const char *k = jstr(jget(o, "key")), *v = jstr(jget(o, "value"));
        struct etcd_kv *kv = calloc(1, sizeof(*kv));
        size_t len = 0;
        int r = 0;

        if (!kv)
                return -ENOMEM;
        if (!k || (r = etcd_base64_decode(k, &kv->key, &len)) < 0 || strlen(kv->key) != len || !len) {
                etcd_kv_free(kv);
                if (k && r == -ENOMEM)
                        return -ENOMEM;
                snprintf(err, err_size, "a key that is not base64 text");
                return -EBADMSG;
        }
        /* A missing value is an empty one (Calico's old affinities have none). */
        if (with_value && (r = etcd_base64_decode(v ? v : "", &kv->value, &kv->value_len)) < 0) {
                if (r != -ENOMEM)
                        snprintf(err, err_size, "the value of %.200s is not base64", kv->key);
                etcd_kv_free(kv);
                return r == -ENOMEM ? r : -EBADMSG;
        }
        if (kv->value_len > ETCD_MAX_VALUE) {
                snprintf(err, err_size, "the value of %.200s is over %u MiB", kv->key, ETCD_MAX_VALUE >> 20);
                etcd_kv_free(kv);
                return -EBADMSG;
        }
        kv->mod_revision = jint(jget(o, "mod_revision"));
        *ret = kv;
        return 0;
}

/* ---- range pages ---- */

void etcd_range_clear(struct etcd_range *r)
{
        for (size_t i = 0; i < r->n_kvs; i++)
                etcd_kv_free(r->kvs[i]);
        free(r->kvs);
        *r = (struct etcd_range){};
}

static int range_from_json(json_object *o, struct etcd_range *ret, char *err, size_t err_size)
{
        json_object *kvs = jget(o, "kvs");
        size_t n = json_object_is_type(kvs, json_type_array) ? json_object_array_length(kvs) : 0;
        struct etcd_range r = { .revision = jint(jget(jget(o, "header"), "revision")) };
        int k;

        if (r.revision <= 0) {
                snprintf(err, err_size, "a range response without a revision");
                return -EBADMSG;
        }
        if (!revision_ok(r.revision)) {
                snprintf(err, err_size, "a range response at revision %lld, out of range", (long long)r.revision);
                return -EBADMSG;
        }
        if (n && !(r.kvs = calloc(n, sizeof(*r.kvs))))
                return -ENOMEM;
        for (; r.n_kvs < n; r.n_kvs++)
                if ((k = kv_from_json(json_object_array_get_idx(kvs, r.n_kvs), true, &r.kvs[r.n_kvs], err,
                                      err_size)) < 0) {
                        etcd_range_clear(&r);
                        return k;
                }
        r.more = json_object_get_boolean(jget(o, "more"));
        r.count = jint(jget(o, "count"));
        *ret = r;
        return 0;
}

int etcd_parse_range(const char *body, size_t len, struct etcd_range *ret, char *err, size_t err_size)
{
        json_object *o;
        int r;

        if (len > ETCD_MAX_BODY) {
                snprintf(err, err_size, "a range response over %u MiB", ETCD_MAX_BODY >> 20);
                return -EFBIG;
        }
        if (!(o = parse_body(body, len))) {
                snprintf(err, err_size, "the answer is not JSON");
                return -EBADMSG;
        }
        r = range_from_json(o, ret, err, err_size);
        json_object_put(o);
        return r;
}

/* ---- authentication, errors ---- */

int etcd_parse_auth(const char *body, size_t len, char **ret, char *err, size_t err_size)
{
        json_object *o = parse_body(body, len);
        const char *token = jstr(jget(o, "token"));
        char *t = token ? strdup(token) : NULL;
        int r = !o || !token ? -EBADMSG : t ? 0 : -ENOMEM;

        if (!o)
                snprintf(err, err_size, "the answer is not JSON");
        else if (!token)
                snprintf(err, err_size, "authentication gave no token");
        json_object_put(o);
        if (r == 0)
                *ret = t;
        return r;
}

void etcd_parse_error(const char *body, size_t len, char *buf, size_t size)
{
        json_object *o = parse_body(body, len);
        json_object *err = jget(o, "error");
        const char *msg = jstr(jget(o, "message"));

        if (!msg)
                msg = jstr(err) ? jstr(err) : jstr(jget(err, "message"));
        if (msg)
                snprintf(buf, size, "%s", msg);
        else if (body)
                snprintf(buf, size, "%.*s", (int)(len < 200 ? len : 200), body);
        else
                snprintf(buf, size, "no body");
        json_object_put(o);
}

/* ---- watch messages ---- */

void etcd_watch_msg_clear(struct etcd_watch_msg *m)
{
        for (size_t i = 0; i < m->n_events; i++)
                etcd_kv_free(m->events[i].kv);
        free(m->events);
        m->events = NULL;
        m->n_events = 0;
}

static int events_from_json(json_object *events, struct etcd_watch_msg *m)
{
        size_t n = json_object_is_type(events, json_type_array) ? json_object_array_length(events) : 0;
        int r;

        if (n && !(m->events = calloc(n, sizeof(*m->events))))
                return -ENOMEM;
        for (; m->n_events < n; m->n_events++) {
                json_object *ev = json_object_array_get_idx(events, m->n_events);
                const char *type = jstr(jget(ev, "type"));
                struct etcd_event *e = &m->events[m->n_events];

                e->del = type && streq(type, "DELETE");
                if ((r = kv_from_json(jget(ev, "kv"), !e->del, &e->kv, m->why, sizeof(m->why))) < 0) {
                        etcd_watch_msg_clear(m);
                        if (r == -ENOMEM)
                                return r;
                        m->kind = ETCD_WATCH_BAD;
                        return 0;
                }
        }
        return 0;
}

static int watch_msg_from_json(json_object *msg, struct etcd_watch_msg *m)
{
        json_object *res = jget(msg, "result"), *err = jget(msg, "error");

        *m = (struct etcd_watch_msg){ .revision = jint(jget(jget(res, "header"), "revision")),
                                      .compact_revision = jint(jget(res, "compact_revision")) };
        if (err || !res) {
                const char *why = jstr(jget(err, "message")) ? jstr(jget(err, "message")) : jstr(err);

                m->kind = ETCD_WATCH_FAILED;
                snprintf(m->why, sizeof(m->why), "%s",
                         why && *why ? why : err ? "an error without a message" : "an answer without a result");
                return 0;
        }
        if (m->compact_revision > 0) {
                m->kind = ETCD_WATCH_COMPACTED;
                return 0;
        }
        if (json_object_get_boolean(jget(res, "canceled"))) {
                const char *reason = jstr(jget(res, "cancel_reason"));

                m->kind = ETCD_WATCH_CANCELED;
                snprintf(m->why, sizeof(m->why), "%s", reason ? reason : "");
                return 0;
        }
        if (m->revision && !revision_ok(m->revision)) {
                m->kind = ETCD_WATCH_BAD;
                snprintf(m->why, sizeof(m->why), "a watch message at revision %lld, out of range",
                         (long long)m->revision);
                return 0;
        }
        m->created = json_object_get_boolean(jget(res, "created"));
        return events_from_json(jget(res, "events"), m);
}

/* ---- the stream ---- */

/* The stream is cut into messages here, not by json-c's tokener fed piece by piece:
 * json-c reads a number split across two pieces differently from the same number in
 * one piece ("2" then "-3" is 2-3, read as 2; "2-3" in one piece is 2 followed by a
 * stray "-3"), so what a stream meant would depend on where the network cut it. Each
 * message is a JSON object: its bytes are gathered (strings and nesting followed, so
 * the closing brace is found) and parsed in one piece, the way a range answer is. */

int etcd_stream_init(struct etcd_stream *s)
{
        *s = (struct etcd_stream){};
        return 0;
}

void etcd_stream_clear(struct etcd_stream *s)
{
        free(s->buf);
        *s = (struct etcd_stream){};
}

static int stream_message(struct etcd_stream *s, etcd_msg_fn fn, void *userdata, char *err, size_t err_size)
{
        struct etcd_watch_msg m;
        const char *why;
        json_object *o = parse_json(s->buf, s->len, &why);
        int r;

        s->len = 0;
        if (!o) {
                if (!why)
                        return -ENOMEM;
                snprintf(err, err_size, "bad JSON in the watch stream: %s", why);
                return -EBADMSG;
        }
        r = watch_msg_from_json(o, &m);
        json_object_put(o);
        if (r < 0)
                return r;
        r = fn(&m, userdata);
        etcd_watch_msg_clear(&m);
        return r;
}

/* The bytes of data that belong to the message being read (up to its closing brace
 * included); *ret_done when that brace is among them. */
static size_t stream_scan(struct etcd_stream *s, const char *data, size_t n, bool *ret_done)
{
        size_t i = 0;

        *ret_done = false;
        while (i < n && !*ret_done) {
                char c = data[i++];

                if (s->in_string) {
                        if (s->escape)
                                s->escape = false;
                        else if (c == '\\')
                                s->escape = true;
                        else if (c == '"')
                                s->in_string = false;
                } else if (c == '"')
                        s->in_string = true;
                else if (c == '{' || c == '[')
                        s->depth++;
                else if (c == '}' || c == ']')
                        *ret_done = --s->depth == 0;
        }
        return i;
}

int etcd_stream_feed(struct etcd_stream *s, const char *data, size_t n, etcd_msg_fn fn, void *userdata, char *err,
                     size_t err_size)
{
        while (n) {
                size_t used;
                bool done;
                int r;

                if (!s->depth) { /* between messages */
                        if (*data && strchr(" \t\r\n", *data)) {
                                data++, n--;
                                continue;
                        }
                        if (*data != '{') {
                                snprintf(err, err_size, "bad JSON in the watch stream: a message that is not an object");
                                return -EBADMSG;
                        }
                }
                used = stream_scan(s, data, n, &done);
                if (s->len + used > ETCD_MAX_MESSAGE) {
                        snprintf(err, err_size, "a watch message over %u MiB", ETCD_MAX_MESSAGE >> 20);
                        return -EBADMSG;
                }
                if (GROW(s->buf, s->cap, s->len + used) < 0)
                        return -ENOMEM;
                memcpy(s->buf + s->len, data, used);
                s->len += used;
                data += used;
                n -= used;
                if (done && (r = stream_message(s, fn, userdata, err, err_size)) < 0)
                        return r;
        }
        return 0;
}
