/* The plain-JSON and plain-YAML readers of config/yamltree.c against libyaml: the same
 * bytes loaded through ydoc_load_buffer() (plain JSON read without libyaml), or through
 * ydoc_load_stream() with YDOC_REWINDS (plain block YAML read without libyaml), and
 * through ydoc_load_stream() alone (always libyaml) must give the same trees, the same
 * diagnostics and the same result.
 * Each tree and diagnostic is printed into a text; the texts are compared. Shared by
 * tests/test-yamljson.c and tests/fuzz-etcdkv.c. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

struct ydiff_text {
        char *s;
        size_t len;
        FILE *f;
};

static void ydiff_node(FILE *f, const struct ynode *n, unsigned depth)
{
        fprintf(f, "%*s%u:%u %u%s", (int)depth, "", n->line, n->col, n->kind, n->quoted ? " q" : "");
        if (n->kind == YN_SCALAR) {
                fprintf(f, " [%zu]", n->n);
                fwrite(n->str, 1, n->n, f);
                fputc('\n', f);
                return;
        }
        fprintf(f, " n=%zu\n", n->n);
        for (size_t i = 0; i < n->n; i++)
                if (n->kind == YN_SEQ)
                        ydiff_node(f, n->items[i], depth + 1);
                else {
                        ydiff_node(f, n->pairs[i].key, depth + 1);
                        ydiff_node(f, n->pairs[i].val, depth + 1);
                }
}

static int ydiff_on_resource(const struct ynode *n, void *userdata)
{
        ydiff_node(userdata, n, 0);
        return 0;
}

struct ydiff_reader {
        const char *p;
        size_t left;
        const char *start;
        size_t size;
        size_t chunk; /* at most this many bytes a read (0: as many as asked) */
};

static int ydiff_read(void *ctx, void *buf, size_t size, size_t *ret_n)
{
        struct ydiff_reader *r = ctx;
        size_t n = size < r->left ? size : r->left;

        if (r->chunk && n > r->chunk)
                n = r->chunk;
        if (!buf && !size) { /* YDOC_REWINDS */
                r->p = r->start;
                r->left = r->size;
                return 0;
        }
        memcpy(buf, r->p, n);
        r->p += n;
        r->left -= n;
        *ret_n = n;
        return 0;
}

/* The text of one load: its result, trees and diagnostics; NULL without memory. */
static char *ydiff_load(const char *buf, size_t size, unsigned flags, bool stream, size_t chunk)
{
        struct cfg_diags d = {};
        struct ydiff_reader rd = { buf, size, buf, size, chunk };
        char *s = NULL, line[1024];
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);
        int r;

        if (!f)
                return NULL;
        r = stream || (flags & YDOC_REWINDS)
                    ? ydoc_load_stream("doc", ydiff_read, &rd, flags, ydiff_on_resource, f, &d)
                   : ydoc_load_buffer("doc", buf, size, flags, ydiff_on_resource, f, &d);
        fprintf(f, "result %d\n", r);
        for (size_t i = 0; i < d.n; i++) {
                cfg_diag_fmt(&d.v[i], line, sizeof(line));
                fprintf(f, "diag %s\n", line);
        }
        cfg_diags_clear(&d);
        fclose(f);
        return s;
}

/* 0 when both readers agree; else -EPROTO with both texts in *ret_a and *ret_b (the
 * caller frees them). A rewinding stream is also read in short pieces (1 to 13 bytes a
 * read, by the input's size), against libyaml reading the same pieces: lines cut
 * anywhere must give the same. (Not against libyaml's whole read: before an error
 * further on, libyaml hands over what it parsed from the pieces read so far, and
 * nothing when one read brought the error's bytes; a load with an error fails whole.) */
static int ydiff(const char *buf, size_t size, unsigned flags, char **ret_a, char **ret_b)
{
        char *a = ydiff_load(buf, size, flags, false, 0), *b = ydiff_load(buf, size, flags & ~YDOC_REWINDS, true, 0);

        if (a && b && strcmp(a, b) == 0 && (flags & YDOC_REWINDS)) {
                size_t chunk = 1 + size % 13;

                free(a);
                free(b);
                a = ydiff_load(buf, size, flags, false, chunk);
                b = ydiff_load(buf, size, flags & ~YDOC_REWINDS, true, chunk);
        }
        if (!a || !b || strcmp(a, b) == 0) {
                free(a);
                free(b);
                return 0;
        }
        *ret_a = a;
        *ret_b = b;
        return -EPROTO;
}
