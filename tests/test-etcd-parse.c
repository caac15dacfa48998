/* Unit tests for daemon/etcd-parse.c: etcd's answers as the client reads them. Real
 * answers of Debian's etcd 3.4 (captured by tests/fuzz-etcd-capture.py, trimmed) read
 * into values; range pages, tokens and error bodies; the watch stream fed whole and
 * cut at every byte; and hostile answers: wrong types, numbers past int64, bad base64,
 * keys with NUL, truncated JSON, deep nesting, a page over the 64 MiB cap, a watch
 * message over its cap. The fuzz target's findings are kept here as regressions.
 * The same for the gRPC transport (daemon/etcd-grpc.c): the requests byte for byte, a
 * real RangeResponse of etcd 3.4 (the IPPools of tests/bench/bench_change.py's cluster,
 * limit 1), and hostile messages: truncated and overlong varints, lengths past the end
 * or huge, wrong wire types, groups, unknown fields (skipped), bad framing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd-grpc.h"
#include "etcd-parse.h"

#define HDR "\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"13195394291058371180\","
/* /calico/ipam/v2/host/node1/ipv4/block/192.168.10.144-28, {"state":"confirmed"} */
#define K1 "L2NhbGljby9pcGFtL3YyL2hvc3Qvbm9kZTEvaXB2NC9ibG9jay8xOTIuMTY4LjEwLjE0NC0yOA=="
#define V1 "eyJzdGF0ZSI6ImNvbmZpcm1lZCJ9"
/* /calico/ipam/v2/host/node2/ipv4/block/192.168.10.160-28 */
#define K2 "L2NhbGljby9pcGFtL3YyL2hvc3Qvbm9kZTIvaXB2NC9ibG9jay8xOTIuMTY4LjEwLjE2MC0yOA=="

static int range(const char *body, struct etcd_range *r, char *err)
{
        err[0] = '\0';
        return etcd_parse_range(body, strlen(body), r, err, 256);
}

static void range_refused(const char *body, const char *why)
{
        struct etcd_range r = { .revision = -7 };
        char err[256];

        assert_int_equal(range(body, &r, err), -EBADMSG);
        assert_string_equal(err, why);
        assert_int_equal(r.revision, -7); /* untouched */
        assert_null(r.kvs);
}

static void range_page(void **state)
{
        static const char page[] = "{" HDR "\"revision\":\"14\",\"raft_term\":\"2\"},\"kvs\":["
                                   "{\"key\":\"" K1 "\",\"create_revision\":\"5\",\"mod_revision\":\"5\","
                                   "\"version\":\"1\",\"value\":\"" V1 "\"},"
                                   "{\"key\":\"" K2 "\",\"create_revision\":\"8\",\"mod_revision\":\"8\","
                                   "\"version\":\"1\"}],\"more\":true,\"count\":\"4\"}";
        struct etcd_range r;
        char err[256];

        (void)state;
        assert_int_equal(range(page, &r, err), 0);
        assert_int_equal(r.revision, 14);
        assert_true(r.more);
        assert_int_equal(r.count, 4);
        assert_int_equal(r.n_kvs, 2);
        assert_string_equal(r.kvs[0]->key, "/calico/ipam/v2/host/node1/ipv4/block/192.168.10.144-28");
        assert_string_equal(r.kvs[0]->value, "{\"state\":\"confirmed\"}");
        assert_int_equal(r.kvs[0]->value_len, 21);
        assert_int_equal(r.kvs[0]->mod_revision, 5);
        /* Calico's old affinities have no value: an empty one. */
        assert_string_equal(r.kvs[1]->key, "/calico/ipam/v2/host/node2/ipv4/block/192.168.10.160-28");
        assert_string_equal(r.kvs[1]->value, "");
        assert_int_equal(r.kvs[1]->value_len, 0);
        etcd_range_clear(&r);
        assert_null(r.kvs);
}

static void range_empty_and_last(void **state)
{
        struct etcd_range r;
        char err[256];

        (void)state;
        /* An empty prefix: no kvs, no count, no more. */
        assert_int_equal(range("{" HDR "\"revision\":\"14\",\"raft_term\":\"2\"}}", &r, err), 0);
        assert_int_equal(r.revision, 14);
        assert_false(r.more);
        assert_int_equal(r.count, 0);
        assert_int_equal(r.n_kvs, 0);
        etcd_range_clear(&r);
        /* A number where etcd prints a string, kvs of the wrong type (no keys). */
        assert_int_equal(range("{\"header\":{\"revision\":9},\"kvs\":{\"a\":1},\"more\":false}", &r, err), 0);
        assert_int_equal(r.revision, 9);
        assert_int_equal(r.n_kvs, 0);
        etcd_range_clear(&r);
        /* A value that is not a string is no value (as one left out): empty. */
        assert_int_equal(range("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"YWJj\",\"value\":{}}]}", &r,
                               err),
                         0);
        assert_string_equal(r.kvs[0]->key, "abc");
        assert_int_equal(r.kvs[0]->value_len, 0);
        etcd_range_clear(&r);
        /* What follows the answer is ignored (as json_tokener_parse() did). */
        assert_int_equal(range("{\"header\":{\"revision\":\"3\"}} trailing", &r, err), 0);
        etcd_range_clear(&r);
}

static void range_hostile(void **state)
{
        char deep[200] = "";

        (void)state;
        range_refused("", "the answer is not JSON");
        range_refused("{\"header\":{\"revision\":\"14\"},\"kvs\":[{\"key\":\"" K1, "the answer is not JSON");
        range_refused("<html>502 Bad Gateway</html>", "the answer is not JSON");
        for (int i = 0; i < 40; i++)
                strcat(deep, "[");
        range_refused(deep, "the answer is not JSON");
        for (int i = 0; i < 40; i++)
                strcat(deep, "]");
        range_refused(deep, "the answer is not JSON"); /* nested past json-c's 32 */
        range_refused("[1,2]", "a range response without a revision");
        range_refused("{}", "a range response without a revision");
        range_refused("{\"header\":\"14\"}", "a range response without a revision");
        range_refused("{\"header\":{\"revision\":\"abc\"}}", "a range response without a revision");
        range_refused("{\"header\":{\"revision\":\"-5\"}}", "a range response without a revision");
        range_refused("{\"header\":{\"revision\":true}}", "a range response without a revision");
        range_refused("{\"header\":{\"revision\":[14]}}", "a range response without a revision");
        range_refused("{\"header\":{\"revision\":NaN}}", "a range response without a revision");
        /* Past int64, or with no room for the next revision (the client watches from
         * revision + 1). */
        range_refused("{\"header\":{\"revision\":\"9223372036854775807\"}}",
                      "a range response at revision 9223372036854775807, out of range");
        range_refused("{\"header\":{\"revision\":\"99999999999999999999999\"}}",
                      "a range response at revision 9223372036854775807, out of range");
        range_refused("{\"header\":{\"revision\":1e400}}",
                      "a range response at revision 9223372036854775807, out of range");
        /* Keys and values. */
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[7]}", "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"value\":\"" V1 "\"}]}",
                      "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":12}]}", "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"abc\"}]}", "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"YW Jj\"}]}",
                      "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"\"}]}", "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"YQBi\"}]}", /* "a\0b" */
                      "a key that is not base64 text");
        range_refused("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"" K1 "\"},{\"key\":\"YWJj\","
                      "\"value\":\"e30\"}]}",
                      "the value of abc is not base64");
}

/* A value over ETCD_MAX_VALUE, and a page over ETCD_MAX_BODY (issue 14 point 4: one
 * etcd page is capped at 64 MiB). */
static void range_caps(void **state)
{
        size_t vlen = (ETCD_MAX_VALUE + 3) / 3 * 4 + 4, n = 0;
        const char *head = "{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"YWJj\",\"value\":\"";
        char *body = malloc(strlen(head) + vlen + 8), err[256];
        struct etcd_range r = {};

        (void)state;
        if (!body) {
                fail();
                return;
        }
        n = (size_t)sprintf(body, "%s", head);
        memset(body + n, 'A', vlen);
        strcpy(body + n + vlen, "\"}]}");
        assert_int_equal(range(body, &r, err), -EBADMSG);
        assert_string_equal(err, "the value of abc is over 4 MiB");
        /* Exactly at the cap: accepted. */
        vlen = (size_t)ETCD_MAX_VALUE / 3 * 4; /* and "AA==", one byte more */
        memset(body + n, 'A', vlen);
        strcpy(body + n + vlen, "AA==\"}]}");
        assert_int_equal(range(body, &r, err), 0);
        assert_int_equal(r.kvs[0]->value_len, ETCD_MAX_VALUE);
        etcd_range_clear(&r);
        free(body);

        body = malloc((size_t)ETCD_MAX_BODY + 2);
        if (!body) {
                fail();
                return;
        }
        n = (size_t)sprintf(body, "{\"header\":{\"revision\":\"2\"},\"x\":\"");
        memset(body + n, 'x', ETCD_MAX_BODY - n - 2);
        strcpy(body + ETCD_MAX_BODY - 2, "\"}");
        assert_int_equal(strlen(body), ETCD_MAX_BODY);
        assert_int_equal(etcd_parse_range(body, ETCD_MAX_BODY, &r, err, sizeof(err)), 0);
        etcd_range_clear(&r);
        strcpy(body + ETCD_MAX_BODY - 2, " \"}");
        r.revision = -7;
        assert_int_equal(etcd_parse_range(body, ETCD_MAX_BODY + 1, &r, err, sizeof(err)), -EFBIG);
        assert_string_equal(err, "a range response over 64 MiB");
        assert_int_equal(r.revision, -7);
        free(body);
}

static void auth_and_errors(void **state)
{
        char *token = NULL, err[256] = "", buf[256];
        const char *s;

        (void)state;
        s = "{" HDR "\"revision\":\"19\",\"raft_term\":\"2\"},\"token\":\"gxXNWRYxhLxmeGit.32\"}";
        assert_int_equal(etcd_parse_auth(s, strlen(s), &token, err, sizeof(err)), 0);
        assert_string_equal(token, "gxXNWRYxhLxmeGit.32");
        free(token);
        token = NULL;
        s = "{\"token\":42}";
        assert_int_equal(etcd_parse_auth(s, strlen(s), &token, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "authentication gave no token");
        assert_null(token);
        assert_int_equal(etcd_parse_auth("{\"tok", 5, &token, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "the answer is not JSON");
        assert_int_equal(etcd_parse_auth(NULL, 0, &token, err, sizeof(err)), -EBADMSG);
        assert_null(token);

        /* The range form, the watch form, text, nothing. */
        s = "{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"message\":\"etcdserver: mvcc: "
            "required revision has been compacted\",\"code\":11}";
        etcd_parse_error(s, strlen(s), buf, sizeof(buf));
        assert_string_equal(buf, "etcdserver: mvcc: required revision has been compacted");
        s = "{\"error\":{\"grpc_code\":3,\"http_code\":400,\"message\":\"bad create_request\"}}";
        etcd_parse_error(s, strlen(s), buf, sizeof(buf));
        assert_string_equal(buf, "bad create_request");
        s = "{\"error\":\"only this\"}";
        etcd_parse_error(s, strlen(s), buf, sizeof(buf));
        assert_string_equal(buf, "only this");
        s = "upstream connect error";
        etcd_parse_error(s, strlen(s), buf, sizeof(buf));
        assert_string_equal(buf, "upstream connect error");
        etcd_parse_error(NULL, 0, buf, sizeof(buf));
        assert_string_equal(buf, "no body");
        /* Not NUL-terminated: only len bytes are read. */
        etcd_parse_error("abcdef", 3, buf, sizeof(buf));
        assert_string_equal(buf, "abc");
        /* A small buffer: cut, terminated. */
        etcd_parse_error(s, strlen(s), buf, 5);
        assert_string_equal(buf, "upst");
}

/* ---- the watch stream ---- */

struct seen {
        size_t n;
        char log[4096];
        int stop_at; /* return -ECANCELED from this message on (0: never) */
};

static int on_msg(struct etcd_watch_msg *m, void *userdata)
{
        struct seen *s = userdata;
        size_t l = strlen(s->log);

        l += (size_t)snprintf(s->log + l, sizeof(s->log) - l, "%d%s r%lld c%lld [%s]", m->kind,
                              m->created ? " created" : "", (long long)m->revision, (long long)m->compact_revision,
                              m->why);
        for (size_t i = 0; i < m->n_events; i++) {
                l += (size_t)snprintf(s->log + l, sizeof(s->log) - l, " %s %s=%s", m->events[i].del ? "DEL" : "PUT",
                                      m->events[i].kv->key,
                                      m->events[i].kv->value ? m->events[i].kv->value : "(none)");
                /* Taken, as etcd.c takes it. */
                if (i == 0) {
                        etcd_kv_free(m->events[i].kv);
                        m->events[i].kv = NULL;
                }
        }
        snprintf(s->log + l, sizeof(s->log) - l, ";");
        s->n++;
        return s->stop_at && (int)s->n >= s->stop_at ? -ECANCELED : 0;
}

/* Feeds the stream in pieces of step bytes (0: whole); the return of the last feed. */
static int feed(const char *data, size_t step, struct seen *s, char *err)
{
        struct etcd_stream st;
        size_t n = strlen(data);
        int r = 0;

        assert_int_equal(etcd_stream_init(&st), 0);
        err[0] = '\0';
        for (size_t off = 0; off < n && r == 0; off += step ? step : n)
                r = etcd_stream_feed(&st, data + off, step && step < n - off ? step : n - off, on_msg, s, err, 256);
        etcd_stream_clear(&st);
        return r;
}

/* Whole and at every cut from 1 to 40 bytes: the same messages, the same end. */
static void stream_is(const char *data, int want_r, const char *want_err, const char *want_log)
{
        for (size_t step = 0; step <= 40; step++) {
                struct seen s = {};
                char err[256];

                assert_int_equal(feed(data, step, &s, err), want_r);
                assert_string_equal(err, want_err);
                assert_string_equal(s.log, want_log);
        }
}

#define NODES "L2NhbGljby9yZXNvdXJjZXMvdjMvcHJvamVjdGNhbGljby5vcmcvbm9kZXMv" /* .../nodes/ */

static void watch_real_stream(void **state)
{
        /* /calico/resources/v3/projectcalico.org/nodes/node5 = {} then node1 deleted,
         * then a transaction: node6 and node7 put, node2 deleted, in one message. */
        static const char stream[] =
                "{\"result\":{" HDR "\"revision\":\"14\",\"raft_term\":\"2\"},\"created\":true}}\n"
                "{\"result\":{" HDR "\"revision\":\"15\",\"raft_term\":\"2\"},\"events\":[{\"kv\":{\"key\":\"" NODES
                "bm9kZTU=\",\"create_revision\":\"15\",\"mod_revision\":\"15\",\"version\":\"1\",\"value\":\"e30=\"}}]}}\n"
                "{\"result\":{" HDR "\"revision\":\"16\",\"raft_term\":\"2\"},\"events\":[{\"type\":\"DELETE\",\"kv\":"
                "{\"key\":\"" NODES "bm9kZTE=\",\"mod_revision\":\"16\"}}]}}\n"
                "{\"result\":{" HDR "\"revision\":\"17\",\"raft_term\":\"2\"},\"events\":["
                "{\"kv\":{\"key\":\"" NODES "bm9kZTY=\",\"value\":\"eyJraW5kIjoiTm9kZSJ9\"}},"
                "{\"kv\":{\"key\":\"" NODES "bm9kZTc=\",\"value\":\"e30=\"}},"
                "{\"type\":\"DELETE\",\"kv\":{\"key\":\"" NODES "bm9kZTI=\"}}]}}\n";

        (void)state;
        stream_is(stream, 0, "",
                  "0 created r14 c0 [];"
                  "0 r15 c0 [] PUT /calico/resources/v3/projectcalico.org/nodes/node5={};"
                  "0 r16 c0 [] DEL /calico/resources/v3/projectcalico.org/nodes/node1=(none);"
                  "0 r17 c0 [] PUT /calico/resources/v3/projectcalico.org/nodes/node6={\"kind\":\"Node\"}"
                  " PUT /calico/resources/v3/projectcalico.org/nodes/node7={}"
                  " DEL /calico/resources/v3/projectcalico.org/nodes/node2=(none);");
        /* Cut short: what is complete is read, the rest waits (no error). */
        stream_is("{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}\n{\"result\":{\"hea", 0, "",
                  "0 created r3 c0 [];");
}

static void watch_progress(void **state)
{
        /* etcd 3.4.23 through its gateway, a watch with progress_notify and
         * --experimental-watch-progress-notify-interval 1s, nothing written: created, then
         * a notification a second, each a header alone (no events, no watch_id). Each is
         * a message (the daemon's silence timer counts it) that changes nothing. */
        (void)state;
        stream_is("{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
                  "\"10276657743932975437\",\"revision\":\"1\",\"raft_term\":\"2\"},\"created\":true}}\n"
                  "{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
                  "\"10276657743932975437\",\"revision\":\"1\",\"raft_term\":\"2\"}}}\n"
                  "{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
                  "\"10276657743932975437\",\"revision\":\"7\",\"raft_term\":\"2\"}}}\n",
                  0, "", "0 created r1 c0 [];0 r1 c0 [];0 r7 c0 [];");
}

static void watch_ends(void **state)
{
        (void)state;
        /* A watch from a compacted revision, as etcd 3.4 answers it. */
        stream_is("{\"result\":{" HDR "\"revision\":\"19\",\"raft_term\":\"2\"},\"created\":true}}\n"
                  "{\"result\":{" HDR "\"raft_term\":\"2\"},\"canceled\":true,\"compact_revision\":\"19\"}}\n",
                  0, "", "0 created r19 c0 [];2 r0 c19 [];");
        stream_is("{\"result\":{\"canceled\":true,\"cancel_reason\":\"permission denied\"}}", 0, "",
                  "3 r0 c0 [permission denied];");
        stream_is("{\"result\":{\"canceled\":true}}", 0, "", "3 r0 c0 [];");
        stream_is("{\"error\":{\"grpc_code\":16,\"message\":\"etcdserver: invalid auth token\"}}", 0, "",
                  "1 r0 c0 [etcdserver: invalid auth token];");
        stream_is("{\"error\":\"plain\"}", 0, "", "1 r0 c0 [plain];");
        stream_is("{\"header\":{}}", 0, "", "1 r0 c0 [an answer without a result];");
        stream_is("{\"result\":[]}", 0, "", "0 r0 c0 [];");
}

static void watch_hostile(void **state)
{
        char deep[200] = "{\"result\":";

        (void)state;
        /* A bad kv: the whole message is refused, none of its events kept. */
        stream_is("{\"result\":{\"events\":[{\"kv\":{\"key\":\"YWJj\",\"value\":\"e30=\"}},{\"kv\":{\"key\":\"!\"}}]}}",
                  0, "", "4 r0 c0 [a key that is not base64 text];");
        stream_is("{\"result\":{\"events\":[{\"kv\":{\"key\":\"YWJj\",\"value\":\"%%%%\"}}]}}", 0, "",
                  "4 r0 c0 [the value of abc is not base64];");
        stream_is("{\"result\":{\"events\":[{\"type\":\"DELETE\"}]}}", 0, "", "4 r0 c0 [a key that is not base64 text];");
        stream_is("{\"result\":{\"header\":{\"revision\":\"9223372036854775807\"}}}", 0, "",
                  "4 r9223372036854775807 c0 [a watch message at revision 9223372036854775807, out of range];");
        stream_is("{\"result\":{\"header\":{\"revision\":\"-2\"}}}", 0, "",
                  "4 r-2 c0 [a watch message at revision -2, out of range];");
        /* An unknown type is a PUT (the gateway leaves PUT's out). */
        stream_is("{\"result\":{\"events\":[{\"type\":\"XYZ\",\"kv\":{\"key\":\"YWJj\"}}]}}", 0, "",
                  "0 r0 c0 [] PUT abc=;");
        /* Broken JSON, whatever the cut. */
        stream_is("{\"result\":{\"created\":tru}}", -EBADMSG, "bad JSON in the watch stream: boolean expected",
                  "");
        stream_is("{\"result\":{\"created\":true}]\n", -EBADMSG,
                  "bad JSON in the watch stream: object value separator ',' expected", "");
        stream_is("{}\n}", -EBADMSG, "bad JSON in the watch stream: a message that is not an object",
                  "1 r0 c0 [an answer without a result];");
        for (int i = 0; i < 40; i++)
                strcat(deep, "[");
        for (int i = 0; i < 40; i++)
                strcat(deep, "]");
        strcat(deep, "}");
        stream_is(deep, -EBADMSG, "bad JSON in the watch stream: nesting too deep", "");
        /* Braces and quotes inside strings do not end a message. */
        stream_is("{\"result\":{\"cancel_reason\":\"}{\\\"]\",\"canceled\":1}}", 0, "", "3 r0 c0 [}{\"]];");
}

/* The fuzz target's findings (tests/fuzz-etcd.c, whole against cut streams). */
static void watch_fuzz_regressions(void **state)
{
        (void)state;
        /* json-c read "223" then "-72033709" (two pieces) as one number and "223-72033709"
         * (one piece) as two, and the stream skipped the piece after a number that ended
         * at its start: a message is now an object, gathered whole before it is parsed. */
        stream_is("223-72033709d\"", -EBADMSG, "bad JSON in the watch stream: a message that is not an object", "");
        stream_is("\n\"fappd\"2crea\"", -EBADMSG, "bad JSON in the watch stream: a message that is not an object",
                  "");
        stream_is("{\"result\":{\"header\":{\"revision\":223-7}}}", -EBADMSG,
                  "bad JSON in the watch stream: number expected", "");
        /* An error whose message is empty (a NUL first) still says something. */
        stream_is("{\"error\":\"\\u0000etcdserver: user name is empty\",\"code\":3}", 0, "",
                  "1 r0 c0 [an error without a message];");
}

static void watch_stop_and_cap(void **state)
{
        struct seen s = { .stop_at = 2 };
        struct etcd_stream st;
        char err[256] = "", *big;
        size_t n;
        int r = 0;

        (void)state;
        /* The callback stops the feed: its return, no later message. */
        assert_int_equal(feed("{\"result\":{}}{\"result\":{}}{\"result\":{}}", 0, &s, err), -ECANCELED);
        assert_int_equal(s.n, 2);

        /* One message over ETCD_MAX_MESSAGE, in 1 MiB pieces: refused at the cap. */
        big = malloc(1 << 20);
        if (!big) {
                fail();
                return;
        }
        memset(big, 'x', 1 << 20);
        memcpy(big, "{\"result\":{\"x\":\"", 16);
        assert_int_equal(etcd_stream_init(&st), 0);
        for (n = 0; r == 0 && n <= ETCD_MAX_MESSAGE; n += 1 << 20) {
                r = etcd_stream_feed(&st, big, 1 << 20, on_msg, &s, err, sizeof(err));
                memset(big, 'x', 16);
        }
        assert_int_equal(r, -EBADMSG);
        assert_int_equal(n, (size_t)ETCD_MAX_MESSAGE + (1 << 20));
        assert_string_equal(err, "a watch message over 64 MiB");
        etcd_stream_clear(&st);
        free(big);
}

/* ---- gRPC (etcd-grpc.c) ---- */

/* etcd 3.4's answer to Range(ippools/, limit 1): header (revision 212), one kv, more,
 * count 2. */
static const char grpc_real[] =
"\x00\x00\x00\x01\xc3\x0a\x1a\x08\x96\xaf\x87\x9d\x9f\x8d\xe8\xa2\x1c\x10\xec\xd4\x81\xee\xa0"
"\xa6\xdd\x8f\xb7\x01\x18\xd4\x01 \x02\x12\xa0\x03\x0a>/calico/resources/v3/projectcalico.or"
"g/ippools/overlay-default\x10\x02\x18\x02 \x01*\xd7\x02{\x22kind\x22:\x22IPPool\x22,\x22" "api"
"Version\x22:\x22projectcalico.org/v3\x22,\x22metadata\x22:{\x22" "creationTimestamp\x22:\x22" "20"
"24-03-01T10:00:00Z\x22,\x22name\x22:\x22overlay-default\x22,\x22uid\x22:\x22" "0000000f-0b7e-1"
"1ea-8d71-52540045a0c1\x22},\x22spec\x22:{\x22" "cidr\x22:\x22" "10.128.0.0/9\x22,\x22" "blockSize\x22"
":26,\x22ipipMode\x22:\x22" "Always\x22,\x22vxlanMode\x22:\x22Never\x22,\x22natOutgoing\x22:tru"
"e,\x22nodeSelector\x22:\x22" "all()\x22,\x22" "allowedUses\x22:[\x22Workload\x22,\x22Tunnel\x22]}"
"}\x18\x01 \x02";

/* A gRPC frame around a protobuf message of n bytes. */
static size_t frame(char *buf, const char *msg, size_t n)
{
        buf[0] = 0;
        buf[1] = (char)(n >> 24);
        buf[2] = (char)(n >> 16);
        buf[3] = (char)(n >> 8);
        buf[4] = (char)n;
        memmove(buf + 5, msg, n);
        return n + 5;
}

static int grpc_range(const char *msg, size_t n, struct etcd_range *r, char *err)
{
        char buf[4096];

        assert_true(n + 5 <= sizeof(buf));
        err[0] = '\0';
        return etcd_grpc_parse_range(buf, frame(buf, msg, n), r, err, 256);
}

#define GRPC_RANGE(lit, r, err) grpc_range(lit, sizeof(lit) - 1, r, err)

static void grpc_refused(const char *msg, size_t n, const char *why)
{
        struct etcd_range r = { .revision = -7 };
        char err[256];

        assert_int_equal(grpc_range(msg, n, &r, err), -EBADMSG);
        assert_string_equal(err, why);
        assert_int_equal(r.revision, -7); /* untouched */
}

#define GRPC_REFUSED(lit, why) grpc_refused(lit, sizeof(lit) - 1, why)
/* A header at revision 5, then the rest. */
#define H5 "\x0a\x02\x18\x05"

static void grpc_real_answer(void **state)
{
        struct etcd_range r = {};
        char err[256] = "";

        (void)state;
        assert_int_equal(etcd_grpc_parse_range(grpc_real, sizeof(grpc_real) - 1, &r, err, sizeof(err)), 0);
        assert_int_equal(r.revision, 212);
        assert_true(r.more);
        assert_int_equal(r.count, 2);
        assert_int_equal(r.n_kvs, 1);
        assert_string_equal(r.kvs[0]->key, "/calico/resources/v3/projectcalico.org/ippools/overlay-default");
        assert_int_equal(r.kvs[0]->mod_revision, 2);
        assert_int_equal(r.kvs[0]->value_len, strlen(r.kvs[0]->value));
        assert_true(strncmp(r.kvs[0]->value, "{\"kind\":\"IPPool\",", 17) == 0);
        assert_true(strstr(r.kvs[0]->value, "\"allowedUses\":[\"Workload\",\"Tunnel\"]}}") != NULL);
        etcd_range_clear(&r);
}

static void grpc_requests(void **state)
{
        char *m = NULL;
        size_t n = 0;

        (void)state;
        /* key 1, range_end 2, limit 3 (2000: d0 0f), revision 4 */
        assert_int_equal(etcd_grpc_range_request("a/", 2, "a0", 2, 2000, 300, &m, &n), 0);
        assert_int_equal(n, 5 + 14);
        assert_memory_equal(m, "\x00\x00\x00\x00\x0e\x0a\x02" "a/\x12\x02" "a0\x18\xd0\x0f\x20\xac\x02", n);
        free(m);
        /* Binary keys (a page key ends in NUL), no limit, no revision: left out. */
        assert_int_equal(etcd_grpc_range_request("k\0", 2, "l", 1, 0, 0, &m, &n), 0);
        assert_memory_equal(m, "\x00\x00\x00\x00\x07\x0a\x02k\x00\x12\x01l", n);
        free(m);
        assert_int_equal(etcd_grpc_auth_request("root", "pw", &m, &n), 0);
        assert_memory_equal(m, "\x00\x00\x00\x00\x0a\x0a\x04root\x12\x02pw", n);
        free(m);
}

static void grpc_values(void **state)
{
        struct etcd_range r = {};
        char err[256];

        (void)state;
        /* Unknown fields of every wire type are skipped, in the response, the header and
         * a kv; a missing value is an empty one; the last more/count wins. */
        assert_int_equal(GRPC_RANGE("\x28\x01\x31" "12345678\x3d" "1234\x42\x03xyz"
                                    "\x0a\x0d\x08\x01\x11" "12345678\x18\x09"
                                    "\x12\x0a\x0a\x01k\x30\x07\x3a\x03" "abc"
                                    "\x12\x08\x0a\x01l\x2a\x01v\x18\x04"
                                    "\x18\x01\x18\x00\x20\x09",
                                    &r, err),
                         0);
        assert_int_equal(r.revision, 9);
        assert_false(r.more);
        assert_int_equal(r.count, 9);
        assert_int_equal(r.n_kvs, 2);
        assert_string_equal(r.kvs[0]->key, "k");
        assert_string_equal(r.kvs[0]->value, "");
        assert_int_equal(r.kvs[0]->value_len, 0);
        assert_string_equal(r.kvs[1]->value, "v");
        assert_int_equal(r.kvs[1]->mod_revision, 4);
        etcd_range_clear(&r);
        /* An empty page. */
        assert_int_equal(GRPC_RANGE(H5, &r, err), 0);
        assert_int_equal(r.revision, 5);
        assert_int_equal(r.n_kvs, 0);
        assert_null(r.kvs);
        etcd_range_clear(&r);
}

static void grpc_hostile(void **state)
{
        struct etcd_range r = { .revision = -7 };
        char buf[64], err[256], *big;
        size_t n;

        (void)state;
        GRPC_REFUSED("", "a range response without a revision");
        GRPC_REFUSED("\x12\x03\x0a\x01k", "a range response without a revision");
        GRPC_REFUSED("\x0a\x0b\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "a range response at a revision out of range");
        GRPC_REFUSED("\x0a\x0a\x18\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "a range response at a revision out of range");
        /* varints */
        GRPC_REFUSED("\x18", "a truncated varint");
        GRPC_REFUSED("\x18\x80", "a truncated varint");
        GRPC_REFUSED("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", "a varint over 64 bits");
        GRPC_REFUSED("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", "a varint over 64 bits");
        GRPC_REFUSED("\x80", "a truncated varint");
        /* lengths */
        GRPC_REFUSED(H5 "\x12\x05" "ab", "field 2 is longer than the message");
        GRPC_REFUSED(H5 "\x12\xff\xff\xff\xff\x0f" "ab", "field 2 is longer than the message");
        GRPC_REFUSED(H5 "\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "field 2 is longer than the message");
        GRPC_REFUSED(H5 "\x12\x04\x0a\x05" "abc", "field 1 is longer than the message");
        GRPC_REFUSED(H5 "\x31" "1234567", "a truncated field 6");
        GRPC_REFUSED(H5 "\x3d" "123", "a truncated field 7");
        /* wire types */
        GRPC_REFUSED("\x08\x05", "header (field 1) has wire type 0, not 2");
        GRPC_REFUSED(H5 "\x10\x01", "kvs (field 2) has wire type 0, not 2");
        GRPC_REFUSED(H5 "\x1a\x01\x01", "more (field 3) has wire type 2, not 0");
        GRPC_REFUSED(H5 "\x25" "1234", "count (field 4) has wire type 5, not 0");
        GRPC_REFUSED("\x0a\x02\x1a\x00", "header.revision (field 3) has wire type 2, not 0");
        GRPC_REFUSED(H5 "\x12\x02\x08\x01", "a key (field 1) has wire type 0, not 2");
        GRPC_REFUSED(H5 "\x12\x05\x0a\x01k\x28\x01", "a value (field 5) has wire type 0, not 2");
        GRPC_REFUSED(H5 "\x12\x05\x0a\x01k\x1a\x00", "a mod_revision (field 3) has wire type 2, not 0");
        GRPC_REFUSED(H5 "\x2b\x2c", "field 5 has wire type 3 (a group or none)");
        GRPC_REFUSED(H5 "\x2c", "field 5 has wire type 4 (a group or none)");
        GRPC_REFUSED(H5 "\x2e", "field 5 has wire type 6 (a group or none)");
        GRPC_REFUSED(H5 "\x07", "a field number out of range");
        GRPC_REFUSED(H5 "\x80\x80\x80\x80\x10", "a field number out of range");
        /* keys */
        GRPC_REFUSED(H5 "\x12\x00", "a key that is empty or holds NUL");
        GRPC_REFUSED(H5 "\x12\x02\x0a\x00", "a key that is empty or holds NUL");
        GRPC_REFUSED(H5 "\x12\x04\x0a\x02k\x00", "a key that is empty or holds NUL");

        /* framing */
        for (n = 0; n < 5; n++) {
                assert_int_equal(etcd_grpc_parse_range("\0\0\0\0\0", n, &r, err, sizeof(err)), -EBADMSG);
                assert_string_equal(err, "an answer shorter than gRPC's message prefix");
        }
        assert_int_equal(etcd_grpc_parse_range(NULL, 0, &r, err, sizeof(err)), -EBADMSG);
        memcpy(buf, "\x01\x00\x00\x00\x04" H5, 9);
        assert_int_equal(etcd_grpc_parse_range(buf, 9, &r, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "a compressed message (none was asked for)");
        buf[0] = 2;
        assert_int_equal(etcd_grpc_parse_range(buf, 9, &r, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "a message prefix with flags 0x2");
        buf[0] = 0;
        assert_int_equal(etcd_grpc_parse_range(buf, 8, &r, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "a message of 4 bytes in an answer of 3");
        memcpy(buf + 9, "\0\0\0\0\0", 5); /* a second message: a unary answer has one */
        assert_int_equal(etcd_grpc_parse_range(buf, 14, &r, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "a message of 4 bytes in an answer of 9");
        memcpy(buf, "\x00\x04\x00\x00\x01", 5);
        assert_int_equal(etcd_grpc_parse_range(buf, 9, &r, err, sizeof(err)), -EFBIG);
        assert_string_equal(err, "a message of 67108865 bytes, over the cap of 64 MiB");
        assert_int_equal(r.revision, -7);

        /* A value over ETCD_MAX_VALUE, in a message within the cap. */
        n = ETCD_MAX_VALUE + 1;
        big = malloc(n + 64);
        if (!big) {
                fail();
                return;
        }
        memset(big, 'x', n + 64);
        memcpy(big + 5, H5 "\x12\x89\x80\x80\x02\x0a\x01k\x2a\x81\x80\x80", 16);
        big[21] = 2;
        assert_int_equal(etcd_grpc_parse_range(big, frame(big, big + 5, 17 + n), &r, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "the value of k is over 4 MiB");
        /* ...and exactly at it, accepted. */
        memcpy(big + 5, H5 "\x12\x88\x80\x80\x02\x0a\x01k\x2a\x80\x80\x80", 16);
        big[21] = 2;
        assert_int_equal(etcd_grpc_parse_range(big, frame(big, big + 5, 17 + n - 1), &r, err, sizeof(err)), 0);
        assert_int_equal(r.kvs[0]->value_len, ETCD_MAX_VALUE);
        assert_int_equal(r.kvs[0]->value[ETCD_MAX_VALUE], '\0');
        etcd_range_clear(&r);
        free(big);
}

static void grpc_auth_and_message(void **state)
{
        char buf[64], *token = NULL, err[256], msg[64];

        (void)state;
        assert_int_equal(etcd_grpc_parse_auth(buf, frame(buf, H5 "\x12\x05tok.1\x18\x01", 13), &token, err, sizeof(err)), 0);
        assert_string_equal(token, "tok.1");
        free(token);
        token = NULL;
        assert_int_equal(etcd_grpc_parse_auth(buf, frame(buf, H5, 4), &token, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "authentication gave no token");
        /* A token that would split the header it goes back in. */
        assert_int_equal(etcd_grpc_parse_auth(buf, frame(buf, "\x12\x03" "a\nb", 5), &token, err, sizeof(err)),
                         -EBADMSG);
        assert_int_equal(etcd_grpc_parse_auth(buf, frame(buf, "\x10\x01", 2), &token, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "token (field 2) has wire type 0, not 2");
        assert_null(token);

        etcd_grpc_message("etcdserver%3A mvcc%3A required revision has been compacted", msg, sizeof(msg));
        assert_string_equal(msg, "etcdserver: mvcc: required revision has been compacted");
        etcd_grpc_message("a%0Ab\x01%zz%4", msg, sizeof(msg));
        assert_string_equal(msg, "a?b?%zz%4");
        etcd_grpc_message(NULL, msg, sizeof(msg));
        assert_string_equal(msg, "");
        etcd_grpc_message("0123456789", msg, 4);
        assert_string_equal(msg, "012");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(range_page),
                cmocka_unit_test(range_empty_and_last),
                cmocka_unit_test(range_hostile),
                cmocka_unit_test(range_caps),
                cmocka_unit_test(auth_and_errors),
                cmocka_unit_test(watch_real_stream),
                cmocka_unit_test(watch_progress), cmocka_unit_test(watch_ends),
                cmocka_unit_test(watch_hostile),
                cmocka_unit_test(watch_fuzz_regressions),
                cmocka_unit_test(watch_stop_and_cap),
                cmocka_unit_test(grpc_real_answer),
                cmocka_unit_test(grpc_requests),
                cmocka_unit_test(grpc_values),
                cmocka_unit_test(grpc_hostile),
                cmocka_unit_test(grpc_auth_and_message),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
