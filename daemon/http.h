/* HTTP(S) for the datastore clients (etcd.c today, a Kubernetes API client next):
 * libcurl's multi socket API driven by an sd-event loop, so no request ever blocks
 * the loop; TLS from files or inline PEM; connect and request timeouts and TCP
 * keepalive; a body buffered with a cap, or a stream handed over piece by piece; and
 * the failover bookkeeping over several endpoints with a growing, jittered retry
 * delay. libcurl is loaded with the first http_start() (curl-dl.h), so a process that
 * never starts a client never maps it.
 *
 * It knows nothing of any datastore's protocol: URLs, bodies and what an answer means
 * are the caller's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

struct http;
struct http_req;

/* TLS material: paths or inline PEM, each NULL when absent. server_name: the name
 * to check the server's certificate against (and send as SNI) instead of the URL's
 * host, which is still the one connected to and named in the Host header (a
 * kubeconfig's tls-server-name); NULL: the URL's host. */
struct http_tls {
        const char *ca_file, *ca_pem;
        const char *cert_file, *cert_pem;
        const char *key_file, *key_pem;
        const char *server_name;
};

struct http_request {
        const char *url;
        const char *body;            /* POST this body; NULL: GET */
        size_t body_len;             /* its bytes (binary); 0: strlen(body) */
        /* HTTP/2 (gRPC): negotiated by ALPN over TLS, by prior knowledge over plain
         * HTTP; else HTTP/1.1. */
        bool http2;
        const char *const *headers;  /* "Name: value", NULL-terminated; may be NULL */
        const struct http_tls *tls;  /* may be NULL */
        /* A stream (a watch): no overall timeout but stream_timeout_ms, and a 200
         * answer's body goes to on_data as it comes instead of into the buffer. */
        bool stream;
        /* A stream's overall timeout in ms, from the start of the transfer (DNS,
         * connect and TLS included; 0: none): the transfer then fails with
         * http_req_timed_out(). Other requests have REQUEST_TIMEOUT_MS. */
        uint64_t stream_timeout_ms;
        size_t max_body;             /* cap on a buffered body */
        /* Return false to stop the transfer; http_req_fail() says why first. */
        bool (*on_data)(struct http_req *q, const char *data, size_t n, void *userdata);
        /* The transfer ended (done, failed or stopped); the callback owns q then and
         * frees it with http_req_free(). */
        void (*on_done)(struct http_req *q, void *userdata);
        void *userdata;
};

/* The caller's loop; nothing is loaded or allocated beyond the struct yet. */
int http_new(sd_event *ev, struct http **ret);
/* Every request still in flight is dropped without its on_done. */
void http_free(struct http *h);
/* Load libcurl and make the multi handle (once). On failure why says why (no
 * libcurl, ...): the caller reports it as it would report an endpoint that does not
 * answer. */
int http_start(struct http *h, char *why, size_t why_size);
/* A one-shot run that has read its datastore: libcurl and the libraries it brought are
 * unloaded when no client is left (every struct http freed); a later http_start() loads
 * them again. */
void http_unload(void);
/* Start a request (after http_start()). */
int http_send(struct http *h, const struct http_request *rq, struct http_req **ret);
/* Start what http_send() queued now (the request on its way) rather than when the
 * loop runs next: for a caller about to work a while, so that the server works
 * meanwhile. */
void http_kick(struct http *h);
/* Cancels the transfer if it still runs; accepts NULL. */
void http_req_free(struct http_req *q);

/* The HTTP status (0 before one came). */
long http_req_status(const struct http_req *q);
/* The buffered body (NUL-terminated), or NULL when none came; its bytes (binary). */
const char *http_req_body(const struct http_req *q);
size_t http_req_body_len(const struct http_req *q);
/* The value of the answer's last header (or trailer) of that name (case-insensitive),
 * or NULL. Headers past HTTP_MAX_HEADERS bytes in all are dropped. */
#define HTTP_MAX_HEADERS 16384
const char *http_req_header(const struct http_req *q, const char *name);
/* The answer came in HTTP/2. */
bool http_req_is_http2(const struct http_req *q);
/* A connection (and its TLS handshake) was made: the peer was there to answer. */
bool http_req_connected(const struct http_req *q);
/* The transfer ended in an HTTP/2 stream error (the peer reset the stream): the peer
 * speaks HTTP/2, even when no header of the answer came before the reset. */
bool http_req_stream_reset(const struct http_req *q);
/* Why the transfer failed: what the caller's callback or the cap said, else curl's
 * text; NULL when it completed (whatever its status). */
const char *http_req_error(const struct http_req *q);
/* It ended by its stream_timeout_ms (curl's CURLE_OPERATION_TIMEDOUT, nothing the
 * caller or a cap said). */
bool http_req_timed_out(const struct http_req *q);
/* From on_data: the reason the transfer is being stopped. */
void http_req_fail(struct http_req *q, const char *fmt, ...) _printf_(2, 3);
bool http_req_failed(const struct http_req *q);

/* ---- failover across endpoints, retry with back-off ---- */

#define HTTP_WHY_MAX 2048

/* A stream (a watch) counts as healthy once it stayed up this long: only then does
 * the back-off start again from min_usec (a watch that breaks at once, through a
 * broken proxy, an expired token or a message over the cap, keeps backing off). */
#define HTTP_HEALTHY_USEC (60 * 1000 * 1000ULL)
/* A repeated failure is logged at most once in this interval (the rest counted). */
#define HTTP_LOG_INTERVAL_USEC (60 * 1000 * 1000ULL)

struct http_failover {
        size_t n;            /* endpoints */
        size_t cur;          /* the one in use */
        size_t tries;        /* endpoints tried in this round */
        uint64_t retry_usec; /* the last delay; 0 after a success */
        uint64_t min_usec, max_usec;
        uint64_t up_since;   /* when the stream of the last success opened; 0 none */
        uint64_t logged_at;  /* when http_failover_log() last said yes */
        unsigned suppressed; /* failures not logged since */
        char why[HTTP_WHY_MAX]; /* this round's failures, "ENDPOINT: reason; ..." */
};

/* A new round over every endpoint, from the one in use. */
void http_failover_round(struct http_failover *f);
/* The endpoint in use failed (named in why with the reason): move to the next. True
 * when another endpoint is left to try in this round. */
bool http_failover_next(struct http_failover *f, const char *endpoint, const char *fmt, ...) _printf_(3, 4);
/* The round failed: the delay before the next one (doubling from min_usec up to
 * max_usec, each drawn from 80-120% of that so a fleet does not come back in step). */
uint64_t http_failover_backoff(struct http_failover *f);
/* A success: the next failure starts again at min_usec. */
void http_failover_ok(struct http_failover *f);
/* A success that opens a stream (a list, then its watch), at now (CLOCK_MONOTONIC):
 * the back-off is kept until the stream proves healthy (http_failover_down()). */
void http_failover_up(struct http_failover *f, uint64_t now);
/* The stream broke at now: 0 (go on at once) when it had stayed up for
 * HTTP_HEALTHY_USEC, which resets the back-off; else the next back-off delay. */
uint64_t http_failover_down(struct http_failover *f, uint64_t now);
/* Whether a repeated failure may be logged at now: the first, then at most once per
 * HTTP_LOG_INTERVAL_USEC; *ret_suppressed is how many were not logged since. */
bool http_failover_log(struct http_failover *f, uint64_t now, unsigned *ret_suppressed);
