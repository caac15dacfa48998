/* Unit tests for the Kubernetes source's object cache (the omap and its blocks in
 * daemon/source-kube.c, included here for its static functions): random puts,
 * replacements and deletes of objects small and large against a plain reference,
 * each lookup checked after every step, through many compactions (the garbage
 * threshold lowered so that they happen often). */
#define ARENA_COMPACT_MIN 4096
#include "../daemon/source-kube.c"

#include <setjmp.h>

#include <cmocka.h>

#define N_NAMES 300

static struct obj *make(const char *name, const char *json)
{
        size_t nl = strlen(name), jl = strlen(json);
        struct obj *o = calloc(1, sizeof(*o) + nl + jl + 2 + 8);

        assert_non_null(o);
        memcpy(o->name, name, nl + 1);
        memcpy(o->name + nl + 1, json, jl + 1);
        o->name_len = (uint16_t)nl;
        o->len = (uint32_t)jl;
        o->flags = 0;
        return o;
}

static void check(const struct omap *m, char *const *want)
{
        size_t n = 0;

        for (size_t i = 0; i < N_NAMES; i++) {
                char name[32];
                const struct obj *o;

                snprintf(name, sizeof(name), "obj-%zu", i);
                o = m->size ? m->slots[omap_find(m, name)] : NULL;
                if (!want[i]) {
                        assert_null(o);
                        continue;
                }
                assert_non_null(o);
                assert_string_equal(obj_json(o), want[i]);
                n++;
        }
        assert_int_equal(m->n, n);
}

static void random_operations(void **state)
{
        char *want[N_NAMES] = { 0 };
        struct omap m = {};
        unsigned seed = 12345, compactions = 0;
        size_t last_garbage = 0;

        (void)state;
        for (int step = 0; step < 20000; step++) {
                size_t i = (seed = seed * 1103515245 + 12345) % N_NAMES;
                unsigned op = (seed >> 16) % 3;
                char name[32];

                snprintf(name, sizeof(name), "obj-%zu", i);
                if (op < 2) {
                        /* Mostly small, now and then larger than a block's quarter. */
                        size_t len = (seed >> 8) % 50 == 0 ? ARENA_BLOCK / 2 + (seed % 100) : 10 + (seed >> 4) % 90;
                        char *json = malloc(len + 1);
                        struct obj *o;
                        int r;

                        assert_non_null(json);
                        memset(json, 'a' + step % 26, len);
                        json[len] = '\0';
                        o = make(name, json);
                        r = omap_put(&m, o);
                        assert_int_equal(r, !want[i] || !streq(want[i], json));
                        free(o);
                        free(want[i]);
                        want[i] = json;
                } else {
                        assert_int_equal(omap_del(&m, name), want[i] != NULL);
                        free(want[i]);
                        want[i] = NULL;
                }
                if (m.garbage < last_garbage)
                        compactions++;
                last_garbage = m.garbage;
                if (step % 97 == 0 || step > 19900)
                        check(&m, want);
                assert_true(m.garbage < ARENA_COMPACT_MIN || m.garbage <= m.live);
        }
        check(&m, want);
        assert_true(compactions > 10);
        omap_clear(&m);
        for (size_t i = 0; i < N_NAMES; i++)
                free(want[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(random_operations),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
