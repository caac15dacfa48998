/* etcd's answers on its JSON gateway read into plain values: range (list) pages, the
 * watch stream and its messages, the authentication token, error bodies; and the
 * base64 etcd's keys and values travel in. Pure (json-c only, no I/O, no logging):
 * the etcd client (etcd.c) feeds it what HTTP brought, the unit tests and the fuzz
 * target (tests/fuzz-etcd.c) feed it anything. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on what the datastore controls. */
#define ETCD_MAX_VALUE (4u << 20)    /* etcd refuses values over 1.5 MiB by default */
#define ETCD_MAX_BODY (64u << 20)    /* one range response (a page of ETCD_PAGE keys) */
#define ETCD_MAX_MESSAGE (64u << 20) /* one watch message */
#define ETCD_MAX_PAGE_KVS 1000000    /* keys in one range response (the client's ETCD_MAX_KEYS) */

struct etcd_kv {
        char *key;   /* NUL-terminated (a key holding NUL is refused), never empty */
        char *value; /* NUL-terminated too, value_len bytes before it; NULL in a DELETE */
        size_t value_len;
        int64_t mod_revision;
        bool record; /* the client's (etcd.c): value replaced by cfg_kv_compact()'s record;
                      * false as read */
};

void etcd_kv_free(struct etcd_kv *kv);

/* One page of POST /v3/kv/range. */
struct etcd_range {
        int64_t revision; /* header.revision, > 0 */
        bool more;        /* a limit cut it short */
        int64_t count;    /* keys in the whole range (0 when left out) */
        struct etcd_kv **kvs;
        size_t n_kvs;
};

void etcd_range_clear(struct etcd_range *r);
/* body: len bytes (at most ETCD_MAX_BODY). -EBADMSG with err saying why (not JSON, no
 * revision, a key or value that is not base64, a value over ETCD_MAX_VALUE), -EFBIG
 * over the cap, -ENOMEM; *ret untouched on failure. */
int etcd_parse_range(const char *body, size_t len, struct etcd_range *ret, char *err, size_t err_size);

/* The token of POST /v3/auth/authenticate: 0 and a new string, -EBADMSG with err saying
 * why (not JSON, no token), -ENOMEM. */
int etcd_parse_auth(const char *body, size_t len, char **ret, char *err, size_t err_size);

/* What an answer other than 200 says: {"error": "...", "message": "...", "code": N}
 * (range) or {"error": {"message": "...", ...}} (watch), else the start of the text
 * itself, or "no body" for NULL. */
void etcd_parse_error(const char *body, size_t len, char *buf, size_t size);

/* One message of POST /v3/watch. */
enum etcd_watch_kind {
        ETCD_WATCH_EVENTS,    /* events (maybe none: "created", progress) */
        ETCD_WATCH_FAILED,    /* an "error", or no "result": why */
        ETCD_WATCH_COMPACTED, /* compact_revision: watch from a compacted revision */
        ETCD_WATCH_CANCELED,  /* canceled: why is the cancel_reason (maybe empty) */
        ETCD_WATCH_BAD,       /* an event's kv is not valid: why */
};

struct etcd_event {
        bool del;           /* DELETE, else PUT (the gateway leaves "type" out for PUT) */
        struct etcd_kv *kv; /* a DELETE's has no value */
};

struct etcd_watch_msg {
        enum etcd_watch_kind kind;
        bool created;
        int64_t revision;         /* result.header.revision (0 when left out) */
        int64_t compact_revision; /* ETCD_WATCH_COMPACTED */
        struct etcd_event *events;
        size_t n_events;
        char why[256];
};

void etcd_watch_msg_clear(struct etcd_watch_msg *m);

/* The watch stream: one JSON object after another, in pieces as HTTP delivers them. */
struct etcd_stream {
        char *buf; /* the message being read */
        size_t len, cap;
        size_t depth; /* of { and [ outside strings; 0 between messages */
        bool in_string, escape;
};

int etcd_stream_init(struct etcd_stream *s);
void etcd_stream_clear(struct etcd_stream *s);
/* Called with each complete message, in order; it may take the events (setting their
 * kv to NULL). A negative return stops the feed and is returned by it. */
typedef int (*etcd_msg_fn)(struct etcd_watch_msg *m, void *userdata);
/* Feeds n bytes (any split: a message may span calls, and means the same however it
 * is cut). 0, the callback's negative return, -EBADMSG with err saying why (bad JSON,
 * a message that is not an object, one over ETCD_MAX_MESSAGE), -ENOMEM. After a
 * failure the stream is broken: feed no more. */
int etcd_stream_feed(struct etcd_stream *s, const char *data, size_t n, etcd_msg_fn fn, void *userdata, char *err,
                     size_t err_size);

/* base64 (standard alphabet). Decoding is strict: padded, no whitespace; the result is
 * NUL-terminated (not counted in *ret_len). */
char *etcd_base64_encode(const void *data, size_t len);
int etcd_base64_decode(const char *s, char **ret, size_t *ret_len);
