/* libyaml events → node trees in an arena, one resource at a time.
 *
 * Owns: the libyaml parser, the node arena, and two readers of plain subsets (JSON,
 * and the block YAML kubectl prints) that give libyaml's events without libyaml.
 * Must never: interpret what a node means (that is resources.c / settings.c), keep a
 * tree alive after its callback, or expand aliases (Kubernetes and Calico never print
 * them; refusing them also rules out "billion laughs" inputs). */
#include "yamltree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

/* ---- arena: chunked bump allocator with mark/release ---- */

struct chunk {
        struct chunk *prev;
        size_t used, size;
        _Alignas(max_align_t) unsigned char data[];
};

struct arena {
        struct chunk *top;
};

struct arena_mark {
        struct chunk *chunk;
        size_t used;
};

#define ARENA_CHUNK (64u << 10)

static void *arena_alloc(struct arena *a, size_t size)
{
        struct chunk *c = a->top;
        size_t need = (size + 15) & ~(size_t)15;

        if (!c || c->size - c->used < need) {
                size_t sz = need > ARENA_CHUNK ? need : ARENA_CHUNK;

                c = malloc(sizeof(*c) + sz);
                if (!c)
                        return NULL;
                c->prev = a->top;
                c->used = 0;
                c->size = sz;
                a->top = c;
        }
        c->used += need;
        return c->data + c->used - need;
}

static struct arena_mark arena_mark(const struct arena *a)
{
        return (struct arena_mark){ .chunk = a->top, .used = a->top ? a->top->used : 0 };
}

static void arena_release(struct arena *a, struct arena_mark m)
{
        while (a->top && a->top != m.chunk) {
                struct chunk *prev = a->top->prev;

                free(a->top);
                a->top = prev;
        }
        if (a->top)
                a->top->used = m.used;
}

static void arena_free(struct arena *a)
{
        arena_release(a, (struct arena_mark){});
}

/* ---- builder ---- */

/* A stream's reader with a cap: a file that grows, or is not a regular file (a symlink
 * to /dev/zero), stops at YDOC_MAX_FILE_SIZE like one whose size says so. */
struct capped_stream {
        ydoc_read_fn read;
        void *ctx;
        size_t total;
        bool over;
        int error; /* the reader's -errno */
};

struct frame {
        struct ynode *node;
        size_t first; /* index of this collection's first child on the value stack */
        bool is_items; /* the `items` sequence of a root mapping: children are streamed */
        struct arena_mark item_mark;
};

struct builder {
        const char *file;
        struct cfg_diags *diags;
        ydoc_resource_fn fn;
        void *userdata;
        struct arena arena;
        struct frame stack[YDOC_MAX_DEPTH + 1];
        unsigned depth;
        struct ynode **vals; /* children of open collections, in order */
        size_t n_vals, cap_vals;
        bool streamed; /* this document's items were handed out already */
        bool list_items; /* YDOC_LIST_ITEMS */
        bool hold_root;  /* keep a document's root in held instead of handing it over */
        bool no_nul;     /* plain JSON: its scalars hold no NUL (checked as it is read) */
        struct ynode *held;
        const struct capped_stream *input; /* NULL for a buffer */
};

static struct ynode *node_new(struct builder *b, enum ynode_kind kind, const yaml_event_t *e)
{
        struct ynode *n = arena_alloc(&b->arena, sizeof(*n));

        if (!n)
                return NULL;
        *n = (struct ynode){
                .kind = kind,
                .line = (uint32_t)e->start_mark.line + 1,
                .col = (uint32_t)e->start_mark.column + 1,
        };
        return n;
}

static bool is_items_key(const struct builder *b)
{
        /* Depth 1 = inside the root mapping; the last value pushed is the pending key
         * when the number of pushed children is odd. */
        const struct frame *f = &b->stack[0];
        const struct ynode *key;

        if (!b->list_items || b->depth != 1 || f->node->kind != YN_MAP || (b->n_vals - f->first) % 2 != 1)
                return false;
        key = b->vals[b->n_vals - 1];
        return key->kind == YN_SCALAR && streq(key->str, "items");
}

static int push_value(struct builder *b, struct ynode *n)
{
        if (b->depth == 0) {
                /* A complete document root. */
                if (b->streamed || ynode_is_null(n))
                        return 0;
                if (b->hold_root) {
                        b->held = n;
                        return 0;
                }
                return b->fn(n, b->userdata);
        }
        if (b->stack[b->depth - 1].is_items) {
                struct frame *f = &b->stack[b->depth - 1];
                int r = ynode_is_null(n) ? 0 : b->fn(n, b->userdata);

                arena_release(&b->arena, f->item_mark);
                return r;
        }
        if (GROW(b->vals, b->cap_vals, b->n_vals + 1) < 0)
                return -ENOMEM;
        b->vals[b->n_vals++] = n;
        return 0;
}

static int open_collection(struct builder *b, enum ynode_kind kind, const yaml_event_t *e)
{
        struct ynode *n;
        bool items;

        if (b->depth >= YDOC_MAX_DEPTH)
                return cfg_error(b->diags, b->file, (unsigned)e->start_mark.line + 1,
                                 (unsigned)e->start_mark.column + 1, "YAML nesting deeper than %d levels",
                                 YDOC_MAX_DEPTH);
        /* Streamed like `items`: a List's items, and a root sequence, which is how
         * calicoctl prints several results (calicoctl/calicoctl/commands/common/printer.go,
         * ResourcePrinterYAML: one result alone, else the slice of them). */
        items = kind == YN_SEQ && (is_items_key(b) || (b->list_items && b->depth == 0));
        n = node_new(b, kind, e);
        if (!n)
                return -ENOMEM;
        b->stack[b->depth++] = (struct frame){
                .node = n,
                .first = b->n_vals,
                .is_items = items,
                .item_mark = arena_mark(&b->arena),
        };
        if (items)
                b->streamed = true;
        return 0;
}

static int check_duplicate_keys(struct builder *b, const struct ynode *map)
{
        /* Maps in Calico resources are small; labels and annotations rarely exceed a few
         * dozen keys. Input controls n, so bound the quadratic check. */
        if (map->n > YDOC_MAX_MAP_KEYS)
                return cfg_error(b->diags, b->file, map->line, map->col, "mapping with more than %u keys",
                                 YDOC_MAX_MAP_KEYS);
        /* Every key is known to be a scalar before its text is read: a sequence or a
         * mapping has no string to compare (its union member is a pointer array). */
        for (size_t i = 0; i < map->n; i++) {
                const struct ynode *k = map->pairs[i].key;

                if (k->kind != YN_SCALAR)
                        return cfg_error(b->diags, b->file, k->line, k->col, "mapping keys must be scalars");
                for (size_t j = 0; j < i; j++)
                        if (map->pairs[j].key->n == k->n && !memcmp(map->pairs[j].key->str, k->str, k->n))
                                return cfg_error(b->diags, b->file, k->line, k->col,
                                                 "duplicate key \"%s\" (first at line %u)", k->str,
                                                 map->pairs[j].key->line);
        }
        return 0;
}

static int close_collection(struct builder *b)
{
        struct frame *f = &b->stack[--b->depth];
        struct ynode *n = f->node;
        size_t count = b->n_vals - f->first;

        if (f->is_items) {
                n->n = 0;
                n->items = NULL;
        } else if (n->kind == YN_SEQ) {
                n->n = count;
                n->items = arena_alloc(&b->arena, count * sizeof(*n->items) + 1);
                if (!n->items)
                        return -ENOMEM;
                if (count) /* b->vals is still NULL before the first value (`[]` first) */
                        memcpy(n->items, b->vals + f->first, count * sizeof(*n->items));
        } else {
                n->n = count / 2;
                n->pairs = arena_alloc(&b->arena, n->n * sizeof(*n->pairs) + 1);
                if (!n->pairs)
                        return -ENOMEM;
                for (size_t i = 0; i < n->n; i++)
                        n->pairs[i] = (struct ypair){ b->vals[f->first + 2 * i], b->vals[f->first + 2 * i + 1] };
                if (check_duplicate_keys(b, n) < 0)
                        return -EINVAL;
        }
        b->n_vals = f->first;
        return push_value(b, n);
}

static int on_scalar(struct builder *b, const yaml_event_t *e)
{
        struct ynode *n = node_new(b, YN_SCALAR, e);
        char *s;

        if (!n)
                return -ENOMEM;
        if (e->data.scalar.length > YDOC_MAX_SCALAR)
                return cfg_error(b->diags, b->file, n->line, n->col, "YAML scalar longer than %u bytes",
                                 YDOC_MAX_SCALAR);
        s = arena_alloc(&b->arena, e->data.scalar.length + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, e->data.scalar.value, e->data.scalar.length);
        s[e->data.scalar.length] = 0;
        /* libyaml refuses control characters in its input ("control characters are not
         * allowed"): a NUL comes only from an escape, which only a double-quoted scalar
         * has; the others are not looked at (3% of a large list's load). */
        if (!b->no_nul && e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE &&
            strlen(s) != e->data.scalar.length)
                return cfg_error(b->diags, b->file, n->line, n->col, "NUL character in a YAML scalar");
        n->str = s;
        n->n = e->data.scalar.length;
        /* `!!str 28` is the string "28", as `"28"` is: never a number, bool or null. */
        n->quoted = e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                    (e->data.scalar.tag && streq((const char *)e->data.scalar.tag, YAML_STR_TAG));
        return push_value(b, n);
}

static int too_large(const char *path, struct cfg_diags *diags)
{
        cfg_error(diags, path, 0, 0, "larger than %u MiB: not read", YDOC_MAX_FILE_SIZE >> 20);
        return -EFBIG;
}

static int syntax_error(struct builder *b, const yaml_parser_t *p)
{
        const char *problem = p->problem ? p->problem : "unknown error";

        if (p->error == YAML_MEMORY_ERROR)
                return -ENOMEM;
        if (b->input && b->input->over)
                return too_large(b->file, b->diags);
        if (p->error == YAML_READER_ERROR)
                return cfg_error(b->diags, b->file, 0, 0, "YAML reader error: %s at byte %zu", problem,
                                 p->problem_offset);
        if (p->context)
                return cfg_error(b->diags, b->file, (unsigned)p->problem_mark.line + 1,
                                 (unsigned)p->problem_mark.column + 1,
                                 "YAML syntax error: %s %s (opened at line %u, column %u)", p->context, problem,
                                 (unsigned)p->context_mark.line + 1, (unsigned)p->context_mark.column + 1);
        return cfg_error(b->diags, b->file, (unsigned)p->problem_mark.line + 1,
                         (unsigned)p->problem_mark.column + 1, "YAML syntax error: %s", problem);
}

static int on_event(struct builder *b, const yaml_event_t *e)
{
        switch (e->type) {
        case YAML_DOCUMENT_START_EVENT:
                b->streamed = false;
                b->depth = 0;
                b->n_vals = 0;
                return 0;
        case YAML_DOCUMENT_END_EVENT:
                arena_release(&b->arena, (struct arena_mark){});
                return 0;
        case YAML_ALIAS_EVENT:
                return cfg_error(b->diags, b->file, (unsigned)e->start_mark.line + 1,
                                 (unsigned)e->start_mark.column + 1, "YAML aliases are not supported");
        case YAML_SCALAR_EVENT:
                return on_scalar(b, e);
        case YAML_SEQUENCE_START_EVENT:
                return open_collection(b, YN_SEQ, e);
        case YAML_MAPPING_START_EVENT:
                return open_collection(b, YN_MAP, e);
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                return close_collection(b);
        default:
                return 0;
        }
}

static int run_parser(struct builder *b, yaml_parser_t *p)
{
        yaml_event_t e;
        int r = 0;

        for (;;) {
                if (!yaml_parser_parse(p, &e)) {
                        r = syntax_error(b, p);
                        break;
                }
                if (e.type == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&e);
                        break;
                }
                r = on_event(b, &e);
                yaml_event_delete(&e);
                if (r < 0)
                        break;
        }
        arena_free(&b->arena);
        free(b->vals);
        return r;
}

/* ---- plain JSON without libyaml ----
 *
 * etcd's values and the Kubernetes API's objects are JSON, which is YAML: libyaml reads
 * each at about a microsecond a node, most of it spent setting up and tearing down the
 * parser (100k IPAM blocks: seconds). A document in the plain subset of JSON below is
 * read here instead, into the same events the builder takes from libyaml, with the
 * positions libyaml gives (the start of each node, 1-based; columns are bytes, the text
 * being ASCII): the same tree, the same errors. The subset: one object or array, spaces
 * and line feeds between tokens, strings of printable ASCII without escapes, numbers as
 * JSON writes them, true, false, null. Anything else (an escape, a tab, UTF-8, a comment,
 * a syntax error, nesting past YDOC_MAX_DEPTH) is left to libyaml, which reads it as it
 * always did, errors included: a first pass checks the whole document before anything is
 * built. */

struct jscan {
        struct builder *b; /* NULL: only check */
        const char *p, *end;
        uint32_t line, col; /* 0-based, as libyaml's marks */
        unsigned depth;
        int r; /* the builder's first failure */
};

static void js_space(struct jscan *s)
{
        for (; s->p < s->end && (*s->p == ' ' || *s->p == '\n'); s->p++)
                if (*s->p == '\n') {
                        s->line++;
                        s->col = 0;
                } else
                        s->col++;
}

static bool js_emit(struct jscan *s, yaml_event_type_t type, const char *value, size_t len, bool quoted)
{
        yaml_event_t e = { .type = type };

        if (!s->b)
                return true;
        e.start_mark.line = s->line;
        e.start_mark.column = s->col;
        if (type == YAML_SCALAR_EVENT) {
                e.data.scalar.value = (yaml_char_t *)value;
                e.data.scalar.length = len;
                e.data.scalar.style = quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE;
        }
        s->r = on_event(s->b, &e);
        return s->r >= 0;
}

static bool js_advance(struct jscan *s, size_t n)
{
        s->p += n;
        s->col += (uint32_t)n;
        return true;
}

static bool js_string(struct jscan *s)
{
        const char *q = s->p + 1;

        while (q < s->end && *q != '"') {
                if (*q == '\\' || (unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
                        return false;
                q++;
        }
        if (q == s->end)
                return false;
        return js_emit(s, YAML_SCALAR_EVENT, s->p + 1, (size_t)(q - s->p - 1), true) &&
               js_advance(s, (size_t)(q - s->p) + 1);
}

static size_t js_digits(const char *p, const char *end)
{
        size_t n = 0;

        while (p + n < end && p[n] >= '0' && p[n] <= '9')
                n++;
        return n;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static size_t js_number(const char *p, const char *end)
{
        size_t n = p < end && *p == '-', d;

        if (!(d = js_digits(p + n, end)) || (d > 1 && p[n] == '0'))
                return 0;
        n += d;
        if (p + n < end && p[n] == '.') {
                if (!(d = js_digits(p + n + 1, end)))
                        return 0;
                n += 1 + d;
        }
        if (p + n < end && (p[n] == 'e' || p[n] == 'E')) {
                size_t sign = p + n + 1 < end && (p[n + 1] == '+' || p[n + 1] == '-');

                if (!(d = js_digits(p + n + 1 + sign, end)))
                        return 0;
                n += 1 + sign + d;
        }
        return n;
}

static bool js_ends_word(char c)
{
        return c == ' ' || c == '\n' || c == ',' || c == ']' || c == '}';
}

static bool js_word(struct jscan *s)
{
        static const char *const words[] = { "true", "false", "null" };
        size_t n = js_number(s->p, s->end);

        for (size_t i = 0; !n && i < ELEMENTSOF(words); i++)
                if ((size_t)(s->end - s->p) >= strlen(words[i]) && !memcmp(s->p, words[i], strlen(words[i])))
                        n = strlen(words[i]);
        /* What follows must end the scalar as it ends a plain one in a flow collection. */
        if (!n || (s->p + n < s->end && !js_ends_word(s->p[n])))
                return false;
        return js_emit(s, YAML_SCALAR_EVENT, s->p, n, false) && js_advance(s, n);
}

static bool js_value(struct jscan *s);

/* { "key": value, ... } or [ value, ... ] */
static bool js_collection(struct jscan *s, bool map)
{
        char close = map ? '}' : ']';

        if (++s->depth > YDOC_MAX_DEPTH)
                return false;
        if (!js_emit(s, map ? YAML_MAPPING_START_EVENT : YAML_SEQUENCE_START_EVENT, NULL, 0, false))
                return false;
        js_advance(s, 1);
        js_space(s);
        if (s->p < s->end && *s->p == close)
                goto end;
        for (;;) {
                if (map) {
                        const char *key = s->p;
                        uint32_t line = s->line;

                        if (s->p == s->end || *s->p != '"' || !js_string(s))
                                return false;
                        js_space(s);
                        /* YAML's implicit keys end on their line, within 1024 characters:
                         * libyaml reads anything else otherwise. */
                        if (s->p == s->end || *s->p != ':' || s->line != line || s->p - key > 1000)
                                return false;
                        js_advance(s, 1);
                        js_space(s);
                }
                if (!js_value(s))
                        return false;
                js_space(s);
                if (s->p < s->end && *s->p == ',') {
                        js_advance(s, 1);
                        js_space(s);
                        continue;
                }
                if (s->p < s->end && *s->p == close)
                        break;
                return false;
        }
end:
        s->depth--;
        return js_emit(s, map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT, NULL, 0, false) &&
               js_advance(s, 1);
}

static bool js_value(struct jscan *s)
{
        if (s->p == s->end)
                return false;
        if (*s->p == '{' || *s->p == '[')
                return js_collection(s, *s->p == '{');
        if (*s->p == '"')
                return js_string(s);
        return js_word(s);
}

/* The whole document: a collection, spaces around it. */
static bool js_document(struct jscan *s)
{
        js_space(s);
        if (s->p == s->end || (*s->p != '{' && *s->p != '['))
                return false;
        if (!js_emit(s, YAML_DOCUMENT_START_EVENT, NULL, 0, false) || !js_value(s))
                return false;
        js_space(s);
        return s->p == s->end;
}

/* 1: read here (*ret the builder's result), 0: not plain JSON, for libyaml.
 *
 * Without YDOC_LIST_ITEMS the builder hands over only the root, which it holds here
 * until the whole text proved plain JSON: the text is read in one pass, and what was
 * built is dropped when it turns out not to be. The builder's own errors (a duplicate
 * key, a scalar over the cap) are kept apart meanwhile: libyaml reports them only if
 * nothing else comes first, and its scanner looks ahead (after a closing brace it reads
 * on to see whether the collection was a key), so a syntax error just after a
 * duplicate key is what libyaml says. Such an error stands only when the whole text is
 * plain JSON (checked again then). With YDOC_LIST_ITEMS, items go out as they close:
 * the whole text is checked first. */
static int load_plain_json(struct builder *b, const char *buf, size_t size, int *ret)
{
        struct jscan check = { .p = buf, .end = buf + size }, build = check;
        struct cfg_diags mine = {}, *theirs = b->diags;
        bool plain;

        if (b->list_items && !js_document(&check))
                return 0;
        build.b = b;
        b->hold_root = b->no_nul = true;
        b->diags = &mine;
        plain = js_document(&build);
        b->diags = theirs;
        b->hold_root = b->no_nul = false;
        if (build.r < 0 && build.r != -ENOMEM && !b->list_items)
                plain = js_document(&check);
        if (plain && build.r >= 0 && b->held)
                build.r = b->fn(b->held, b->userdata);
        b->held = NULL;
        arena_free(&b->arena);
        b->n_vals = 0;
        b->depth = 0;
        if (!plain && build.r != -ENOMEM) {
                cfg_diags_clear(&mine);
                return 0; /* nothing was handed over */
        }
        for (size_t i = 0; i < mine.n; i++)
                cfg_diag_add(theirs, mine.v[i].severity, mine.v[i].file, mine.v[i].line, mine.v[i].column, "%s",
                             mine.v[i].message);
        cfg_diags_clear(&mine);
        free(b->vals);
        b->vals = NULL;
        *ret = build.r;
        return 1;
}

/* ---- kubectl's block YAML without libyaml ----
 *
 * A large exported List (`kubectl get blockaffinities -o yaml`: 100k items are 44 MB)
 * costs libyaml about 5 µs an item; the files source reads such a file again on every
 * change (issue 16). A stream whose reader can start again (YDOC_REWINDS) is first
 * checked against the plain subset of block YAML below, piece by piece; when all of it
 * is in the subset, it is read again and turned into the events libyaml would give (the
 * same starts, 1-based lines and columns, quoting): the same trees, the same errors.
 * Anything else is read by libyaml from the first byte, as it always was: nothing has
 * been handed over by then. The subset, one construct a line:
 *   - printable ASCII and line feeds only (no tab, CR, UTF-8, BOM, NUL);
 *   - blank lines and lines whose first non-space is `#` (comments);
 *   - `KEY: VALUE`, `KEY:` followed by a more indented block or, for a sequence, by
 *     `- ` at the key's own column, `- KEY: VALUE`/`- KEY:` (a mapping in a sequence),
 *     `- VALUE`, each part separated by exactly one space and nothing after VALUE;
 *   - KEY a plain scalar, VALUE a plain scalar or a one-line quoted one; a plain scalar
 *     starts with a letter, digit, `_` or `/` and holds only letters, digits and
 *     `._/-+=@`, and `:` when one of those or another `:` follows; a single-quoted
 *     scalar holds no `'`, a double-quoted one no `"` or `\`;
 *   - one document, a mapping or a sequence at column 1; no line over 64 KiB.
 * Not in it (libyaml's): flow collections (`{}`), empty values, multi-line scalars,
 * escapes, anchors, tags, directives, `---`, comments after a value. */

#define YS_BUF (64u << 10) /* under malloc's mmap threshold (main.c): a small file costs no mmap */
#define YS_MAX_KEY 1000 /* libyaml: a simple key is at most 1024 characters */

struct yopen {
        uint32_t indent; /* 0-based column of its entries */
        uint8_t kind;
        bool indentless; /* a sequence at its key's column */
};

struct yscan {
        struct builder *b; /* NULL: only check */
        struct yopen open[YDOC_MAX_DEPTH + 1];
        unsigned depth;
        bool pending; /* after `KEY:`: its block comes on the next line */
        bool started;
        uint32_t line; /* 0-based */
        int r;         /* the builder's first failure */
};

static bool ys_emit(struct yscan *s, yaml_event_type_t type, uint32_t col, const char *value, size_t len,
                    char quote)
{
        yaml_event_t e = { .type = type };

        if (!s->b)
                return true;
        e.start_mark.line = s->line;
        e.start_mark.column = col;
        if (type == YAML_SCALAR_EVENT) {
                e.data.scalar.value = (yaml_char_t *)value;
                e.data.scalar.length = len;
                e.data.scalar.style = quote == '"'    ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                      : quote == '\'' ? YAML_SINGLE_QUOTED_SCALAR_STYLE
                                                      : YAML_PLAIN_SCALAR_STYLE;
        }
        s->r = on_event(s->b, &e);
        return s->r >= 0;
}

static bool ys_open(struct yscan *s, enum ynode_kind kind, uint32_t col, bool indentless)
{
        if (s->depth >= YDOC_MAX_DEPTH)
                return false; /* libyaml's, with the builder's error */
        s->open[s->depth++] = (struct yopen){ .indent = col, .kind = (uint8_t)kind, .indentless = indentless };
        s->started = true;
        return ys_emit(s, kind == YN_SEQ ? YAML_SEQUENCE_START_EVENT : YAML_MAPPING_START_EVENT, col, NULL, 0,
                       0);
}

static bool ys_close(struct yscan *s)
{
        enum ynode_kind kind = s->open[--s->depth].kind;

        return ys_emit(s, kind == YN_SEQ ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT, 0, NULL, 0, 0);
}

static bool ys_plain_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '/' || c == '-' || c == '+' || c == '=' || c == '@';
}

/* The length of the plain scalar at p (0: none): up to a `:` that no plain character
 * follows. */
static size_t ys_plain(const char *p, const char *end)
{
        const char *q = p;

        if (q == end || !((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                          *q == '_' || *q == '/'))
                return 0;
        for (;;) {
                while (q < end && ys_plain_char(*q))
                        q++;
                if (q + 1 < end && *q == ':' && (ys_plain_char(q[1]) || q[1] == ':'))
                        q++;
                else
                        return (size_t)(q - p);
        }
}

/* A scalar that is the rest of the line, at column col. */
static bool ys_value(struct yscan *s, const char *p, const char *end, uint32_t col)
{
        const char *q;

        if (p < end && (*p == '\'' || *p == '"')) {
                for (q = p + 1; q < end && *q != *p && *q != '\\' && *q >= 0x20 && *q < 0x7f; q++)
                        ;
                if (q + 1 != end || *q != *p)
                        return false;
                return ys_emit(s, YAML_SCALAR_EVENT, col, p + 1, (size_t)(q - p - 1), *p);
        }
        q = p + ys_plain(p, end);
        if (q == p || q != end)
                return false;
        return ys_emit(s, YAML_SCALAR_EVENT, col, p, (size_t)(q - p), 0);
}

/* `KEY: VALUE` or `KEY:` at column col of a mapping already open; false when p holds
 * no key. */
static bool ys_pair(struct yscan *s, const char *p, const char *end, uint32_t col)
{
        size_t k = ys_plain(p, end);

        if (!k || k > YS_MAX_KEY || p + k == end || p[k] != ':')
                return false;
        if (!ys_emit(s, YAML_SCALAR_EVENT, col, p, k, 0))
                return false;
        if (p + k + 1 == end) {
                s->pending = true;
                return true;
        }
        if (p[k + 1] != ' ')
                return false;
        return ys_value(s, p + k + 2, end, col + (uint32_t)k + 2);
}

static bool ys_is_key(const char *p, const char *end)
{
        size_t k = ys_plain(p, end);

        return k && p + k < end && p[k] == ':' && (p + k + 1 == end || p[k + 1] == ' ');
}

/* `- KEY...` or `- VALUE` at column col: an entry of the sequence open there. */
static bool ys_entry(struct yscan *s, const char *p, const char *end, uint32_t col)
{
        if (end - p < 3 || p[1] != ' ' || p[2] == ' ')
                return false;
        p += 2;
        col += 2;
        if (!ys_is_key(p, end))
                return ys_value(s, p, end, col);
        return ys_open(s, YN_MAP, col, false) && ys_pair(s, p, end, col);
}

/* Closes what a line at column col ends; false unless what is left open takes it. */
static bool ys_structure(struct yscan *s, uint32_t col, bool entry)
{
        const struct yopen *top = s->depth ? &s->open[s->depth - 1] : NULL;

        if (s->pending) {
                /* The block of the last `KEY:` (or the document's root). */
                s->pending = false;
                if (!top)
                        return col == 0 && ys_open(s, entry ? YN_SEQ : YN_MAP, col, false);
                if (col > top->indent)
                        return ys_open(s, entry ? YN_SEQ : YN_MAP, col, false);
                return col == top->indent && entry && ys_open(s, YN_SEQ, col, true);
        }
        while (s->depth && s->open[s->depth - 1].indent > col)
                if (!ys_close(s))
                        return false;
        top = s->depth ? &s->open[s->depth - 1] : NULL;
        if (top && top->kind == YN_SEQ && top->indent == col && !entry) {
                if (!top->indentless || !ys_close(s))
                        return false;
                top--;
        }
        return s->depth && top->indent == col && (top->kind == YN_SEQ) == entry;
}

static bool ys_line(struct yscan *s, const char *p, const char *end)
{
        const char *q = p;
        uint32_t col;
        bool entry;

        while (q < end && *q == ' ')
                q++;
        if (q == end)
                return true;
        if (*q == '#') {
                for (q++; q < end; q++)
                        if (*q < 0x20 || *q >= 0x7f)
                                return false;
                return true;
        }
        col = (uint32_t)(q - p);
        entry = *q == '-';
        if (!ys_structure(s, col, entry))
                return false;
        return entry ? ys_entry(s, q, end, col) : ys_pair(s, q, end, col);
}

static bool ys_lines(struct yscan *s, struct capped_stream *c, char *buf);

/* One pass over the stream: true when it is all in the subset (and, building, the
 * builder took it, or s->r has its failure). */
static bool ys_run(struct yscan *s, struct capped_stream *c)
{
        char *buf = malloc(YS_BUF);
        bool plain;

        if (!buf) {
                s->r = -ENOMEM;
                return false;
        }
        plain = ys_lines(s, c, buf);
        free(buf);
        return plain;
}

static bool ys_lines(struct yscan *s, struct capped_stream *c, char *buf)
{
        size_t have = 0, n;
        bool eof = false;

        s->pending = true; /* the root */
        if (!ys_emit(s, YAML_DOCUMENT_START_EVENT, 0, NULL, 0, 0))
                return false;
        while (!eof) {
                char *p = buf, *nl;

                while (have < YS_BUF && !eof) {
                        int r = c->read(c->ctx, buf + have, YS_BUF - have, &n);

                        if (r < 0) {
                                c->error = r; /* libyaml's read error, or the build's */
                                return false;
                        }
                        c->total += n;
                        if (c->total > YDOC_MAX_FILE_SIZE) {
                                c->over = true;
                                return false;
                        }
                        eof = n == 0;
                        have += n;
                }
                while ((nl = memchr(p, '\n', have - (size_t)(p - buf)))) {
                        if (!ys_line(s, p, nl))
                                return false;
                        s->line++;
                        p = nl + 1;
                }
                if (eof && p < buf + have && !ys_line(s, p, buf + have))
                        return false;
                if (p == buf && !eof)
                        return false; /* a line longer than the buffer */
                have -= (size_t)(p - buf);
                memmove(buf, p, have);
        }
        if (s->pending || !s->started)
                return false;
        while (s->depth)
                if (!ys_close(s))
                        return false;
        return ys_emit(s, YAML_DOCUMENT_END_EVENT, 0, NULL, 0, 0);
}

/* The stream read without libyaml (above) when it is all in the subset: 1 with *ret;
 * 0 when libyaml must read it, the stream back at its first byte. */
static int load_plain_yaml(struct builder *b, struct capped_stream *c, int *ret)
{
        struct yscan check = {}, build = { .b = b };
        int r;
        size_t n;
        bool plain;

        /* Nothing is read before the reader has shown it can start again. */
        if (c->read(c->ctx, NULL, 0, &n) < 0)
                return 0;
        plain = ys_run(&check, c);
        /* Whatever stopped the check (a read error, the cap) is libyaml's to meet
         * again and report, from the first byte. */
        c->total = 0;
        c->over = false;
        c->error = 0;
        if ((r = c->read(c->ctx, NULL, 0, &n)) < 0) {
                cfg_error(b->diags, b->file, 0, 0, "read error: cannot read it again: %s", strerror(-r));
                *ret = r;
                return 1;
        }
        if (!plain)
                return check.r == -ENOMEM ? (*ret = -ENOMEM, 1) : 0;
        b->no_nul = true;
        plain = ys_run(&build, c);
        arena_free(&b->arena);
        free(b->vals);
        *ret = build.r;
        if (!plain && build.r >= 0) {
                if (c->error == -ENOMEM)
                        *ret = -ENOMEM;
                else if (c->error) {
                        cfg_error(b->diags, b->file, 0, 0, "read error: %s", strerror(-c->error));
                        *ret = c->error;
                } else if (c->over)
                        *ret = too_large(b->file, b->diags);
                else { /* other bytes the second time */
                        cfg_error(b->diags, b->file, 0, 0, "read error: it changed while it was read");
                        *ret = -EIO;
                }
        }
        return 1;
}

int ydoc_load_buffer(const char *name, const void *buf, size_t size, unsigned flags, ydoc_resource_fn fn,
                     void *userdata, struct cfg_diags *diags)
{
        struct builder b = {
                .file = name, .diags = diags, .fn = fn, .userdata = userdata,
                .list_items = flags & YDOC_LIST_ITEMS,
        };
        yaml_parser_t p;
        int r;

        if (load_plain_json(&b, buf, size, &r))
                return r;
        if (!yaml_parser_initialize(&p))
                return -ENOMEM;
        yaml_parser_set_input_string(&p, buf, size);
        r = run_parser(&b, &p);
        yaml_parser_delete(&p);
        return r;
}

static int read_capped(void *data, unsigned char *buf, size_t size, size_t *ret_read)
{
        struct capped_stream *c = data;
        size_t n = 0;
        int r;

        if (size > YDOC_MAX_FILE_SIZE + (size_t)1 - c->total)
                size = YDOC_MAX_FILE_SIZE + (size_t)1 - c->total;
        if (size && (r = c->read(c->ctx, buf, size, &n)) < 0) {
                c->error = r;
                return 0; /* libyaml: a reader error */
        }
        c->total += n;
        if (c->total > YDOC_MAX_FILE_SIZE) {
                c->over = true;
                return 0;
        }
        *ret_read = n;
        return 1;
}

int ydoc_load_stream(const char *name, ydoc_read_fn read, void *ctx, unsigned flags, ydoc_resource_fn fn,
                     void *userdata, struct cfg_diags *diags)
{
        struct capped_stream c = { .read = read, .ctx = ctx };
        struct builder b = {
                .file = name, .diags = diags, .fn = fn, .userdata = userdata,
                .list_items = flags & YDOC_LIST_ITEMS, .input = &c,
        };
        yaml_parser_t p;
        int r;

        if ((flags & YDOC_REWINDS) && load_plain_yaml(&b, &c, &r))
                return r;
        if (!yaml_parser_initialize(&p))
                return -ENOMEM;
        yaml_parser_set_input(&p, read_capped, &c);
        r = run_parser(&b, &p);
        yaml_parser_delete(&p);
        if (c.error == -ENOMEM)
                return c.error;
        if (c.error) {
                cfg_error(diags, name, 0, 0, "read error: %s", strerror(-c.error));
                return c.error;
        }
        return r;
}

int ydoc_too_large(const char *name, struct cfg_diags *diags)
{
        return too_large(name, diags);
}

const struct ynode *ynode_get(const struct ynode *map, const char *key)
{
        size_t len;

        if (!map || map->kind != YN_MAP)
                return NULL;
        /* Keys are scalars without NUL (the builder checks both): their length first. */
        len = strlen(key);
        for (size_t i = 0; i < map->n; i++)
                if (map->pairs[i].key->n == len && !memcmp(map->pairs[i].key->str, key, len))
                        return map->pairs[i].val;
        return NULL;
}

bool ynode_is_null(const struct ynode *n)
{
        if (!n)
                return true;
        if (n->kind != YN_SCALAR || n->quoted)
                return false;
        /* A plain scalar holds no NUL (libyaml refuses control characters; plain JSON is
         * checked as it is read): n is its length. */
        switch (n->n) {
        case 0:
                return true;
        case 1:
                return n->str[0] == '~';
        case 4:
                return streq(n->str, "null") || streq(n->str, "Null") || streq(n->str, "NULL");
        default:
                return false;
        }
}

const char *ynode_str(const struct ynode *n)
{
        if (!n || n->kind != YN_SCALAR || ynode_is_null(n))
                return NULL;
        return n->str;
}

const char *ynode_kind_name(const struct ynode *n)
{
        if (!n || ynode_is_null(n))
                return "null";
        switch (n->kind) {
        case YN_SEQ:
                return "a list";
        case YN_MAP:
                return "a mapping";
        default:
                return "a scalar";
        }
}
