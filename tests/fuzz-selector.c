/* libFuzzer target for config/selector.c: compile arbitrary text, and when it compiles,
 * evaluate it on fixed label maps and check that its canonical text compiles back to a
 * selector that formats the same and gives the same answers. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "selector.h"

static const char *const label_sets[][9] = {
        { "a", "1", "b", "x'y", "topology.kubernetes.io/zone", "az1", NULL },
        { "a", "", "c", "\"", "in", "in", "k8s-app", "kube-dns", NULL },
        { NULL },
};

static void build(struct cfg_labels *l, const char *const *kv)
{
        for (size_t i = 0; kv[i]; i += 2)
                if (cfg_labels_set(l, kv[i], kv[i + 1]) < 0)
                        abort();
        cfg_labels_seal(l);
}

static char *format_alloc(const struct sel *s)
{
        int n = sel_format(s, NULL, 0);
        char *buf = malloc((size_t)n + 1);

        if (n <= 0 || !buf || sel_format(s, buf, (size_t)n + 1) != n || strlen(buf) != (size_t)n)
                abort();
        return buf;
}

/* The canonical text must compile (unless it grew past the length cap: Calico's spacing and
 * double quotes can lengthen a terse selector), format identically and match identically. */
static void check_round_trip(const struct sel *s, struct cfg_labels *maps, size_t n_maps)
{
        char *canon = format_alloc(s), *canon2;
        struct sel *s2 = NULL;
        struct sel_error e;

        if (strlen(canon) > SEL_MAX_LEN) {
                free(canon);
                return;
        }
        if (sel_compile(canon, &s2, &e) != 0)
                abort();
        canon2 = format_alloc(s2);
        if (strcmp(canon, canon2) != 0 || sel_is_all(s) != sel_is_all(s2))
                abort();
        for (size_t i = 0; i < n_maps; i++)
                if (sel_match(s, &maps[i]) != sel_match(s2, &maps[i]))
                        abort();
        free(canon);
        free(canon2);
        sel_free(s2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct cfg_labels maps[sizeof(label_sets) / sizeof(label_sets[0])] = {};
        const size_t n_maps = sizeof(maps) / sizeof(maps[0]);
        struct sel_error e = {};
        struct sel *s = NULL;
        char *text;
        int r;

        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        r = sel_compile(text, &s, &e);
        if (r == 0) {
                for (size_t i = 0; i < n_maps; i++)
                        build(&maps[i], label_sets[i]);
                for (size_t i = 0; i < n_maps; i++) {
                        bool matched = sel_match(s, &maps[i]);

                        if (sel_is_all(s) && !matched)
                                abort();
                }
                check_round_trip(s, maps, n_maps);
                for (size_t i = 0; i < n_maps; i++)
                        cfg_labels_clear(&maps[i]);
                sel_free(s);
        } else if (r == -EINVAL) {
                /* The column is inside the text or just past its end (or past the cap). */
                size_t len = strlen(text);

                if (e.column < 1 || e.column > (len < SEL_MAX_LEN ? len : SEL_MAX_LEN) + 1)
                        abort();
                if (!memchr(e.message, 0, sizeof(e.message)) || !e.message[0])
                        abort();
        } else if (r != -ENOMEM)
                abort();
        free(text);
        return 0;
}
