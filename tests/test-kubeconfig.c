/* Unit tests for the kubeconfig reader (config/kubeconfig.c): what kubectl writes
 * (token, token file, client certificates as paths or inline base64, several
 * contexts) into a struct cfg_kube, client-go's rules (relative paths, data over
 * file, the named context over current-context), and every refusal at its file, line
 * and column. No file is read: the documents are buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kubeconfig.h"

#define PATH "/etc/calico-underlay/kubeconfig"

/* A kubeconfig as kubectl writes one: two clusters, two users, three contexts. */
static const char kc_full[] =
        "apiVersion: v1\n"
        "kind: Config\n"
        "preferences: {}\n"
        "clusters:\n"
        "- name: prod\n"
        "  cluster:\n"
        "    server: https://10.0.0.1:6443/\n"
        "    certificate-authority: pki/ca.crt\n"
        "- name: lab\n"
        "  cluster:\n"
        "    server: https://lab.example:6443\n"
        "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n" /* 12 */
        "    tls-server-name: kubernetes.default\n"
        "users:\n"
        "- name: sa\n"
        "  user:\n"
        "    token: eyJhbGciOi.abc.def\n"
        "- name: cert\n"
        "  user:\n"
        "    client-certificate-data: Y2VydA==\n"
        "    client-key-data: a2V5\n"
        "- name: file\n"
        "  user:\n"
        "    tokenFile: /var/run/secrets/token\n"
        "contexts:\n"
        "- name: prod-sa\n"
        "  context:\n"
        "    cluster: prod\n"
        "    user: sa\n"
        "- name: lab-cert\n"
        "  context:\n"
        "    cluster: lab\n"
        "    user: cert\n"
        "    namespace: kube-system\n"
        "- name: prod-file\n"
        "  context: {cluster: prod, user: file}\n"
        "current-context: prod-sa\n";

static int parse(const char *text, const char *context, struct cfg_kube *ret, struct cfg_diags *d)
{
        return cfg_kubeconfig_parse(PATH, text, strlen(text), context, ret, d);
}

static struct cfg_kube parse_ok(const char *text, const char *context)
{
        struct cfg_diags d = {};
        struct cfg_kube k = {};

        if (parse(text, context, &k, &d) < 0) {
                for (size_t i = 0; i < d.n; i++)
                        fprintf(stderr, "%s:%u:%u: %s\n", d.v[i].file ? d.v[i].file : "", d.v[i].line, d.v[i].column,
                                d.v[i].message);
                fail_msg("refused");
        }
        cfg_diags_clear(&d);
        return k;
}

static void parse_bad(const char *text, const char *context, unsigned line, unsigned col, const char *needle)
{
        struct cfg_diags d = {};
        struct cfg_kube k = { .insecure = true };

        assert_int_equal(parse(text, context, &k, &d), -EINVAL);
        assert_true(k.insecure && !k.server); /* untouched */
        for (size_t i = 0; i < d.n; i++)
                if (d.v[i].severity == CFG_ERROR && d.v[i].line == line && d.v[i].column == col &&
                    strstr(d.v[i].message, needle)) {
                        assert_string_equal(d.v[i].file, PATH);
                        cfg_diags_clear(&d);
                        return;
                }
        for (size_t i = 0; i < d.n; i++)
                fprintf(stderr, "got %u:%u: %s\n", d.v[i].line, d.v[i].column, d.v[i].message);
        fail_msg("expected an error at %u:%u holding \"%s\"", line, col, needle);
}

static void current_context_token(void **state)
{
        struct cfg_kube k = parse_ok(kc_full, NULL);

        (void)state;
        assert_string_equal(k.context, "prod-sa");
        assert_string_equal(k.server, "https://10.0.0.1:6443"); /* no trailing slash */
        assert_string_equal(k.ca_file, "/etc/calico-underlay/pki/ca.crt"); /* from the file's folder */
        assert_null(k.ca_pem);
        assert_string_equal(k.token, "eyJhbGciOi.abc.def");
        assert_null(k.token_file);
        assert_null(k.cert_pem);
        assert_false(k.insecure);
        cfg_kube_clear(&k);
}

static void named_context_inline_cert(void **state)
{
        struct cfg_kube k = parse_ok(kc_full, "lab-cert"), copy;

        (void)state;
        assert_string_equal(k.context, "lab-cert");
        assert_string_equal(k.server, "https://lab.example:6443");
        assert_string_equal(k.ca_pem, "-----BEGIN CERTIFICATE-----\n");
        assert_null(k.ca_file);
        assert_string_equal(k.cert_pem, "cert");
        assert_string_equal(k.key_pem, "key");
        assert_string_equal(k.tls_server_name, "kubernetes.default");
        assert_null(k.token);
        assert_int_equal(cfg_kube_copy(&k, &copy), 0);
        assert_true(cfg_kube_eq(&k, &copy));
        free(copy.key_pem);
        copy.key_pem = strdup("other");
        assert_false(cfg_kube_eq(&k, &copy));
        cfg_kube_clear(&copy);
        cfg_kube_clear(&k);
        k = parse_ok(kc_full, "prod-file");
        assert_string_equal(k.token_file, "/var/run/secrets/token");
        assert_null(k.token);
        cfg_kube_clear(&k);
}

static void json_and_notices(void **state)
{
        static const char json[] =
                "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":"
                "\"https://[fd00::1]:6443\",\"certificate-authority\":\"/ca.crt\",\"certificate-authority-data\":"
                "\"Y2E=\"}}],\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"t\"}}],\"contexts\":[{\"name\":\"x\","
                "\"context\":{\"cluster\":\"c\",\"user\":\"u\"}}],\"current-context\":\"x\"}";
        struct cfg_diags d = {};
        struct cfg_kube k = {};

        (void)state;
        assert_int_equal(parse(json, NULL, &k, &d), 0);
        assert_string_equal(k.server, "https://[fd00::1]:6443");
        assert_string_equal(k.ca_pem, "ca"); /* the data wins, with a notice */
        assert_null(k.ca_file);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.n_errors, 0);
        assert_non_null(strstr(d.v[0].message, "certificate-authority-data is used"));
        cfg_kube_clear(&k);
        cfg_diags_clear(&d);
        /* A context without a user: anonymous, as client-go allows. */
        k = parse_ok("clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8080'}}]\n"
                     "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
                     NULL);
        assert_string_equal(k.server, "http://127.0.0.1:8080");
        assert_null(k.token);
        cfg_kube_clear(&k);
}

#define ONE(cluster, user)                                                                                      \
        "clusters:\n- name: c\n  cluster:\n" cluster "users:\n- name: u\n  user:\n" user                        \
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"

static void refusals(void **state)
{
        (void)state;
        parse_bad("apiVersion: v1\nkind: Config\nclusters: []\n", NULL, 1, 1, "no current-context");
        parse_bad(kc_full, "nope", 1, 1, "context \"nope\" is not in the kubeconfig");
        parse_bad("current-context: a\ncontexts: []\n", NULL, 1, 18, "context \"a\" is not in the kubeconfig");
        parse_bad("current-context: a\ncontexts:\n- name: a\n  context: {cluster: gone}\n", NULL, 4, 22,
                  "cluster \"gone\" is not in the kubeconfig");
        parse_bad("kind: Pod\n", NULL, 1, 7, "kind must be Config");
        parse_bad("apiVersion: v2\n", NULL, 1, 13, "apiVersion must be v1");
        parse_bad("- a\n", NULL, 1, 1, "must be a mapping");
        parse_bad(ONE("    server: https://h\n", "    token: t\n") "---\nb: 2\n", NULL, 14, 1, "a single document");
        parse_bad(ONE("    server: 10.0.0.1:6443\n", "    token: t\n"), NULL, 4, 13, "must start with https://");
        parse_bad(ONE("    server: https://\n", "    token: t\n"), NULL, 4, 13, "has no host");
        parse_bad(ONE("    server: https://u@h\n", "    token: t\n"), NULL, 4, 13, "without a query or user");
        parse_bad(ONE("    certificate-authority: /ca\n", "    token: t\n"), NULL, 4, 5, "cluster \"c\" has no server");
        parse_bad(ONE("    server: https://h\n    insecure-skip-tls-verify: true\n    certificate-authority: /ca\n",
                      "    token: t\n"),
                  NULL, 5, 31, "client-go refuses both");
        parse_bad(ONE("    server: https://h\n    certificate-authority-data: '!!notbase64'\n", "    token: t\n"),
                  NULL, 5, 33, "certificate-authority-data is not base64");
        parse_bad(ONE("    server: https://h\n    proxy-url: http://proxy:3128\n", "    token: t\n"), NULL, 5, 16,
                  "proxy-url is not supported");
        parse_bad(ONE("    server: https://h\n", "    exec:\n      command: aws\n"), NULL, 9, 7,
                  "user \"u\": exec is not supported");
        parse_bad(ONE("    server: https://h\n", "    username: admin\n    password: x\n"), NULL, 8, 15,
                  "username is not supported");
        parse_bad(ONE("    server: https://h\n", "    client-certificate: /c.crt\n"), NULL, 8, 5,
                  "user \"u\" has a client certificate without its key");
        parse_bad(ONE("    server: https://h\n", "    token: [a]\n"), NULL, 8, 12, "token must be a string");
        parse_bad(ONE("    server: https://h\n    insecure-skip-tls-verify: maybe\n", "    token: t\n"), NULL, 5, 31,
                  "insecure-skip-tls-verify must be true or false");
        parse_bad("", NULL, 0, 0, "the kubeconfig is empty");
}

static void base64_vectors(void **state)
{
        static const struct {
                const char *in, *out;
        } ok[] = { { "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" }, { "Zm9vYg", "foob" },
                   { "Zm9v\nYmFy\n", "foobar" } };
        static const char *const bad[] = { "Zm9v!", "Z===", "Zg==Zg", "Z" };
        char *out;
        size_t n;

        (void)state;
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                assert_int_equal(cfg_base64_decode(ok[i].in, strlen(ok[i].in), &out, &n), 0);
                assert_int_equal(n, strlen(ok[i].out));
                assert_string_equal(out, ok[i].out);
                free(out);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(cfg_base64_decode(bad[i], strlen(bad[i]), &out, &n), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(current_context_token),
                cmocka_unit_test(named_context_inline_cert),
                cmocka_unit_test(json_and_notices),
                cmocka_unit_test(refusals),
                cmocka_unit_test(base64_vectors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
