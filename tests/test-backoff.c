/* Unit tests for the datastore clients' retry delay (http_failover_* in
 * daemon/http.c), which the etcd and Kubernetes sources share: it doubles from the
 * minimum up to the cap, each delay drawn from 80-120% of its step; a success resets
 * it; a stream that broke before it was up for HTTP_HEALTHY_USEC keeps backing off,
 * one that stayed up that long starts small again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "http.h"

#define S (1000 * 1000ULL)

static struct http_failover fo(void)
{
        return (struct http_failover){ .n = 1, .min_usec = 1 * S, .max_usec = 30 * S };
}

static void doubles_up_to_the_cap_jittered(void **state)
{
        static const uint64_t steps[] = { 1, 2, 4, 8, 16, 30, 30, 30 };
        struct http_failover f = fo();
        bool varied = false;
        uint64_t first = 0;

        (void)state;
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                uint64_t d = http_failover_backoff(&f);

                assert_int_equal(f.retry_usec, steps[i] * S);
                assert_in_range(d, steps[i] * S * 80 / 100, steps[i] * S * 120 / 100);
        }
        /* Jittered: over many draws at one step, not always the same delay. */
        for (int i = 0; i < 200 && !varied; i++) {
                struct http_failover g = fo();
                uint64_t d = http_failover_backoff(&g);
                struct timespec ts = { 0, 1000 * 37 };

                if (!first)
                        first = d;
                varied = d != first;
                nanosleep(&ts, NULL);
        }
        assert_true(varied);
}

static void reset_by_success_or_a_healthy_stream_only(void **state)
{
        struct http_failover f = fo();
        uint64_t t = 1000 * S;

        (void)state;
        http_failover_backoff(&f);
        http_failover_backoff(&f);
        http_failover_ok(&f);
        http_failover_backoff(&f);
        assert_int_equal(f.retry_usec, 1 * S);
        /* A stream up for less than the healthy while: the back-off goes on. */
        http_failover_up(&f, t);
        assert_int_not_equal(http_failover_down(&f, t + HTTP_HEALTHY_USEC - 1), 0);
        assert_int_equal(f.retry_usec, 2 * S);
        http_failover_up(&f, t);
        http_failover_down(&f, t + 5 * S);
        assert_int_equal(f.retry_usec, 4 * S);
        /* Up for the healthy while: at once, and small again after. */
        http_failover_up(&f, t);
        assert_int_equal(http_failover_down(&f, t + HTTP_HEALTHY_USEC), 0);
        assert_int_equal(f.retry_usec, 0);
        http_failover_backoff(&f);
        assert_int_equal(f.retry_usec, 1 * S);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(doubles_up_to_the_cap_jittered),
                cmocka_unit_test(reset_by_success_or_a_healthy_stream_only),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
