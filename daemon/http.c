/* The HTTP transport of the datastore clients (http.h).
 *
 * Owns: one curl multi handle whose sockets and timer are sd-event sources (curl's
 * multi socket API: curl says which descriptors to poll and when to wake it; nothing
 * ever blocks and nothing polls while idle), made by http_start(), which loads libcurl
 * (every curl call goes through cu_curl, curl-dl.h); each request's easy handle,
 * headers, TLS options, timeouts and buffered body; the failover bookkeeping. Must
 * never: parse a body, know a datastore's URLs, or log: the client above decides
 * what an answer means and what the operator hears. */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "curl-dl.h"

#define CONNECT_TIMEOUT_MS 3000L
/* A stream (a watch) goes to the endpoint whose list has just answered, and starts
 * while the loop runs the pass that list set off: its TLS handshake is only read once
 * that pass returns, and curl counts the wait. A pass of seconds (100k blocks on a
 * busy node) then failed every watch as "SSL connection timeout" and turned the
 * daemon into a loop of lists. An endpoint that died since is still noticed, here or
 * by TCP keepalive; a dead one in a list is left after CONNECT_TIMEOUT_MS. */
#define STREAM_CONNECT_TIMEOUT_MS 30000L
#define REQUEST_TIMEOUT_MS 60000L
/* A silent peer (a partition, a host that died) is noticed through TCP keepalive. */
#define KEEPALIVE_IDLE_S 10L
#define KEEPALIVE_INTVL_S 5L
/* The body of an answer that is not a 200 on a stream: an error text. */
#define STREAM_ERROR_BODY_MAX 65536

struct http {
        sd_event *ev;
        CURLM *multi;
        sd_event_source *timer;
        sd_event_source **io; /* every socket source, for http_free() */
        size_t n_io, cap_io;
};

struct http_req {
        struct http *h;
        CURL *easy;
        struct curl_slist *headers;
        struct curl_slist *connect_to; /* tls->server_name: where to connect instead */
        bool stream;
        size_t max_body;
        bool (*on_data)(struct http_req *q, const char *data, size_t n, void *userdata);
        void (*on_done)(struct http_req *q, void *userdata);
        void *userdata;
        char *buf; /* the body (or a stream's error body) */
        size_t len, cap;
        char *hdrs; /* the answer's header and trailer lines, "name: value\0" each */
        size_t hdrs_len, hdrs_cap;
        CURLcode result;
        bool done;
        char fail[256]; /* why the caller or the cap stopped the transfer */
        char error[CURL_ERROR_SIZE];
};

/* ---- requests ---- */

void http_req_free(struct http_req *q)
{
        if (!q)
                return;
        if (q->easy) {
                cu_curl->multi_remove_handle(q->h->multi, q->easy);
                cu_curl->easy_cleanup(q->easy);
        }
        if (q->headers)
                cu_curl->slist_free_all(q->headers);
        if (q->connect_to)
                cu_curl->slist_free_all(q->connect_to);
        free(q->buf);
        free(q->hdrs);
        free(q);
}

long http_req_status(const struct http_req *q)
{
        long code = 0;

        if (q->easy)
                cu_curl->easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &code);
        return code;
}

const char *http_req_body(const struct http_req *q)
{
        return q->buf;
}

size_t http_req_body_len(const struct http_req *q)
{
        return q->len;
}

const char *http_req_header(const struct http_req *q, const char *name)
{
        size_t nl = strlen(name);
        const char *found = NULL;

        for (size_t off = 0; off < q->hdrs_len; off += strlen(q->hdrs + off) + 1) {
                const char *l = q->hdrs + off;

                if (strncasecmp(l, name, nl) == 0 && l[nl] == ':')
                        found = l + nl + 1 + strspn(l + nl + 1, " \t");
        }
        return found;
}

bool http_req_is_http2(const struct http_req *q)
{
        long v = 0;

        if (q->easy)
                cu_curl->easy_getinfo(q->easy, CURLINFO_HTTP_VERSION, &v);
        return v == CURL_HTTP_VERSION_2_0;
}

bool http_req_connected(const struct http_req *q)
{
        curl_off_t app = 0, tcp = 0;

        if (q->easy) {
                cu_curl->easy_getinfo(q->easy, CURLINFO_CONNECT_TIME_T, &tcp);
                cu_curl->easy_getinfo(q->easy, CURLINFO_APPCONNECT_TIME_T, &app);
        }
        return tcp > 0 || app > 0;
}

bool http_req_stream_reset(const struct http_req *q)
{
        return q->done && q->result == CURLE_HTTP2_STREAM;
}

const char *http_req_error(const struct http_req *q)
{
        if (q->fail[0])
                return q->fail;
        if (!q->done || q->result == CURLE_OK)
                return NULL;
        return q->error[0] ? q->error : cu_curl->easy_strerror(q->result);
}

void http_req_fail(struct http_req *q, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(q->fail, sizeof(q->fail), fmt, ap);
        va_end(ap);
}

bool http_req_timed_out(const struct http_req *q)
{
        return q->done && !q->fail[0] && q->result == CURLE_OPERATION_TIMEDOUT;
}

bool http_req_failed(const struct http_req *q)
{
        return q->fail[0];
}

static int buf_append(struct http_req *q, const char *data, size_t n, size_t max)
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

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct http_req *q = userdata;
        size_t n = size * nmemb;
        int r;

        if (q->stream && http_req_status(q) == 200)
                return q->on_data(q, data, n, q->userdata) && !q->fail[0] ? n : 0;
        r = buf_append(q, data, n, q->stream ? STREAM_ERROR_BODY_MAX : q->max_body);
        if (r < 0) {
                http_req_fail(q, "%s", r == -E2BIG ? "the response is too large" : strerror(-r));
                return 0;
        }
        return n;
}

/* Each header line (trailers too: curl hands them over the same way after the body),
 * kept without its line end; a status line starts the answer's headers afresh (a 100
 * Continue before the real answer). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct http_req *q = userdata;
        size_t n = size * nmemb, len = n;

        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                len--;
        if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                q->hdrs_len = 0;
                return n;
        }
        if (!len || memchr(data, '\0', len) || q->hdrs_len + len + 1 > HTTP_MAX_HEADERS)
                return n;
        if (GROW(q->hdrs, q->hdrs_cap, q->hdrs_len + len + 1) < 0)
                return n; /* dropped: http_req_header() says it is not there */
        memcpy(q->hdrs + q->hdrs_len, data, len);
        q->hdrs[q->hdrs_len + len] = '\0';
        q->hdrs_len += len + 1;
        return n;
}

static void set_blob(CURL *h, CURLoption opt, const char *pem)
{
        struct curl_blob b = { (void *)pem, strlen(pem), CURL_BLOB_COPY };

        cu_curl->easy_setopt(h, opt, &b);
}

static void set_tls(CURL *h, const struct http_tls *t)
{
        if (!t)
                return;
        if (t->ca_file)
                cu_curl->easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
        if (t->ca_pem)
                set_blob(h, CURLOPT_CAINFO_BLOB, t->ca_pem);
        if (t->cert_file)
                cu_curl->easy_setopt(h, CURLOPT_SSLCERT, t->cert_file);
        if (t->cert_pem) {
                set_blob(h, CURLOPT_SSLCERT_BLOB, t->cert_pem);
                cu_curl->easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        }
        if (t->key_file)
                cu_curl->easy_setopt(h, CURLOPT_SSLKEY, t->key_file);
        if (t->key_pem) {
                set_blob(h, CURLOPT_SSLKEY_BLOB, t->key_pem);
                cu_curl->easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        }
}

/* An https URL for server name instead of its host (so that curl sends it as SNI and
 * checks the certificate against it), the CURLOPT_CONNECT_TO entry that still connects
 * to the URL's host and port, and the Host header that names them (as Go's client
 * does with tls.Config.ServerName). -EINVAL for a URL this cannot rewrite. */
static int server_name_url(const char *url, const char *name, char **ret_url, char **ret_connect_to,
                           char **ret_host)
{
        const char *auth, *port = "443", *close;
        size_t auth_len, host_len;
        bool v6 = strchr(name, ':') != NULL;

        if (strncasecmp(url, "https://", 8) != 0 || !*name || strpbrk(name, "[]/@ "))
                return -EINVAL;
        auth = url + 8;
        auth_len = strcspn(auth, "/?#");
        if (!auth_len || memchr(auth, '@', auth_len))
                return -EINVAL;
        if (auth[0] == '[') {
                if (!(close = memchr(auth, ']', auth_len)))
                        return -EINVAL;
                host_len = (size_t)(close - auth) + 1;
        } else
                host_len = strcspn(auth, ":/?#");
        if (host_len < auth_len) {
                if (auth[host_len] != ':' || host_len + 1 == auth_len)
                        return -EINVAL;
                port = auth + host_len + 1;
        }
        int port_len = host_len < auth_len ? (int)(auth_len - host_len - 1) : 3;

        if (port_len > 5)
                return -EINVAL;
        if (asprintf(ret_url, "https://%s%s%s:%.*s%s", v6 ? "[" : "", name, v6 ? "]" : "", port_len, port,
                     auth + auth_len) < 0)
                return -ENOMEM;
        if (asprintf(ret_connect_to, "%s%s%s:%.*s:%.*s:%.*s", v6 ? "[" : "", name, v6 ? "]" : "", port_len, port,
                     (int)host_len, auth, port_len, port) < 0) {
                free(*ret_url);
                return -ENOMEM;
        }
        if (asprintf(ret_host, "Host: %.*s", (int)auth_len, auth) < 0) {
                free(*ret_url);
                free(*ret_connect_to);
                return -ENOMEM;
        }
        return 0;
}

static int append_header(struct curl_slist **list, const char *s)
{
        struct curl_slist *l = cu_curl->slist_append(*list, s);

        if (!l)
                return -ENOMEM;
        *list = l;
        return 0;
}

/* tls->server_name applied: the URL, the Host header and where to connect. */
static int apply_server_name(struct http_req *q, const struct http_request *rq)
{
        _cleanup_(freep) char *url = NULL, *connect_to = NULL, *host = NULL;
        int r;

        if ((r = server_name_url(rq->url, rq->tls->server_name, &url, &connect_to, &host)) < 0)
                return r;
        if ((r = append_header(&q->headers, host)) < 0 || (r = append_header(&q->connect_to, connect_to)) < 0)
                return r;
        cu_curl->easy_setopt(q->easy, CURLOPT_URL, url); /* copied */
        cu_curl->easy_setopt(q->easy, CURLOPT_CONNECT_TO, q->connect_to);
        return 0;
}

static void set_options(struct http_req *q, const struct http_request *rq)
{
        CURL *h = q->easy;

        cu_curl->easy_setopt(h, CURLOPT_URL, rq->url);
        cu_curl->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        /* gRPC over plain HTTP speaks HTTP/2 from the first byte (no Upgrade). */
        cu_curl->easy_setopt(h, CURLOPT_HTTP_VERSION,
                             !rq->http2                              ? (long)CURL_HTTP_VERSION_1_1
                             : strncasecmp(rq->url, "https:", 6) == 0 ? (long)CURL_HTTP_VERSION_2TLS
                                                                      : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        cu_curl->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        /* Datastores are cluster-internal: a proxy from the environment is not for them. */
        cu_curl->easy_setopt(h, CURLOPT_NOPROXY, "*");
        cu_curl->easy_setopt(h, CURLOPT_HTTPHEADER, q->headers);
        if (rq->body) {
                /* The size first: COPYPOSTFIELDS copies that many bytes. */
                cu_curl->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                     (curl_off_t)(rq->body_len ? rq->body_len : strlen(rq->body)));
                cu_curl->easy_setopt(h, CURLOPT_COPYPOSTFIELDS, rq->body);
        }
        /* HTTP/2 by prior knowledge gets one connection a request: a second request on
         * the connection of a first went unanswered with libcurl 7.88 and etcd 3.4
         * ("Error in the HTTP2 framing layer"; curl's own tool does the same), where
         * ALPN over TLS reuses it fine. A list costs a connection a page. */
        if (rq->http2 && strncasecmp(rq->url, "https:", 6) != 0) {
                cu_curl->easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
                cu_curl->easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
        }
        cu_curl->easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        cu_curl->easy_setopt(h, CURLOPT_HEADERDATA, q);
        cu_curl->easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        cu_curl->easy_setopt(h, CURLOPT_WRITEDATA, q);
        cu_curl->easy_setopt(h, CURLOPT_PRIVATE, q);
        cu_curl->easy_setopt(h, CURLOPT_ERRORBUFFER, q->error);
        cu_curl->easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rq->stream ? STREAM_CONNECT_TIMEOUT_MS : CONNECT_TIMEOUT_MS);
        if (!rq->stream)
                cu_curl->easy_setopt(h, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
        else if (rq->stream_timeout_ms)
                cu_curl->easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)rq->stream_timeout_ms);
        cu_curl->easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        cu_curl->easy_setopt(h, CURLOPT_TCP_KEEPIDLE, KEEPALIVE_IDLE_S);
        cu_curl->easy_setopt(h, CURLOPT_TCP_KEEPINTVL, KEEPALIVE_INTVL_S);
        set_tls(h, rq->tls);
}

int http_send(struct http *h, const struct http_request *rq, struct http_req **ret)
{
        struct http_req *q;
        int r;

        if (!h->multi || (rq->stream && !rq->on_data))
                return -EINVAL;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        *q = (struct http_req){ .h = h, .stream = rq->stream, .max_body = rq->max_body, .on_data = rq->on_data,
                                .on_done = rq->on_done, .userdata = rq->userdata };
        if (!(q->easy = cu_curl->easy_init())) {
                free(q);
                return -ENOMEM;
        }
        for (const char *const *hd = rq->headers; hd && *hd; hd++)
                if (append_header(&q->headers, *hd) < 0) {
                        http_req_free(q);
                        return -ENOMEM;
                }
        set_options(q, rq);
        if (rq->tls && rq->tls->server_name && (r = apply_server_name(q, rq)) < 0) {
                http_req_free(q);
                return r;
        }
        if (cu_curl->multi_add_handle(h->multi, q->easy) != CURLM_OK) {
                cu_curl->easy_cleanup(q->easy);
                q->easy = NULL;
                http_req_free(q);
                return -EIO;
        }
        *ret = q;
        return 0;
}

/* ---- curl's multi socket API on sd-event ---- */

static void process_done(struct http *h)
{
        CURLMsg *m;
        int left;

        /* One message at a time: handling one may remove other handles, and with them
         * their queued messages. */
        while ((m = cu_curl->multi_info_read(h->multi, &left))) {
                struct http_req *q = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                cu_curl->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
                if (!q)
                        continue;
                q->done = true;
                q->result = m->data.result;
                if (q->on_done)
                        q->on_done(q, q->userdata);
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct http *h = userdata;
        int flags = 0, running;

        (void)s;
        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        cu_curl->multi_socket_action(h->multi, fd, flags, &running);
        process_done(h);
        return 0;
}

static void io_forget(struct http *h, sd_event_source *src)
{
        for (size_t i = 0; i < h->n_io; i++)
                if (h->io[i] == src) {
                        h->io[i] = h->io[--h->n_io];
                        return;
                }
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
        struct http *h = userp;
        sd_event_source *src = socketp;
        uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);

        (void)easy;
        if (what == CURL_POLL_REMOVE) {
                if (src) {
                        io_forget(h, src);
                        sd_event_source_disable_unref(src);
                        cu_curl->multi_assign(h->multi, fd, NULL);
                }
                return 0;
        }
        if (src)
                return sd_event_source_set_io_events(src, events) < 0 ? -1 : 0;
        if (GROW(h->io, h->cap_io, h->n_io + 1) < 0 || sd_event_add_io(h->ev, &src, fd, events, on_io, h) < 0)
                return -1;
        h->io[h->n_io++] = src;
        cu_curl->multi_assign(h->multi, fd, src);
        return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct http *h = userdata;
        int running;

        (void)s;
        (void)usec;
        cu_curl->multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        process_done(h);
        return 0;
}

void http_kick(struct http *h)
{
        int running;

        /* What ended meanwhile is handed over when the loop runs next (the timer curl
         * asks for, or a socket): never from inside the caller's own callback. */
        if (h->multi)
                cu_curl->multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* curl asks to be woken after timeout_ms (-1: never). It must not be called back from
 * here, so the timer source does it. */
static int on_timer_request(CURLM *multi, long timeout_ms, void *userp)
{
        struct http *h = userp;
        uint64_t now;

        (void)multi;
        if (timeout_ms < 0)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        sd_event_now(h->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(h->timer, now + (uint64_t)timeout_ms * 1000);
        return sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

/* curl_global_init() once for the first client with a multi handle,
 * curl_global_cleanup() after the last (leak checkers then see OpenSSL's tables go too). */
static unsigned n_clients;

static void global_unref(void)
{
        if (n_clients && --n_clients == 0)
                cu_curl->global_cleanup();
}

void http_unload(void)
{
        if (n_clients == 0)
                cu_curl_unload();
}

int http_new(sd_event *ev, struct http **ret)
{
        struct http *h = calloc(1, sizeof(*h));
        int r;

        if (!h)
                return -ENOMEM;
        h->ev = sd_event_ref(ev);
        r = sd_event_add_time(ev, &h->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_curl_timer, h);
        if (r < 0) {
                http_free(h);
                return r;
        }
        sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        *ret = h;
        return 0;
}

/* The multi handle comes with the first start, not with http_new(), because that is
 * when libcurl is loaded (curl-dl.c). A load that fails fails as an endpoint that does
 * not answer would: why names the library, and the next start loads again, so
 * installing libcurl mends a running daemon. */
int http_start(struct http *h, char *why, size_t why_size)
{
        int r;

        if (h->multi)
                return 0;
        if ((r = cu_curl_load(why, why_size)) < 0)
                return r;
        if (n_clients == 0 && cu_curl->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                snprintf(why, why_size, "libcurl: curl_global_init() failed");
                return -EIO;
        }
        n_clients++;
        h->multi = cu_curl->multi_init();
        if (!h->multi) {
                global_unref();
                snprintf(why, why_size, "libcurl: %s", strerror(ENOMEM));
                return -ENOMEM;
        }
        cu_curl->multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        cu_curl->multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        cu_curl->multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_request);
        cu_curl->multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
        return 0;
}

void http_free(struct http *h)
{
        if (!h)
                return;
        if (h->multi) {
                cu_curl->multi_cleanup(h->multi);
                global_unref();
        }
        for (size_t i = 0; i < h->n_io; i++)
                sd_event_source_disable_unref(h->io[i]);
        free(h->io);
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->ev);
        free(h);
}

/* ---- failover ---- */

void http_failover_round(struct http_failover *f)
{
        f->tries = 0;
        f->why[0] = '\0';
}

bool http_failover_next(struct http_failover *f, const char *endpoint, const char *fmt, ...)
{
        size_t n = strlen(f->why);
        va_list ap;

        if (n < sizeof(f->why))
                n += (size_t)snprintf(f->why + n, sizeof(f->why) - n, "%s%s: ", n ? "; " : "", endpoint);
        if (n < sizeof(f->why)) {
                va_start(ap, fmt);
                vsnprintf(f->why + n, sizeof(f->why) - n, fmt, ap);
                va_end(ap);
        }
        f->cur = f->n ? (f->cur + 1) % f->n : 0;
        return ++f->tries < f->n;
}

static uint64_t jittered(uint64_t usec)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* 80-120%: enough spread for a fleet; no need for a better random source. */
        return usec * (80 + (uint64_t)(ts.tv_nsec / 1000) % 41) / 100;
}

uint64_t http_failover_backoff(struct http_failover *f)
{
        f->retry_usec = f->retry_usec ? f->retry_usec * 2 : f->min_usec;
        if (f->retry_usec > f->max_usec)
                f->retry_usec = f->max_usec;
        return jittered(f->retry_usec);
}

void http_failover_ok(struct http_failover *f)
{
        f->retry_usec = 0;
}

void http_failover_up(struct http_failover *f, uint64_t now)
{
        f->up_since = now ? now : 1;
}

uint64_t http_failover_down(struct http_failover *f, uint64_t now)
{
        bool healthy = f->up_since && now >= f->up_since + HTTP_HEALTHY_USEC;

        f->up_since = 0;
        if (healthy) {
                f->retry_usec = 0;
                f->suppressed = 0;
                f->logged_at = 0;
                return 0;
        }
        return http_failover_backoff(f);
}

bool http_failover_log(struct http_failover *f, uint64_t now, unsigned *ret_suppressed)
{
        if (f->logged_at && now < f->logged_at + HTTP_LOG_INTERVAL_USEC) {
                f->suppressed++;
                return false;
        }
        *ret_suppressed = f->suppressed;
        f->suppressed = 0;
        f->logged_at = now ? now : 1;
        return true;
}
