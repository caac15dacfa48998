/* Unit tests for how http.c applies a kubeconfig's tls-server-name
 * (server_name_url(), static in daemon/http.c, included here): the URL's host
 * replaced by the name (curl's SNI and certificate check), CURLOPT_CONNECT_TO still
 * to the URL's host and port (IPv4, IPv6 in brackets, the default port 443), the
 * Host header the URL's own; URLs it cannot rewrite refused. */
#include "../daemon/http.c"

#include <setjmp.h>

#include <cmocka.h>

static void rewrite(const char *url, const char *name, const char *want_url, const char *want_to,
                    const char *want_host)
{
        char *u = NULL, *to = NULL, *host = NULL;

        assert_int_equal(server_name_url(url, name, &u, &to, &host), 0);
        assert_string_equal(u, want_url);
        assert_string_equal(to, want_to);
        assert_string_equal(host, want_host);
        free(u);
        free(to);
        free(host);
}

static void rewritten(void **state)
{
        (void)state;
        rewrite("https://127.0.0.1:6443/api/v1/nodes?limit=500", "kube-api.cu.test",
                "https://kube-api.cu.test:6443/api/v1/nodes?limit=500", "kube-api.cu.test:6443:127.0.0.1:6443",
                "Host: 127.0.0.1:6443");
        rewrite("https://[fd00::1]/apis", "kubernetes.default", "https://kubernetes.default:443/apis",
                "kubernetes.default:443:[fd00::1]:443", "Host: [fd00::1]");
        rewrite("HTTPS://10.0.0.1:443?watch=1", "k", "https://k:443?watch=1", "k:443:10.0.0.1:443",
                "Host: 10.0.0.1:443");
        rewrite("https://api.example/", "fd00::2", "https://[fd00::2]:443/", "[fd00::2]:443:api.example:443",
                "Host: api.example");
}

static void refused(void **state)
{
        static const char *const bad[][2] = {
                { "http://127.0.0.1:8080/api", "k" },     /* not TLS */
                { "https://user@127.0.0.1/api", "k" },    /* userinfo */
                { "https://127.0.0.1:/api", "k" },        /* empty port */
                { "https://127.0.0.1:1234567/api", "k" }, /* not a port */
                { "https://[fd00::1/api", "k" },          /* unclosed bracket */
                { "https:///api", "k" },                  /* no host */
                { "https://127.0.0.1/api", "" },          /* no name */
                { "https://127.0.0.1/api", "a/b" },       /* not a host name */
        };
        char *u = NULL, *to = NULL, *host = NULL;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(server_name_url(bad[i][0], bad[i][1], &u, &to, &host), -EINVAL);
        assert_null(u);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(rewritten),
                cmocka_unit_test(refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
