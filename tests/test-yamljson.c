/* Unit tests for the plain-JSON reader of config/yamltree.c: every document read
 * through it gives what libyaml gives (tests/ydoc-diff.h): the same tree, positions,
 * quoting, diagnostics and result, for the JSON etcd and the Kubernetes API hand the
 * loader (compact, pretty-printed, Calico's values) and for everything it leaves to
 * libyaml (escapes, UTF-8, tabs, long or multi-line keys, deep nesting, bad syntax). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(json_values),
                cmocka_unit_test(json_left_to_libyaml),
                cmocka_unit_test(json_limits),
                cmocka_unit_test(json_list_items),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
