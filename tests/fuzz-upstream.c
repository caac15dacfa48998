/* libFuzzer target for daemon/upstream.c's reader of a previous JSON output (--since,
 * a file an operator or a job hands in): parse arbitrary bytes; when they parse, print
 * the change from them to nothing and from nothing to them in every syntax, and check
 * that their JSON form reads back to the same routes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"

static void same_routes(const struct upstream *a, const struct upstream *b)
{
        if (a->n_routes != b->n_routes)
                abort();
        for (size_t i = 0; i < a->n_routes; i++)
                if (!cfg_prefix_eq(&a->routes[i].dst, &b->routes[i].dst) ||
                    !cfg_prefix_eq(&a->routes[i].via, &b->routes[i].via) ||
                    strcmp(a->routes[i].node, b->routes[i].node) != 0 || a->routes[i].kind != b->routes[i].kind)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct upstream empty = {}, *u = NULL, *back = NULL;
        char why[512], *out;
        size_t len;

        if (upstream_parse_json((const char *)data, size, &u, why, sizeof(why)) < 0)
                return 0;
        for (int f = UPSTREAM_FMT_TEXT; f <= UPSTREAM_FMT_IP_BATCH; f++) {
                if (upstream_format(&empty, u, (enum upstream_format)f, &out, &len) < 0)
                        abort();
                free(out);
                if (upstream_format(u, &empty, (enum upstream_format)f, &out, &len) < 0)
                        abort();
                free(out);
        }
        if (upstream_format(u, NULL, UPSTREAM_FMT_JSON, &out, &len) < 0)
                abort();
        if (upstream_parse_json(out, len, &back, why, sizeof(why)) < 0)
                abort();
        same_routes(u, back);
        free(out);
        upstream_free(back);
        upstream_free(u);
        return 0;
}
