/* Unit tests for the plain-JSON and plain-YAML readers of config/yamltree.c: every
 * document read through them gives what libyaml gives (tests/ydoc-diff.h): the same
 * tree, positions, quoting, diagnostics and result, for the JSON etcd and the Kubernetes
 * API hand the loader (compact, pretty-printed, Calico's values), for the block YAML
 * kubectl and calicoctl print (every fixture), and for everything they leave to libyaml
 * (escapes, UTF-8, tabs, long or multi-line keys, deep nesting, bad syntax). Which
 * reader took a YAML stream is seen from the reads: the plain reader asks for 64 KiB
 * at a time, libyaml for 16 KiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "ydoc-diff.h"

static void same(const char *doc, size_t len, unsigned flags)
{
        char *a = NULL, *b = NULL;

        if (ydiff(doc, len, flags, &a, &b) < 0) {
                print_error("document: %.*s\nplain JSON:\n%s\nlibyaml:\n%s\n", (int)(len < 300 ? len : 300), doc, a, b);
                free(a);
                free(b);
                fail();
        }
}

#define SAME(lit) same(lit, sizeof(lit) - 1, 0)

static void json_values(void **state)
{
        (void)state;
        SAME("{\"a\":1}");
        SAME("{}");
        SAME("[]");
        SAME("[{}, [], [[]], {\"a\": {}}]");
        SAME("{\"a\": \"b\", \"c\": [1, 2.5, -3e+2, 0, -0, 1E9, 0.25e-3, true, false, null, \"x\"]}");
        SAME("  \n {\"a\" : {\"b\" : [ 1 , 2 ] } }  \n\n");
        SAME("{\n  \"kind\": \"IPPool\",\n  \"spec\": {\n    \"cidr\": \"10.0.0.0/16\",\n    \"natOutgoing\": true\n  }\n}\n");
        SAME("{\"cidr\":\"10.0.0.0/26\",\"affinity\":\"host:node-0001\",\"strictAffinity\":false,"
             "\"allocations\":[0,1,null,null],\"unallocated\":[2,3],\"attributes\":[{\"handle_id\":"
             "\"k8s-pod-network.c0ffee\",\"secondary\":{\"namespace\":\"default\",\"node\":\"node-0001\","
             "\"pod\":\"app-000001\"}}],\"deleted\":false}");
        SAME("{\"state\":\"confirmed\",\"deleted\":false}");
        SAME("{\"a\":\"text with # and: colons, [brackets] {braces} 'quotes'\", \"\":\"\", \"sp\":\"  x  \"}");
        SAME("{\"true\":true,\"null\":null,\"1\":1,\"~\":\"~\",\"y\":\"yes\"}");
        /* Errors the builder gives: the same, at the same place. */
        SAME("{\"a\":1,\"b\":2,\"a\":3}");
        SAME("[{\"x\":1},\n {\"y\":2,\n  \"y\":3}]");
}

static void json_left_to_libyaml(void **state)
{
        (void)state;
        SAME("{\"a\":\"b\\\"c\"}");
        SAME("{\"a\":\"\\u00e9\\n\\t\\/\"}");
        SAME("{\"a\":\"\xc3\xa9\"}");
        SAME("{\"a\":\t1}");
        SAME("{\"a\":1}\r\n");
        SAME("{\"a\"\n:1}");
        SAME("{\"a\":1,}");
        SAME("[1,,2]");
        SAME("{\"a\":01}");
        SAME("{\"a\":1.}");
        SAME("{\"a\":-}");
        SAME("{\"a\":tru}");
        SAME("{\"a\":truex}");
        SAME("{\"a\":1}{");
        SAME("{\"a\":1} x");
        SAME("{\"a\":1}\n---\n{\"b\":2}");
        SAME("{\"a\"}");
        SAME("{,}");
        SAME("{\"a\":[1 2]}");
        SAME("{1:2}");
        SAME("{\"a\":1 \"b\":2}");
        SAME("\"x\"");
        SAME("1");
        SAME("");
        SAME("   \n");
        SAME("# comment\n{\"a\":1}");
        SAME("{\"a\":1} # comment");
        SAME("{\"a\": [\"x\", {\"b\": \"c\"}] ");
        same("{\"a\":\"x\0y\"}", 11, 0);
        /* A builder error (a duplicate key) followed by what libyaml's scanner stops at
         * while it looks past the closing brace: libyaml reports the latter (found by
         * fuzz-etcdkv), and a later escape does not change the builder's error. */
        SAME("{\"a\": {\"b\":1, \"b\":2} @}");
        SAME("{\"a\": {\"b\":1, \"b\":2}\t}");
        SAME("{\"a\": {\"b\":1, \"b\":2}, \"c\": `x`}");
        SAME("[{\"b\":1,\"b\":2}, \"\\u00e9\"]");
        SAME("{\"b\":1,\"b\":2} %");
}

static void json_limits(void **state)
{
        char *doc = malloc(300 << 10);
        size_t n;

        (void)state;
        if (!doc) {
                fail();
                return;
        }
        /* Nesting at the cap and past it. */
        for (unsigned depth = 63; depth <= 66; depth++) {
                n = 0;
                for (unsigned i = 0; i < depth; i++)
                        doc[n++] = '[';
                for (unsigned i = 0; i < depth; i++)
                        doc[n++] = ']';
                same(doc, n, 0);
        }
        /* Keys around YAML's 1024-character limit on implicit keys. */
        for (size_t len = 990; len <= 1030; len += 4) {
                n = (size_t)sprintf(doc, "{\"");
                memset(doc + n, 'k', len);
                n += len;
                n += (size_t)sprintf(doc + n, "\":1}");
                same(doc, n, 0);
        }
        /* A scalar over YDOC_MAX_SCALAR. */
        n = (size_t)sprintf(doc, "{\"a\":\"");
        memset(doc + n, 'v', YDOC_MAX_SCALAR + 1);
        n += YDOC_MAX_SCALAR + 1;
        n += (size_t)sprintf(doc + n, "\"}");
        same(doc, n, 0);
        /* A mapping over YDOC_MAX_MAP_KEYS. */
        n = (size_t)sprintf(doc, "{");
        for (unsigned i = 0; i <= YDOC_MAX_MAP_KEYS; i++)
                n += (size_t)sprintf(doc + n, "%s\"k%u\":%u", i ? "," : "", i, i);
        n += (size_t)sprintf(doc + n, "}");
        same(doc, n, 0);
        free(doc);
}

static void json_list_items(void **state)
{
        static const char list[] = "{\"kind\":\"List\",\"items\":[{\"a\":1},{\"b\":[2,3]},null,{\"c\":{\"d\":4}}],"
                                   "\"after\":5}";
        static const char seq[] = "[{\"a\":1},{\"b\":2}]";

        (void)state;
        same(list, sizeof(list) - 1, YDOC_LIST_ITEMS);
        same(list, sizeof(list) - 1, 0);
        same(seq, sizeof(seq) - 1, YDOC_LIST_ITEMS);
}

/* ---- plain block YAML (YDOC_REWINDS) ---- */

struct big_reader {
        const char *start, *p;
        size_t size, left;
        size_t biggest; /* the largest read asked for since the last start again */
        unsigned rewinds;
        unsigned fail_after; /* not 0: reads fail (-EIO) from this start again on */
};

static int big_read(void *ctx, void *buf, size_t size, size_t *ret_n)
{
        struct big_reader *r = ctx;
        size_t n = size < r->left ? size : r->left;

        if (!buf && !size) {
                r->p = r->start;
                r->left = r->size;
                r->biggest = 0;
                r->rewinds++;
                return 0;
        }
        if (size > r->biggest)
                r->biggest = size;
        if (r->fail_after && r->rewinds >= r->fail_after)
                return -EIO;
        memcpy(buf, r->p, n);
        r->p += n;
        r->left -= n;
        *ret_n = n;
        return 0;
}

static int count_resource(const struct ynode *n, void *userdata)
{
        (void)n;
        (*(size_t *)userdata)++;
        return 0;
}

/* Whether the plain YAML reader took doc (after checking that it reads as libyaml). */
static bool read_plain(const char *doc, size_t len, unsigned flags)
{
        struct big_reader r = { doc, doc, len, len, 0, 0 };
        struct cfg_diags d = {};
        size_t n = 0;

        same(doc, len, flags | YDOC_REWINDS);
        ydoc_load_stream("doc", big_read, &r, flags | YDOC_REWINDS, count_resource, &n, &d);
        cfg_diags_clear(&d);
        assert_int_equal(r.rewinds, 2);
        return r.biggest >= (64u << 10);
}

#define PLAIN(lit) assert_true(read_plain(lit, sizeof(lit) - 1, YDOC_LIST_ITEMS))
#define LIBYAML(lit) assert_false(read_plain(lit, sizeof(lit) - 1, YDOC_LIST_ITEMS))

static void yaml_plain(void **state)
{
        (void)state;
        PLAIN("a: b\n");
        PLAIN("a: b");
        PLAIN("- a\n- 'b c'\n- \"d: e\"\n");
        PLAIN("apiVersion: v1\nitems:\n- apiVersion: crd.projectcalico.org/v1\n  kind: BlockAffinity\n"
              "  metadata:\n    annotations:\n      projectcalico.org/metadata: '{\"creationTimestamp\":null}'\n"
              "    name: node-0000-10-0-0-0-26\n  spec:\n    cidr: 10.0.0.0/26\n    deleted: \"false\"\n"
              "    node: node-0000\n    state: confirmed\n- kind: X\n  spec:\n    a: 1\nkind: List\n"
              "metadata:\n  resourceVersion: \"\"\n");
        PLAIN("items:\n  - a: 1\n    b:\n      - x\n      - y\n    c: z\n  - b: 2\nkind: List\n");
        PLAIN("a:\n  b:\n    c: d\n  e: f\ng: h\n");
        PLAIN("- a:\n  - x\n  b: y\n- c: d\n");
        PLAIN("# head\na: b\n\n  # indented comment\nc: fd00::/64\n# tail");
        PLAIN("a: http://x/y:z\nb: a:b\nc: 1.5e+3\nd: x=y@z\nf: null\ng: ''\nh: \"\"\n");
        PLAIN("a:b: c\n");
        /* The builder's own errors, from the same events. */
        PLAIN("a: 1\nb: 2\na: 3\n");
        PLAIN("items:\n- a: 1\n  a: 2\n- b: 3\n");
}

/* A read that fails in the plain reader's second pass (or its first) is reported with
 * the reader's error, as libyaml's path reports it; nothing is handed over. */
static void yaml_read_error(void **state)
{
        static const char doc[] = "items:\n- a: 1\n- b: 2\nkind: List\n";

        (void)state;
        for (unsigned fail = 1; fail <= 2; fail++) {
                struct big_reader r = { doc, doc, sizeof(doc) - 1, sizeof(doc) - 1, 0, 0, fail };
                struct cfg_diags d = {};
                char line[256];
                size_t n = 0;
                bool said = false;

                assert_int_equal(ydoc_load_stream("doc", big_read, &r, YDOC_LIST_ITEMS | YDOC_REWINDS, count_resource,
                                                  &n, &d),
                                 -EIO);
                assert_int_equal(n, 0);
                for (size_t i = 0; i < d.n; i++) {
                        cfg_diag_fmt(&d.v[i], line, sizeof(line));
                        said |= strstr(line, "read error: Input/output error") != NULL;
                        assert_null(strstr(line, "changed while it was read"));
                }
                cfg_diags_clear(&d);
                assert_true(said);
        }
}

static void yaml_left_to_libyaml(void **state)
{
        (void)state;
        LIBYAML("a: {}\n");
        LIBYAML("a: ~\n");
        LIBYAML("a: []\n");
        LIBYAML("a:\nb: c\n");
        LIBYAML("a:\n");
        LIBYAML("a: b\n  c\n");
        LIBYAML("a: b c\n");
        LIBYAML("a: b # c\n");
        LIBYAML("a: b \n");
        LIBYAML("a:  b\n");
        LIBYAML("a: 'b''c'\n");
        LIBYAML("a: \"b\\\"c\"\n");
        LIBYAML("a: 'b\n  c'\n");
        LIBYAML("a:\tb\n");
        LIBYAML("a: b\r\n");
        LIBYAML("a: \xc3\xa9\n");
        LIBYAML("\xef\xbb\xbf" "a: b\n");
        LIBYAML("---\na: b\n");
        LIBYAML("a: b\n---\nc: d\n");
        LIBYAML("a: b\n...\n");
        LIBYAML("%YAML 1.1\n---\na: b\n");
        LIBYAML("a: &x b\nc: *x\n");
        LIBYAML("a: !!str 1\n");
        LIBYAML("'a': b\n");
        LIBYAML("? a\n: b\n");
        LIBYAML("a: -1\n");
        LIBYAML("a: \"b\\nc\"\n");      /* an escape in double quotes: libyaml's */
        LIBYAML("x:\n  a:\n b: c\n");    /* a key between two open blocks: libyaml's error */
        LIBYAML("x:\n  - a\n - b\n");
        LIBYAML("-a: b\n");
        LIBYAML("a: |\n  x\n");
        LIBYAML("-\n  a: b\n");
        LIBYAML("-  a: b\n");
        LIBYAML("- - a\n");
        LIBYAML(" a: b\n");
        LIBYAML("a: b\n c: d\n");
        LIBYAML("a:\n  b: c\n d: e\n");
        LIBYAML("- a\nb: c\n");
        LIBYAML("a:\n  - b\n c: d\n");
        LIBYAML("a: b\n- c\n");
        LIBYAML("a: b:\n");
        LIBYAML("a: b: c\n");
        LIBYAML("a b: c\n");
        LIBYAML("a\n");
        LIBYAML("");
        LIBYAML("\n# only a comment\n");
        LIBYAML("a: b\n# \xc3\xa9\n");
        LIBYAML("a: \"b\0c\"\n");
}

static void yaml_limits(void **state)
{
        char *doc = NULL, *p;
        size_t len;

        (void)state;
        /* Nesting: at the builder's cap, then past it (libyaml's). */
        for (unsigned depth = YDOC_MAX_DEPTH - 1; depth <= YDOC_MAX_DEPTH + 1; depth++) {
                doc = malloc(depth * (2 * depth + 8) + 16);
                assert_non_null(doc);
                p = doc;
                for (unsigned i = 0; i < depth; i++)
                        p += sprintf(p, "%*sk:\n", (int)(2 * i), "");
                p += sprintf(p, "%*sk: v\n", (int)(2 * depth), "");
                read_plain(doc, (size_t)(p - doc), YDOC_LIST_ITEMS);
                free(doc);
        }
        /* A key of 1,000 characters, then of 1,001 (libyaml's). */
        for (size_t k = 1000; k <= 1001; k++) {
                doc = malloc(k + 8);
                assert_non_null(doc);
                memset(doc, 'k', k);
                memcpy(doc + k, ": v\n", 5);
                assert_true(read_plain(doc, k + 4, YDOC_LIST_ITEMS) == (k == 1000));
                free(doc);
        }
        /* A line longer than the reader's buffer, and a scalar past YDOC_MAX_SCALAR. */
        for (int big = 0; big < 2; big++) {
                len = big ? YDOC_MAX_SCALAR + 64 : (64u << 10) + 16;
                doc = malloc(len);
                assert_non_null(doc);
                memcpy(doc, "a: ", 3);
                memset(doc + 3, 'x', len - 4);
                doc[len - 1] = '\n';
                assert_false(read_plain(doc, len, YDOC_LIST_ITEMS));
                free(doc);
        }
}

/* A big list, items spread over many reads, lines across the reader's buffer. */
static void yaml_big_list(void **state)
{
        size_t cap = 4u << 20, len = 0;
        char *doc = malloc(cap);

        (void)state;
        assert_non_null(doc);
        len += (size_t)sprintf(doc, "apiVersion: v1\nitems:\n");
        for (unsigned i = 0; len < cap - 4096; i++)
                len += (size_t)sprintf(doc + len,
                                       "- apiVersion: crd.projectcalico.org/v1\n  kind: BlockAffinity\n  metadata:\n"
                                       "    name: node-%04u-10-%u-%u-0-26\n  spec:\n    cidr: 10.%u.%u.0/26\n"
                                       "    node: node-%04u\n    state: confirmed\n",
                                       i / 20, i >> 8 & 255, i & 255, i >> 8 & 255, i & 255, i / 20);
        len += (size_t)sprintf(doc + len, "kind: List\n");
        assert_true(read_plain(doc, len, YDOC_LIST_ITEMS));
        assert_true(read_plain(doc, len, 0));
        free(doc);
}

/* Random documents of lines near the subset (indentation, keys, entries, values, and
 * now and then something outside it): whichever reader takes each, libyaml's result. */
static unsigned rnd(unsigned *seed, unsigned n)
{
        *seed = *seed * 1103515245u + 12345u;
        return (*seed >> 16) % n;
}

static void yaml_random(void **state)
{
        static const char *const keys[] = { "a", "b", "items", "kind", "a:b", "x1" };
        static const char *const values[] = { "1", "x", "'q r'", "\"d: e\"", "fd00::/64", "node-0001", "{}",
                                               "-1", "a b", "~", "", "'", "10.0.0.0/26", "b:", "\"\\n\"" };
        unsigned seed = 7, plain = 0, runs = 3000;

        (void)state;
        for (unsigned i = 0; i < runs; i++) {
                char doc[1024];
                size_t len = 0;
                unsigned lines = 1 + rnd(&seed, 10);

                unsigned next = 0; /* where the lines so far ask the next one to be, mostly */

                for (unsigned l = 0; l < lines && len < sizeof(doc) - 64; l++) {
                        unsigned indent = rnd(&seed, 8) ? next : rnd(&seed, 6);
                        const char *k = keys[rnd(&seed, 6)], *v = values[rnd(&seed, 8) ? rnd(&seed, 6) : rnd(&seed, 15)];
                        int n;

                        switch (rnd(&seed, 8)) {
                        case 0:
                                n = snprintf(doc + len, 64, "%*s- %s: %s\n", indent, "", k, v);
                                next = indent + 2 * rnd(&seed, 2);
                                break;
                        case 1:
                                n = snprintf(doc + len, 64, "%*s- %s:\n", indent, "", k);
                                next = indent + 2 + 2 * rnd(&seed, 2);
                                break;
                        case 2:
                                n = snprintf(doc + len, 64, "%*s- %s\n", indent, "", v);
                                break;
                        case 3:
                                n = snprintf(doc + len, 64, "%*s%s:\n", indent, "", k);
                                next = indent + 2 * rnd(&seed, 2);
                                break;
                        case 4:
                                n = snprintf(doc + len, 64, "%*s# c\n", indent, "");
                                break;
                        default:
                                n = snprintf(doc + len, 64, "%*s%s: %s\n", indent, "", k, v);
                                next = indent >= 2 && !rnd(&seed, 3) ? indent - 2 : indent;
                                break;
                        }
                        len += (size_t)n;
                }
                if (rnd(&seed, 4) == 0)
                        len--; /* no line feed at the end */
                plain += read_plain(doc, len, YDOC_LIST_ITEMS);
                read_plain(doc, len, 0);
        }
        print_message("random: %u of %u documents read without libyaml\n", plain, runs);
        assert_true(plain > runs / 10);
}

/* Every fixture (tests/fixtures, the real Calico outputs): what libyaml gives. */
static void yaml_fixtures_dir(const char *dir, unsigned *n_files, unsigned *n_plain)
{
        DIR *d = opendir(dir);
        struct dirent *e;

        assert_non_null(d);
        while ((e = readdir(d))) {
                char path[4096], *doc;
                struct stat st;
                FILE *f;

                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                assert_int_equal(stat(path, &st), 0);
                if (S_ISDIR(st.st_mode)) {
                        yaml_fixtures_dir(path, n_files, n_plain);
                        continue;
                }
                if (!strstr(e->d_name, ".yaml") && !strstr(e->d_name, ".yml"))
                        continue;
                doc = malloc((size_t)st.st_size + 1);
                assert_non_null(doc);
                f = fopen(path, "rb");
                assert_non_null(f);
                assert_int_equal(fread(doc, 1, (size_t)st.st_size, f), (size_t)st.st_size);
                fclose(f);
                *n_plain += read_plain(doc, (size_t)st.st_size, YDOC_LIST_ITEMS);
                read_plain(doc, (size_t)st.st_size, 0);
                (*n_files)++;
                free(doc);
        }
        closedir(d);
}

static void yaml_fixtures(void **state)
{
        const char *dir = getenv("FIXTURES");
        unsigned n_files = 0, n_plain = 0;

        (void)state;
        if (!dir)
                skip();
        yaml_fixtures_dir(dir, &n_files, &n_plain);
        print_message("fixtures: %u YAML files, %u read without libyaml\n", n_files, n_plain);
        assert_true(n_files >= 10);
        /* The kdd and calicoctl lists (not the ones with `---`, or selectors with spaces
         * or parentheses: libyaml's). */
        assert_true(n_plain >= 5);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(json_values),
                cmocka_unit_test(json_left_to_libyaml),
                cmocka_unit_test(json_limits),
                cmocka_unit_test(json_list_items),
                cmocka_unit_test(yaml_plain),
                cmocka_unit_test(yaml_left_to_libyaml),
                cmocka_unit_test(yaml_read_error),
                cmocka_unit_test(yaml_limits),
                cmocka_unit_test(yaml_big_list),
                cmocka_unit_test(yaml_random),
                cmocka_unit_test(yaml_fixtures),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
