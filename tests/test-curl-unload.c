/* Unit tests for unloading libcurl after a one-shot run's list (http_unload(),
 * daemon/http.c; cu_curl_unload(), daemon/curl-dl.c): it stays while a client has it
 * started, goes (with the libraries it brought: gone from /proc/self/maps) once the
 * last client is freed, and a later client loads it again and can use it. Skipped (77)
 * where libcurl.so.4 is not installed. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include <cmocka.h>

#include "curl-dl.h"
#include "http.h"

static bool mapped(const char *name)
{
        char line[4096];
        bool found = false;
        FILE *f = fopen("/proc/self/maps", "re");

        assert_non_null(f);
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, name) != NULL;
        fclose(f);
        return found;
}

static struct http *started(sd_event *ev)
{
        struct http *h = NULL;
        char why[512] = "";

        assert_int_equal(http_new(ev, &h), 0);
        assert_int_equal(http_start(h, why, sizeof(why)), 0);
        assert_non_null(cu_curl);
        return h;
}

static void unloaded_after_the_last_client(void **state)
{
        sd_event *ev = NULL;
        struct http *a, *b;
        CURL *easy;

        (void)state;
        assert_int_equal(sd_event_new(&ev), 0);
        a = started(ev);
        b = started(ev);
        assert_true(mapped("libcurl.so.4"));
        /* Clients left: nothing goes. */
        http_unload();
        assert_non_null(cu_curl);
        http_free(a);
        http_unload();
        assert_non_null(cu_curl);
        assert_true(mapped("libcurl.so.4"));
        http_free(b);
        http_unload();
        assert_null(cu_curl);
        assert_int_equal(mapped("libcurl.so.4"), !CU_CURL_UNLOAD_UNMAPS);
        /* Twice is nothing. */
        http_unload();
        assert_null(cu_curl);
        /* Loaded again by the next client, and usable. */
        a = started(ev);
        assert_true(mapped("libcurl.so.4"));
        easy = cu_curl->easy_init();
        assert_non_null(easy);
        assert_int_equal(cu_curl->easy_setopt(easy, CURLOPT_URL, "https://127.0.0.1:1/"), CURLE_OK);
        cu_curl->easy_cleanup(easy);
        http_free(a);
        http_unload();
        assert_int_equal(mapped("libcurl.so.4"), !CU_CURL_UNLOAD_UNMAPS);
        sd_event_unref(ev);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(unloaded_after_the_last_client),
        };
        char why[512];

        if (cu_curl_load(why, sizeof(why)) < 0) {
                printf("test-curl-unload: %s; skipped\n", why);
                return 77;
        }
        cu_curl_unload();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
