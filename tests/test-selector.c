/* Unit tests for config/selector.c: Calico selector semantics (every operator, missing
 * labels, precedence, quoting, label names), the canonical text and its round trip, caps, and
 * the exact column of every kind of syntax error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "labels.h"
#include "selector.h"
#include "util.h"

/* A label map as a NULL-terminated list of alternating keys and values. */
#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

static struct cfg_labels make_labels(const char *const *kv)
{
        struct cfg_labels l = {};

        for (size_t i = 0; kv[i]; i += 2)
                assert_int_equal(cfg_labels_set(&l, kv[i], kv[i + 1]), 0);
        cfg_labels_seal(&l);
        return l;
}

static struct sel *compile_ok(const char *text)
{
        struct sel_error e = {};
        struct sel *s = NULL;
        int r = sel_compile(text, &s, &e);

        if (r != 0)
                print_error("compiling '%s' failed: column %zu: %s\n", text, e.column, e.message);
        assert_int_equal(r, 0);
        assert_non_null(s);
        return s;
}

static char *format_alloc(const struct sel *s)
{
        int n = sel_format(s, NULL, 0);
        char *buf;

        assert_true(n > 0);
        buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(sel_format(s, buf, (size_t)n + 1), n);
        assert_int_equal(strlen(buf), (size_t)n);
        return buf;
}

/* Does text match the labels kv? Also checks that the canonical text of the selector gives the
 * same answer and is a fixed point of compile + format. */
static bool m(const char *text, const char *const *kv)
{
        struct cfg_labels l = make_labels(kv);
        struct sel *s = compile_ok(text), *s2;
        char *canon = format_alloc(s), *canon2;
        bool r = sel_match(s, &l);

        s2 = compile_ok(canon);
        canon2 = format_alloc(s2);
        assert_string_equal(canon, canon2);
        if (sel_match(s2, &l) != r)
                print_error("'%s' and its canonical form '%s' disagree\n", text, canon);
        assert_int_equal(sel_match(s2, &l), r);

        free(canon);
        free(canon2);
        sel_free(s);
        sel_free(s2);
        cfg_labels_clear(&l);
        return r;
}

static void check_error(const char *text, size_t column, const char *needle)
{
        struct sel *sentinel = (struct sel *)(uintptr_t)0x5e1, *s = sentinel;
        struct sel_error e = {};
        int r = sel_compile(text, &s, &e);

        if (r != -EINVAL || e.column != column || !strstr(e.message, needle))
                print_error("'%s': r=%d column %zu (want %zu): '%s' (want '%s')\n", text, r,
                            e.column, column, e.message, needle);
        assert_int_equal(r, -EINVAL);
        assert_ptr_equal(s, sentinel);
        assert_int_equal(e.column, column);
        assert_non_null(strstr(e.message, needle));
}

static void check_format(const char *text, const char *want)
{
        struct sel *s = compile_ok(text);
        char *got = format_alloc(s);

        if (!streq(got, want))
                print_error("'%s' formats as '%s', want '%s'\n", text, got, want);
        assert_string_equal(got, want);
        free(got);
        sel_free(s);
}

static void test_all_global_empty(void **state)
{
        static const char *const all[] = {
                "", " ", "\t", " \t ", "all()", " all() ", "all( )", "all(\t)", "(all())",
                " ( all( ) )", "global()", " global( ) ", "((global()))",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                struct sel *s = compile_ok(all[i]);

                assert_true(sel_is_all(s));
                assert_true(sel_match(s, NULL));
                sel_free(s);
                assert_true(m(all[i], NONE));
                assert_true(m(all[i], L("a", "b")));
        }
        check_format("", "all()");
        check_format("   ", "all()");
        check_format("global()", "global()");

        static const char *const not_all[] = {
                "!all()", "has(a)", "all() && has(a)", "all() || has(a)", "!global()",
        };
        for (size_t i = 0; i < ELEMENTSOF(not_all); i++) {
                struct sel *s = compile_ok(not_all[i]);

                assert_false(sel_is_all(s));
                sel_free(s);
        }
        assert_false(m("!all()", NONE));
        assert_false(m("!global()", L("a", "b")));
        assert_true(m("all() || has(a)", NONE));
        assert_false(m("all() && has(a)", NONE));
}

static void test_eq(void **state)
{
        (void)state;
        assert_true(m("a == \"b\"", L("a", "b")));
        assert_true(m("a == \"b\"", L("a", "b", "c", "d")));
        assert_false(m("a == \"b\"", NONE));
        assert_false(m("a == \"b\"", L("a", "c")));
        assert_false(m("a == \"b\"", L("c", "d")));
        assert_false(m("a == \"b\"", L("a", "bb")));
        assert_false(m("a == \"b\"", L("a", "B")));
        assert_true(m("a == \"\"", L("a", "")));
        assert_false(m("a == \"\"", NONE));
        assert_true(m("a==\"b\"", L("a", "b")));
}

static void test_ne(void **state)
{
        (void)state;
        assert_true(m("a != \"b\"", L("a", "c")));
        assert_false(m("a != \"b\"", L("a", "b")));
        assert_true(m("a != \"b\"", NONE)); /* a missing label is not equal */
        assert_true(m("a != \"b\"", L("b", "b")));
        assert_true(m("a != \"\"", NONE));
        assert_false(m("a != \"\"", L("a", "")));
        assert_true(m("a!='b'", L("a", "")));
}

static void test_in(void **state)
{
        const char *sel = "a in {\"'\", '\"', \"c\"}";

        (void)state;
        assert_true(m(sel, L("a", "c")));
        assert_true(m(sel, L("a", "\"")));
        assert_true(m(sel, L("a", "'")));
        assert_false(m(sel, NONE));
        assert_false(m(sel, L("a", "e")));
        assert_false(m(sel, L("b", "c")));
        assert_true(m("a in {\"a\", \"b\"}", L("a", "b")));
        assert_false(m("a in {\"a\", \"b\"}", L("a", "ab")));
        assert_false(m("a in {}", NONE));
        assert_false(m("a in {}", L("a", "")));
        assert_true(m("a in {\"\"}", L("a", "")));
        assert_true(m("a in {\"x\", \"x\", \"x\"}", L("a", "x")));
        /* Calico accepts a trailing comma. */
        assert_true(m("a in {\"x\",}", L("a", "x")));
        assert_true(m("a in{'x'}", L("a", "x")));
}

static void test_not_in(void **state)
{
        const char *sel = "a not in {\"'\", '\"', \"c\"}";

        (void)state;
        assert_false(m(sel, L("a", "c")));
        assert_false(m(sel, L("a", "\"")));
        assert_false(m(sel, L("a", "'")));
        assert_true(m(sel, NONE)); /* a missing label is in no set */
        assert_true(m(sel, L("a", "e")));
        assert_true(m("a not in {}", NONE));
        assert_true(m("a not in {}", L("a", "x")));
        assert_false(m("a not in {\"d\", \"e\"}", L("a", "e")));
        /* Calico also reads "notin" and any blanks between the words. */
        assert_false(m("a notin {\"x\"}", L("a", "x")));
        assert_true(m("a notin{\"x\"}", L("a", "y")));
        assert_false(m("a not \t in {\"x\"}", L("a", "x")));
}

static void test_large_set(void **state)
{
        char text[4096], want[16];
        size_t n = 0;

        (void)state;
        n += (size_t)snprintf(text + n, sizeof(text) - n, "k in {");
        for (int i = 199; i >= 0; i--)
                n += (size_t)snprintf(text + n, sizeof(text) - n, "\"v%d\"%s", i, i ? "," : "}");
        assert_true(n < sizeof(text));
        for (int i = 0; i < 200; i++) {
                snprintf(want, sizeof(want), "v%d", i);
                assert_true(m(text, L("k", want)));
        }
        assert_false(m(text, L("k", "v200")));
        assert_false(m(text, L("k", "v")));
        assert_false(m(text, L("k", "v0 ")));
        assert_false(m(text, NONE));
}

static void test_contains(void **state)
{
        (void)state;
        assert_true(m("a contains \"a\"", L("a", "a")));
        assert_true(m("a contains \"a\"", L("a", "bab")));
        assert_true(m("a contains \"a\"", L("a", "aaa", "b", "c")));
        assert_false(m("a contains \"a\"", NONE));
        assert_false(m("a contains \"a\"", L("a", "b")));
        assert_false(m("a contains \"a\"", L("b", "aaa")));
        assert_true(m("a contains \"\"", L("a", "")));
        assert_false(m("a contains \"\"", NONE));
        assert_true(m("a contains\"b\"", L("a", "abc")));
        assert_true(m("zone contains 'east-1'", L("zone", "us-east-1a")));
}

static void test_starts_with(void **state)
{
        static const char *const spellings[] = {
                "a starts with \"a\"", "a startswith \"a\"", "a starts  with \"a\"",
                "a starts\twith 'a'", "a startswith\"a\"",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(spellings); i++) {
                assert_true(m(spellings[i], L("a", "a")));
                assert_true(m(spellings[i], L("a", "abb")));
                assert_false(m(spellings[i], NONE));
                assert_false(m(spellings[i], L("a", "b")));
                assert_false(m(spellings[i], L("a", "baa")));
                assert_false(m(spellings[i], L("b", "aaa")));
                check_format(spellings[i], "a starts with \"a\"");
        }
        assert_true(m("a starts with \"\"", L("a", "")));
        assert_false(m("a starts with \"\"", NONE));
        assert_false(m("a starts with \"abc\"", L("a", "ab")));
}

static void test_ends_with(void **state)
{
        static const char *const spellings[] = {
                "a ends with \"a\"", "a endswith \"a\"", "a ends   with \"a\"",
                "a ends\twith 'a'", "a endswith\"a\"",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(spellings); i++) {
                assert_true(m(spellings[i], L("a", "a")));
                assert_true(m(spellings[i], L("a", "bba")));
                assert_false(m(spellings[i], NONE));
                assert_false(m(spellings[i], L("a", "b")));
                assert_false(m(spellings[i], L("a", "aab")));
                assert_false(m(spellings[i], L("b", "aaa")));
                check_format(spellings[i], "a ends with \"a\"");
        }
        assert_true(m("a ends with \"\"", L("a", "")));
        assert_false(m("a ends with \"abc\"", L("a", "bc")));
        assert_true(m("a ends with \"abc\"", L("a", "abc")));
}

static void test_has(void **state)
{
        (void)state;
        assert_true(m("has(a)", L("a", "b")));
        assert_true(m("has(a)", L("a", "")));
        assert_false(m("has(a)", NONE));
        assert_false(m("has(b)", L("a", "b")));
        assert_true(m("!has(a)", L("b", "b")));
        assert_false(m("!has(a)", L("a", "b")));
        assert_false(m("! has(a)", L("a", "b")));
        assert_true(m("!!has(a)", L("a", "b")));
        assert_false(m("!!!has(a)", L("a", "b")));
        assert_false(m("!! ! has(a)", L("a", "b")));
        assert_false(m("! !!has(a)", L("a", "b")));
        assert_true(m("has( a )", L("a", "b")));
        assert_true(m("has(\ta\t)", L("a", "b")));
}

static void test_precedence(void **state)
{
        const char *or_first = "a == \"1\" || b == \"1\" && c == \"1\"";
        const char *and_first = "a == \"1\" && b == \"1\" || c == \"1\"";

        (void)state;
        /* && binds tighter: a || (b && c). With (a || b) && c, {a:1} would not match. */
        assert_true(m(or_first, L("a", "1")));
        assert_false(m(or_first, L("b", "1")));
        assert_true(m(or_first, L("b", "1", "c", "1")));
        assert_false(m(or_first, L("c", "1")));
        assert_false(m(or_first, NONE));
        /* (a && b) || c. With a && (b || c), {c:1} would not match. */
        assert_true(m(and_first, L("c", "1")));
        assert_false(m(and_first, L("a", "1")));
        assert_true(m(and_first, L("a", "1", "b", "1")));
        assert_false(m(and_first, L("b", "1")));
        /* Longer chains. */
        assert_true(m("has(a) && has(b) && has(c)", L("a", "", "b", "", "c", "")));
        assert_false(m("has(a) && has(b) && has(c)", L("a", "", "b", "")));
        assert_true(m("has(a) || has(b) || has(c)", L("c", "")));
        assert_false(m("has(a) || has(b) || has(c)", L("d", "")));
}

static void test_not_binding(void **state)
{
        const char *sel = "!a == \"x\" && b == \"y\"";

        (void)state;
        /* (!(a == "x")) && b == "y", not !(a == "x" && b == "y"). */
        assert_true(m(sel, L("b", "y")));
        assert_true(m(sel, L("a", "z", "b", "y")));
        assert_false(m(sel, L("a", "x", "b", "y")));
        assert_false(m(sel, L("a", "z"))); /* would match if '!' covered the whole && */
        assert_false(m(sel, NONE));
        /* '!' before a term of ||. */
        assert_true(m("! a == 'a1' || ! b == 'b1'", L("a", "a1")));
        assert_false(m("! a == 'a1' || ! b == 'b1'", L("a", "a1", "b", "b1")));
        assert_false(m("a != 'a1' && !b == 'b1'", L("a", "a1", "b", "b1")));
        /* '!' before each operator. */
        assert_true(m("!a in {\"a\"}", L("a", "b")));
        assert_false(m("!a in {\"a\"}", L("a", "a")));
        assert_true(m("!a in {\"a\"}", NONE));
        assert_false(m("!a not in {\"a\"}", NONE));
        assert_false(m("!a != \"x\"", NONE));
        assert_true(m("!a contains \"x\"", NONE));
        assert_true(m("!a starts with \"x\"", L("a", "yx")));
        assert_false(m("!a ends with \"x\"", L("a", "yx")));
}

static void test_parentheses(void **state)
{
        const char *sel = "(a == \"1\" || b == \"1\") && c == \"1\"";

        (void)state;
        assert_false(m(sel, L("a", "1")));
        assert_true(m(sel, L("a", "1", "c", "1")));
        assert_true(m(sel, L("b", "1", "c", "1")));
        assert_false(m(sel, L("c", "1")));
        assert_true(m("!(a == \"1\" || b == \"1\")", NONE));
        assert_false(m("!(a == \"1\" || b == \"1\")", L("b", "1")));
        assert_false(m("!(a == \"x\" && b == \"y\")", L("a", "x", "b", "y")));
        assert_true(m("!(a == \"x\" && b == \"y\")", L("a", "z")));
        assert_true(m("!(!has(a) || has(b))", L("a", "a")));
        assert_true(m("!(has(b) || !has(a))", L("a", "a")));
        assert_false(m("!(!has(a) || has(b))", L("a", "a", "b", "b")));
        assert_true(m("((((has(a)))))", L("a", "")));
        assert_true(m("!(!(has(a)))", L("a", "")));
        assert_true(m("!((!(has(a))))", L("a", "")));
        assert_false(m("!(!(!(has(a))))", L("a", "")));
        assert_true(m("(has(a) || has(b)) && (has(c) || has(d))", L("b", "", "c", "")));
        assert_false(m("(has(a) || has(b)) && (has(c) || has(d))", L("a", "", "b", "")));
        assert_true(m("((has(a) && (has(b) || (has(c)))))", L("a", "", "c", "")));
}

static void test_quotes(void **state)
{
        (void)state;
        assert_true(m("a == 'b'", L("a", "b")));
        assert_true(m("a == \"b\"", L("a", "b")));
        assert_true(m("a == \"it's\"", L("a", "it's")));
        assert_true(m("a == 'say \"hi\"'", L("a", "say \"hi\"")));
        assert_true(m("a == '\"'", L("a", "\"")));
        assert_true(m("a == \"'\"", L("a", "'")));
        /* No escapes: a backslash is an ordinary character. */
        assert_true(m("a == 'x\\'", L("a", "x\\")));
        /* Operators and parentheses inside a string are just characters. */
        assert_true(m("a == \"x && y || (z) }{ ,\"", L("a", "x && y || (z) }{ ,")));
        assert_true(m("a in {'x, y', \"z\"}", L("a", "x, y")));
        assert_false(m("a in {'x, y', \"z\"}", L("a", "x")));
        assert_true(m("a == \"two  spaces\"", L("a", "two  spaces")));
}

static void test_label_names(void **state)
{
        (void)state;
        assert_true(m("topology.kubernetes.io/zone == \"az1\"", L("topology.kubernetes.io/zone", "az1")));
        assert_false(m("topology.kubernetes.io/zone == \"az1\"", L("zone", "az1")));
        assert_true(m("calico/k8s_ns == \"kube-system\" && k8s-app == \"kube-dns\"",
                      L("calico/k8s_ns", "kube-system", "k8s-app", "kube-dns")));
        assert_true(m("has(calico/k8s_NS-.1/role)", L("calico/k8s_NS-.1/role", "x")));
        assert_true(m("_private == \"1\"", L("_private", "1")));
        assert_true(m("9lives in {\"yes\"}", L("9lives", "yes")));
        assert_true(m("-a == \"1\"", L("-a", "1")));
        assert_true(m("a.b.c/d-e_f starts with \"x\"", L("a.b.c/d-e_f", "xyz")));
        assert_true(m("!has(node-role.kubernetes.io/control-plane)", L("kubernetes.io/os", "linux")));
        /* Keywords are only operators right after a label. */
        assert_true(m("in in {\"in\"}", L("in", "in")));
        assert_true(m("contains contains \"contains\"", L("contains", "xcontainsx")));
        assert_true(m("not == \"x\"", L("not", "x")));
        assert_true(m("has == \"x\"", L("has", "x")));
        assert_true(m("all == \"x\" && global != \"y\"", L("all", "x")));
        assert_true(m("startswith starts with \"v\"", L("startswith", "value")));
        assert_true(m("endswith ends with \"e\"", L("endswith", "value")));
        assert_true(m("has(has) && !has(all)", L("has", "")));
        assert_true(m("!in == \"x\"", NONE));
}

static void test_whitespace(void **state)
{
        (void)state;
        assert_true(m("a==\"b\"&&has(c)||!d in{\"x\"}", L("a", "b", "c", "")));
        assert_true(m("a==\"b\"&&has(c)||!d in{\"x\"}", L("d", "y")));
        assert_true(m("\ta\t==\t\"b\"\t", L("a", "b")));
        assert_true(m("   a   ==   \"b\"   &&   (   has(c)   )   ", L("a", "b", "c", "")));
        assert_true(m("!\t!\thas(a)", L("a", "")));
        assert_true(m("a in {  \"x\"  ,  \"y\"  ,  }", L("a", "y")));
        assert_true(m("(a==\"1\")||(b==\"2\")", L("b", "2")));
}

static void test_format(void **state)
{
        (void)state;
        check_format(" ( all() )", "all()");
        check_format("! (has( b)||! has(a ))", "!(has(b) || !has(a))");
        check_format("! (a == \"b\"&&! c != \"d\")", "!(a == \"b\" && !c != \"d\")");
        check_format("a == 'a'", "a == \"a\"");
        check_format("a == '\"'", "a == '\"'");
        check_format("a == \"'\"", "a == \"'\"");
        check_format("a contains '\"'", "a contains '\"'");
        check_format("a startswith '\"'", "a starts with '\"'");
        check_format("a endswith \"'\"", "a ends with \"'\"");
        check_format("a!='\"'", "a != '\"'");
        check_format("a in {\"d\", \"a\", \"b\"}", "a in {\"a\", \"b\", \"d\"}");
        check_format("a in {\"z\", \"z\", \"x\", \"y\", \"x\", \"a\"}", "a in {\"a\", \"x\", \"y\", \"z\"}");
        check_format("a in {'\"', \"'\"}", "a in {'\"', \"'\"}");
        check_format("a notin{'x',}", "a not in {\"x\"}");
        check_format("a in {}", "a in {}");
        check_format("zone==\"az1\"&&has(rack)", "zone == \"az1\" && has(rack)");
        check_format("(a == \"1\" || b == \"2\") && c == \"3\"", "(a == \"1\" || b == \"2\") && c == \"3\"");
        check_format("a == \"1\" || (b == \"2\" && c == \"3\")", "a == \"1\" || b == \"2\" && c == \"3\"");
        check_format("(a == \"1\" && b == \"2\") && c == \"3\"", "a == \"1\" && b == \"2\" && c == \"3\"");
        check_format("!a == \"x\" && b == \"y\"", "!a == \"x\" && b == \"y\"");
        check_format("!!has(a)", "has(a)");
        check_format("!!!has(a)", "!has(a)");
        check_format("!(!(has(a)))", "has(a)");
        check_format("!all()", "!all()");
        check_format("!(has(a) || has(b)) || has(c)", "!(has(a) || has(b)) || has(c)");
        check_format("in in {\"in\"}", "in in {\"in\"}");
}

static void test_format_truncation(void **state)
{
        struct sel *s = compile_ok("zone == \"az1\" && has(rack)");
        char buf[64];

        (void)state;
        assert_int_equal(sel_format(s, NULL, 0), 26);
        memset(buf, 'X', sizeof(buf));
        assert_int_equal(sel_format(s, buf, 5), 26);
        assert_string_equal(buf, "zone");
        assert_int_equal(buf[5], 'X');
        assert_int_equal(sel_format(s, buf, 1), 26);
        assert_string_equal(buf, "");
        assert_int_equal(sel_format(s, buf, 26), 26);
        assert_string_equal(buf, "zone == \"az1\" && has(rack");
        assert_int_equal(sel_format(s, buf, 27), 26);
        assert_string_equal(buf, "zone == \"az1\" && has(rack)");
        sel_free(s);
}

static void test_round_trip(void **state)
{
        static const char *const sels[] = {
                "",
                "global()",
                "a == \"1\" || b == \"1\" && c == \"1\"",
                "(a == \"1\" || b == \"1\") && !(c == \"1\" || a in {\"2\", \"1\"})",
                "!a == \"1\" && b != '2'",
                "!(a not in {'1', \"'\"} && !(has(b) || c contains \"x\"))",
                "a starts with '\"' || b endswith \"'\" || !c startswith \"\"",
                "((has(a) && (has(b) || (has(c)))) || !(!has(d)))",
                "topology.kubernetes.io/zone in {\"az1\", \"az2\"} && !has(node-role.kubernetes.io/master)",
                "!!!(a == \"1\") || !!b == \"2\"",
        };
        const char *const *const maps[] = {
                NONE,
                L("a", "1"),
                L("a", "2", "b", "1"),
                L("a", "'", "b", "x'", "c", "\"y"),
                L("b", "1", "c", "1"),
                L("c", "x", "d", ""),
                L("a", "1", "b", "2", "c", "1", "d", "4"),
                L("topology.kubernetes.io/zone", "az2"),
                L("topology.kubernetes.io/zone", "az1", "node-role.kubernetes.io/master", ""),
        };

        (void)state;
        /* m() compares every selector with its canonical form on each map. */
        for (size_t i = 0; i < ELEMENTSOF(sels); i++)
                for (size_t j = 0; j < ELEMENTSOF(maps); j++)
                        (void)m(sels[i], maps[j]);
}

static void test_errors(void **state)
{
        static const struct {
                const char *text;
                size_t column;
                const char *needle;
        } cases[] = {
                { "topology.kubernetes.io/zone == \"az1", 32, "unterminated string opened at column 32" },
                { "a == 'x", 6, "unterminated string" },
                { "\"FOO'", 1, "unterminated string" },
                { "a in {\"x\", 'y}", 12, "unterminated string" },
                { "a ==", 5, "expected a quoted string after '=='" },
                { "a !=   ", 5, "expected a quoted string after '!='" },
                { "a contains", 11, "quoted string after 'contains'" },
                { "a starts with", 14, "quoted string after 'starts with'" },
                { "a ends with (", 13, "expected a quoted string, found '('" },
                { "b == b", 6, "found label 'b'" },
                { "b contains b", 12, "found label 'b'" },
                { "a in", 5, "expected a set" },
                { "a in \"x\"", 6, "expected a set" },
                { "a in {\"x\"", 6, "'{' opened at column 6 is never closed" },
                { "a in {\"x\" \"y\"}", 11, "expected ',' or '}'" },
                { "a in {,}", 7, "expected a quoted string or '}'" },
                { "foo in {\"\", ||", 13, "expected a quoted string or '}'" },
                { "a", 2, "expected an operator" },
                { "a b", 3, "expected an operator" },
                { "a inx {}", 3, "expected an operator" },
                { "a containsx \"b\"", 3, "expected an operator" },
                { "a starts \"x\"", 3, "expected an operator" },
                { "a (", 3, "expected an operator" },
                { "'b1' == b", 1, "found string 'b1'" },
                { "!", 2, "after '!'" },
                { "has(foo) &&", 12, "after '&&'" },
                { "has(foo) ||  ", 12, "after '||'" },
                { "a == \"b\" && && c", 13, "found '&&'" },
                { "foo != ||", 8, "found '||'" },
                { "()", 2, "empty parentheses" },
                { "has(a) && ( )", 13, "empty parentheses" },
                { "(", 2, "after '('" },
                { "(a == \"foo\"", 1, "'(' opened at column 1 is never closed" },
                { "((has(a)) && (has(b)", 14, "'(' opened at column 14" },
                { "(a == \"b\" d)", 11, "expected ')', '&&' or '||'" },
                { ")", 1, "found ')'" },
                { "a == \"b\")", 9, "unmatched ')'" },
                { "a == \"b\" c", 10, "end of the selector" },
                { "has(a) has(b)", 8, "end of the selector" },
                { "%", 1, "unexpected character '%'" },
                { "a == \"b\" && %", 13, "unexpected character '%'" },
                { "a == \"b\" || #", 13, "unexpected character '#'" },
                { "zone == \"x\" && \xc3\xa9 == \"y\"", 16, "unexpected byte 0xc3" },
                { "a == \"b\"\n&& c == \"d\"", 9, "line break" },
                { "a = \"b\"", 3, "'=='" },
                { "foo == \"bar\" &", 14, "'&&'" },
                { "foo == \"bar\" |", 14, "'||'" },
                { "has(a", 6, "expected ')' to close has(a" },
                { "has(a/b c)", 9, "expected ')'" },
                { "has()", 5, "label name" },
                { "has( %)", 6, "label name" },
                { "has (a)", 5, "after label 'has'" },
                { "all(x)", 5, "expected ')' after all(" },
                { "global( x)", 9, "expected ')' after global(" },
                { "a == \"b\" && !", 14, "after '!'" },
        };

        (void)state;
        assert_true(ELEMENTSOF(cases) >= 25);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                check_error(cases[i].text, cases[i].column, cases[i].needle);
}

static void test_error_null_and_untouched(void **state)
{
        struct sel *s = NULL;
        struct sel_error e = { .column = 99 };

        (void)state;
        assert_int_equal(sel_compile("a ==", &s, NULL), -EINVAL);
        assert_null(s);
        /* A good compile leaves the error alone. */
        assert_int_equal(sel_compile("has(a)", &s, &e), 0);
        assert_int_equal(e.column, 99);
        sel_free(s);
        sel_free(NULL);
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
        size_t h = strlen(head), t = strlen(tail);
        char *s = malloc(h + n + t + 1);

        assert_non_null(s);
        memcpy(s, head, h);
        memset(s + h, c, n);
        memcpy(s + h + n, tail, t + 1);
        return s;
}

static void test_length_cap(void **state)
{
        /* `a == "xxx...x"`: 6 bytes of syntax plus the value. */
        char *ok = repeat("a == \"", 'x', SEL_MAX_LEN - 7, "\"");
        char *big = repeat("a == \"", 'x', SEL_MAX_LEN - 6, "\"");
        char *huge = repeat("", '(', 100000, "");
        char want[SEL_MAX_LEN];

        (void)state;
        assert_int_equal(strlen(ok), SEL_MAX_LEN);
        memset(want, 'x', SEL_MAX_LEN - 7);
        want[SEL_MAX_LEN - 7] = 0;
        assert_true(m(ok, L("a", want)));
        assert_int_equal(strlen(big), SEL_MAX_LEN + 1);
        check_error(big, SEL_MAX_LEN + 1, "longer than 4096 bytes");
        check_error(huge, SEL_MAX_LEN + 1, "longer than 4096 bytes");
        free(ok);
        free(big);
        free(huge);
}

static char *nested(unsigned depth, const char *open, const char *inner)
{
        size_t o = strlen(open), i = strlen(inner), n = 0;
        char *s = malloc(depth * (o + 1) + i + 1);

        assert_non_null(s);
        for (unsigned d = 0; d < depth; d++, n += o)
                memcpy(s + n, open, o);
        memcpy(s + n, inner, i);
        n += i;
        for (unsigned d = 0; d < depth; d++)
                s[n++] = ')';
        s[n] = 0;
        return s;
}

static void test_depth_cap(void **state)
{
        char *ok = nested(SEL_MAX_DEPTH, "(", "has(a)");
        char *deep = nested(SEL_MAX_DEPTH + 1, "(", "has(a)");
        char *neg_ok = nested(SEL_MAX_DEPTH, "!(", "has(a)");
        char *neg_deep = nested(SEL_MAX_DEPTH + 1, "!(", "has(a)");
        char *unclosed = repeat("", '(', SEL_MAX_LEN, "");

        (void)state;
        assert_true(m(ok, L("a", "")));
        check_error(deep, SEL_MAX_DEPTH + 1, "nested deeper than 64");
        /* 64 negations cancel out. */
        assert_true(m(neg_ok, L("a", "")));
        check_error(neg_deep, 2 * SEL_MAX_DEPTH + 2, "nested deeper than 64");
        check_error(unclosed, SEL_MAX_DEPTH + 1, "nested deeper than 64");
        free(ok);
        free(deep);
        free(neg_ok);
        free(neg_deep);
        free(unclosed);
}

static void test_label_cap(void **state)
{
        char *ok = repeat("", 'k', SEL_MAX_LABEL, " == \"v\"");
        char *long_label = repeat("", 'k', SEL_MAX_LABEL + 1, " == \"v\"");
        char *long_has = repeat("has(", 'k', SEL_MAX_LABEL + 1, ")");
        char key[SEL_MAX_LABEL + 1];

        (void)state;
        memset(key, 'k', SEL_MAX_LABEL);
        key[SEL_MAX_LABEL] = 0;
        assert_true(m(ok, L(key, "v")));
        check_error(long_label, 1, "longer than 512");
        check_error(long_has, 5, "longer than 512");
        free(ok);
        free(long_label);
        free(long_has);
}

static void test_many_terms(void **state)
{
        /* Long flat chains must not recurse per operand. */
        char text[SEL_MAX_LEN + 1];
        size_t n = 0;
        struct cfg_labels l = {};
        struct sel *s;

        (void)state;
        while (n + 12 < SEL_MAX_LEN)
                n += (size_t)snprintf(text + n, sizeof(text) - n, "%s!has(x%zu)", n ? "&&" : "", n % 97);
        s = compile_ok(text);
        assert_true(sel_match(s, &l));
        assert_int_equal(cfg_labels_set(&l, "x5", "1"), 0);
        cfg_labels_seal(&l);
        assert_false(sel_match(s, &l));
        sel_free(s);
        cfg_labels_clear(&l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_all_global_empty),
                cmocka_unit_test(test_eq),
                cmocka_unit_test(test_ne),
                cmocka_unit_test(test_in),
                cmocka_unit_test(test_not_in),
                cmocka_unit_test(test_large_set),
                cmocka_unit_test(test_contains),
                cmocka_unit_test(test_starts_with),
                cmocka_unit_test(test_ends_with),
                cmocka_unit_test(test_has),
                cmocka_unit_test(test_precedence),
                cmocka_unit_test(test_not_binding),
                cmocka_unit_test(test_parentheses),
                cmocka_unit_test(test_quotes),
                cmocka_unit_test(test_label_names),
                cmocka_unit_test(test_whitespace),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_format_truncation),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_error_null_and_untouched),
                cmocka_unit_test(test_length_cap),
                cmocka_unit_test(test_depth_cap),
                cmocka_unit_test(test_label_cap),
                cmocka_unit_test(test_many_terms),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
