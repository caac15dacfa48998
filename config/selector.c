/* Calico selector compiler and evaluator.
 *
 * Owns the selector language as libcalico-go's tokenizer and parser define it: blanks are
 * only spaces and tabs; label names are [A-Za-z0-9_./-]{1,512}; after a label come operator
 * words ending at a word boundary ("contains", "starts with", "ends with", "not in", "in",
 * the inner blanks optional); || binds looser than &&, and leading '!'s collapse into one
 * negation of the term that follows them. A lexer with one token of look-ahead feeds a
 * recursive-descent parser that builds a small tree.
 *
 * The compiled form is a node array, a set-member array and one string pool sized up front,
 * so matching never allocates and needs no state. This file must never log, do I/O or keep
 * global state: problems go back to the caller as a column and a message. */
#include "selector.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "util.h"

#define SEL_NONE UINT32_MAX
#define SHOWN 40 /* at most this many characters of a label or string in a message */

enum sel_op {
        SEL_ALL,
        SEL_GLOBAL,
        SEL_HAS,
        SEL_EQ,
        SEL_NE,
        SEL_IN,
        SEL_NOT_IN,
        SEL_CONTAINS,
        SEL_STARTS_WITH,
        SEL_ENDS_WITH,
        SEL_AND,
        SEL_OR,
};

struct sel_node {
        enum sel_op op;
        bool negate;       /* an odd number of '!' in front of the term */
        uint32_t next;     /* next operand of the parent AND/OR, or SEL_NONE */
        uint32_t first;    /* AND/OR: first operand; IN/NOT_IN: first member in values[] */
        uint32_t count;    /* IN/NOT_IN: number of members (sorted, no duplicates) */
        const char *key;   /* label name, in the pool */
        const char *value; /* comparison value, in the pool */
        size_t value_len;
};

struct sel {
        struct sel_node *nodes;
        size_t n_nodes;
        const char **values; /* members of every set; each set is one sorted run */
        size_t n_values;
        char *pool; /* NUL-terminated label names and values; never reallocated */
        uint32_t root;
};

enum tok {
        T_NONE, /* before the first token */
        T_EOF,
        T_LABEL,
        T_STRING,
        T_LBRACE,
        T_RBRACE,
        T_COMMA,
        T_EQ,
        T_NE,
        T_IN,
        T_NOT_IN,
        T_CONTAINS,
        T_STARTS_WITH,
        T_ENDS_WITH,
        T_NOT,
        T_AND,
        T_OR,
        T_LPAREN,
        T_RPAREN,
        T_HAS,
        T_ALL,
        T_GLOBAL,
};

struct token {
        enum tok kind;
        size_t start;  /* offset of the first byte; for T_EOF, just past the previous token */
        size_t end;    /* offset just past the token */
        size_t vstart; /* label name (T_LABEL, T_HAS) or string contents (T_STRING) */
        size_t vlen;
};

struct parser {
        const char *text;
        size_t len;
        size_t pos; /* end of the current token: where the next one's blanks start */
        struct token tok;
        enum tok prev; /* kind of the token before tok */
        unsigned depth;
        struct sel *sel;
        size_t nodes_cap, values_cap;
        size_t pool_used, pool_size;
        struct sel_error *err;
};

_printf_(3, 4) static int fail(struct parser *p, size_t offset, const char *fmt, ...)
{
        va_list ap;

        p->err->column = offset + 1;
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
        va_end(ap);
        text_utf8_trim(p->err->message);
        return -EINVAL;
}

/* At most SHOWN bytes of s[0..len), cut on a character boundary. */
static int shown(const char *s, size_t len)
{
        return (int)text_utf8_prefix(s, len, SHOWN);
}

/* ---- lexer ---- */

/* Calico's tokenizer skips only spaces and tabs; a line break is an unexpected character. */
static bool is_blank(char c)
{
        return c == ' ' || c == '\t';
}

static bool is_label_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '/' || c == '-';
}

static size_t skip_blanks(const struct parser *p, size_t i)
{
        while (i < p->len && is_blank(p->text[i]))
                i++;
        return i;
}

static size_t label_len(const struct parser *p, size_t i)
{
        size_t n = 0;

        while (i + n < p->len && is_label_char(p->text[i + n]))
                n++;
        return n;
}

static bool has_prefix(const struct parser *p, size_t i, const char *word)
{
        size_t n = strlen(word);

        return p->len - i >= n && memcmp(p->text + i, word, n) == 0;
}

static int fail_char(struct parser *p, size_t i)
{
        unsigned char c = (unsigned char)p->text[i];

        if (c == '\n' || c == '\r')
                return fail(p, i,
                            "unexpected line break (only spaces and tabs may separate tokens)");
        if (c > ' ' && c < 0x7f)
                return fail(p, i, "unexpected character '%c'", c);
        return fail(p, i, "unexpected byte 0x%02x", c);
}

/* Match word1 [blanks word2] at *i, followed by a word boundary: the end of the text or a
 * character that cannot be part of a label. So "startswith" and "notin" work, "inx" does not. */
static bool cut_words(const struct parser *p, size_t *i, const char *word1, const char *word2)
{
        size_t j = *i;

        if (!has_prefix(p, j, word1))
                return false;
        j += strlen(word1);
        if (word2) {
                j = skip_blanks(p, j);
                if (!has_prefix(p, j, word2))
                        return false;
                j += strlen(word2);
        }
        if (j < p->len && is_label_char(p->text[j]))
                return false;
        *i = j;
        return true;
}

static int fail_no_operator(struct parser *p, size_t offset)
{
        return fail(p, offset,
                    "expected an operator (==, !=, in, not in, contains, starts with, ends with) "
                    "after label '%.*s'",
                    shown(p->text + p->tok.vstart, p->tok.vlen), p->text + p->tok.vstart);
}

/* Only right after a label does Calico read words as operators: a label may be called "in". */
static int lex_operator(struct parser *p, struct token *t)
{
        static const struct {
                const char *word1, *word2;
                enum tok kind;
        } ops[] = {
                { "contains", NULL, T_CONTAINS }, { "starts", "with", T_STARTS_WITH },
                { "ends", "with", T_ENDS_WITH },  { "not", "in", T_NOT_IN },
                { "in", NULL, T_IN },
        };
        size_t i = t->start;

        for (size_t k = 0; k < ELEMENTSOF(ops); k++)
                if (cut_words(p, &i, ops[k].word1, ops[k].word2)) {
                        t->kind = ops[k].kind;
                        t->end = i;
                        return 0;
                }
        return fail_no_operator(p, t->start);
}

static int lex_label_at(struct parser *p, size_t i, size_t *ret_len)
{
        size_t n = label_len(p, i);

        if (n == 0)
                return i < p->len ? fail_char(p, i) : fail(p, i, "expected a label name");
        if (n > SEL_MAX_LABEL)
                return fail(p, i, "label name longer than %u characters", SEL_MAX_LABEL);
        *ret_len = n;
        return 0;
}

/* "has(" blanks label blanks ")": Calico reads it as one token. */
static int lex_has(struct parser *p, struct token *t)
{
        size_t i = skip_blanks(p, t->start + strlen("has("));
        int r;

        if (i >= p->len || !is_label_char(p->text[i]))
                return fail(p, i, "expected a label name inside has()");
        r = lex_label_at(p, i, &t->vlen);
        if (r < 0)
                return r;
        t->vstart = i;
        i = skip_blanks(p, i + t->vlen);
        if (i >= p->len || p->text[i] != ')')
                return fail(p, i, "expected ')' to close has(%.*s",
                            shown(p->text + t->vstart, t->vlen), p->text + t->vstart);
        t->kind = T_HAS;
        t->end = i + 1;
        return 0;
}

/* "all(" blanks ")" and "global(" blanks ")". */
static int lex_call(struct parser *p, struct token *t, const char *name, enum tok kind)
{
        size_t i = skip_blanks(p, t->start + strlen(name) + 1);

        if (i >= p->len || p->text[i] != ')')
                return fail(p, i, "expected ')' after %s(", name);
        t->kind = kind;
        t->end = i + 1;
        return 0;
}

static int lex_word(struct parser *p, struct token *t)
{
        int r;

        if (p->tok.kind == T_LABEL)
                return lex_operator(p, t);
        if (has_prefix(p, t->start, "has("))
                return lex_has(p, t);
        if (has_prefix(p, t->start, "all("))
                return lex_call(p, t, "all", T_ALL);
        if (has_prefix(p, t->start, "global("))
                return lex_call(p, t, "global", T_GLOBAL);
        r = lex_label_at(p, t->start, &t->vlen);
        if (r < 0)
                return r;
        t->kind = T_LABEL;
        t->vstart = t->start;
        t->end = t->start + t->vlen;
        return 0;
}

/* No escapes: the string runs to the next quote of the same kind. */
static int lex_string(struct parser *p, struct token *t)
{
        char quote = p->text[t->start];
        const char *close = memchr(p->text + t->start + 1, quote, p->len - t->start - 1);

        if (!close)
                return fail(p, t->start, "unterminated string opened at column %zu", t->start + 1);
        t->kind = T_STRING;
        t->vstart = t->start + 1;
        t->vlen = (size_t)(close - p->text) - t->vstart;
        t->end = (size_t)(close - p->text) + 1;
        return 0;
}

/* Two-character operators; '!' alone is negation, '=', '&', '|' alone are errors. */
static int lex_pair(struct parser *p, struct token *t, enum tok pair, enum tok single)
{
        char c = p->text[t->start];

        if (t->start + 1 < p->len && p->text[t->start + 1] == (c == '!' ? '=' : c)) {
                t->kind = pair;
                t->end = t->start + 2;
                return 0;
        }
        if (single != T_NONE) {
                t->kind = single;
                return 0;
        }
        return fail(p, t->start, "expected '%c%c', found a single '%c'", c, c, c);
}

static int lex(struct parser *p)
{
        size_t i = skip_blanks(p, p->pos);
        struct token t = { .start = i, .end = i + 1 };
        int r = 0;

        if (i >= p->len) {
                t = (struct token){ .kind = T_EOF, .start = p->pos, .end = p->pos };
        } else {
                switch (p->text[i]) {
                case '(': t.kind = T_LPAREN; break;
                case ')': t.kind = T_RPAREN; break;
                case '{': t.kind = T_LBRACE; break;
                case '}': t.kind = T_RBRACE; break;
                case ',': t.kind = T_COMMA; break;
                case '"':
                case '\'': r = lex_string(p, &t); break;
                case '=': r = lex_pair(p, &t, T_EQ, T_NONE); break;
                case '!': r = lex_pair(p, &t, T_NE, T_NOT); break;
                case '&': r = lex_pair(p, &t, T_AND, T_NONE); break;
                case '|': r = lex_pair(p, &t, T_OR, T_NONE); break;
                default: r = lex_word(p, &t); break;
                }
        }
        if (r < 0)
                return r;
        p->prev = p->tok.kind;
        p->tok = t;
        p->pos = t.end;
        return 0;
}

/* ---- parser ---- */

static const char *tok_name(enum tok k)
{
        switch (k) {
        case T_NONE: return "the start";
        case T_EOF: return "the end of the selector";
        case T_LABEL: return "a label";
        case T_STRING: return "a string";
        case T_LBRACE: return "'{'";
        case T_RBRACE: return "'}'";
        case T_COMMA: return "','";
        case T_EQ: return "'=='";
        case T_NE: return "'!='";
        case T_IN: return "'in'";
        case T_NOT_IN: return "'not in'";
        case T_CONTAINS: return "'contains'";
        case T_STARTS_WITH: return "'starts with'";
        case T_ENDS_WITH: return "'ends with'";
        case T_NOT: return "'!'";
        case T_AND: return "'&&'";
        case T_OR: return "'||'";
        case T_LPAREN: return "'('";
        case T_RPAREN: return "')'";
        case T_HAS: return "has()";
        case T_ALL: return "all()";
        case T_GLOBAL: return "global()";
        }
        return "?";
}

/* The current token is not what the grammar needs here. At the end of the text, say what it
 * should have followed; elsewhere, say what was found instead. */
static int fail_expected(struct parser *p, const char *what)
{
        const struct token *t = &p->tok;

        switch (t->kind) {
        case T_EOF:
                return fail(p, t->start, "expected %s after %s", what, tok_name(p->prev));
        case T_LABEL:
                return fail(p, t->start, "expected %s, found label '%.*s'", what,
                            shown(p->text + t->vstart, t->vlen), p->text + t->vstart);
        case T_STRING:
                return fail(p, t->start, "expected %s, found string %.*s", what,
                            shown(p->text + t->start, t->end - t->start), p->text + t->start);
        default:
                return fail(p, t->start, "expected %s, found %s", what, tok_name(t->kind));
        }
}

static int new_node(struct parser *p, enum sel_op op, bool negate, uint32_t *ret)
{
        struct sel *s = p->sel;

        if (GROW(s->nodes, p->nodes_cap, s->n_nodes + 1) < 0)
                return -ENOMEM;
        s->nodes[s->n_nodes] = (struct sel_node){
                .op = op,
                .negate = negate,
                .next = SEL_NONE,
                .first = SEL_NONE,
        };
        *ret = (uint32_t)s->n_nodes++;
        return 0;
}

/* The pool holds at most every label and string once plus a NUL each: each such token takes at
 * least one byte of text, so twice the text length always fits. */
static const char *pool_add(struct parser *p, size_t start, size_t len)
{
        char *d = p->sel->pool + p->pool_used;

        assert(p->pool_used + len + 1 <= p->pool_size);
        memcpy(d, p->text + start, len);
        d[len] = 0;
        p->pool_used += len + 1;
        return d;
}

static int strcmp_p(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort and deduplicate values[first..] in place, as Calico's StringSet does; returns the count. */
static uint32_t seal_set(struct sel *s, size_t first)
{
        size_t n = s->n_values - first, out = 0;
        const char **v;

        if (n == 0)
                return 0; /* `{}`: s->values may still be NULL, and NULL + 0 is undefined */
        v = s->values + first;
        if (n > 1)
                qsort(v, n, sizeof(*v), strcmp_p);
        for (size_t i = 0; i < n; i++)
                if (out == 0 || !streq(v[out - 1], v[i]))
                        v[out++] = v[i];
        s->n_values = first + out;
        return (uint32_t)out;
}

/* '{' [string {',' string} [',']] '}': Calico accepts a trailing comma and an empty set. */
static int parse_set(struct parser *p, uint32_t node)
{
        struct sel *s = p->sel;
        size_t open = p->tok.start, first = s->n_values;
        int r;

        r = lex(p);
        while (r >= 0 && p->tok.kind == T_STRING) {
                if (GROW(s->values, p->values_cap, s->n_values + 1) < 0)
                        return -ENOMEM;
                s->values[s->n_values++] = pool_add(p, p->tok.vstart, p->tok.vlen);
                r = lex(p);
                if (r < 0 || p->tok.kind != T_COMMA)
                        break;
                r = lex(p);
        }
        if (r < 0)
                return r;
        if (p->tok.kind == T_EOF)
                return fail(p, open, "'{' opened at column %zu is never closed", open + 1);
        if (p->tok.kind != T_RBRACE)
                return fail_expected(p, p->prev == T_STRING ? "',' or '}'"
                                                            : "a quoted string or '}'");
        s->nodes[node].first = (uint32_t)first;
        s->nodes[node].count = seal_set(s, first);
        return lex(p);
}

static enum sel_op tok_to_op(enum tok k)
{
        switch (k) {
        case T_EQ: return SEL_EQ;
        case T_NE: return SEL_NE;
        case T_IN: return SEL_IN;
        case T_NOT_IN: return SEL_NOT_IN;
        case T_CONTAINS: return SEL_CONTAINS;
        case T_STARTS_WITH: return SEL_STARTS_WITH;
        case T_ENDS_WITH: return SEL_ENDS_WITH;
        default: return SEL_ALL;
        }
}

/* label OP "value" | label in/not in { ... } */
static int parse_comparison(struct parser *p, bool negate, uint32_t *ret)
{
        struct token key = p->tok;
        struct sel_node *n;
        enum sel_op op;
        uint32_t node;
        int r;

        r = lex(p);
        if (r < 0)
                return r;
        op = tok_to_op(p->tok.kind);
        if (op == SEL_ALL) {
                size_t at = p->tok.start;

                p->tok = key; /* for the label name in the message */
                return fail_no_operator(p, at);
        }
        r = lex(p);
        if (r < 0)
                return r;
        if (op == SEL_IN || op == SEL_NOT_IN) {
                if (p->tok.kind != T_LBRACE)
                        return fail_expected(p, "a set such as {\"a\", \"b\"}");
        } else if (p->tok.kind != T_STRING)
                return fail_expected(p, "a quoted string");

        r = new_node(p, op, negate, &node);
        if (r < 0)
                return r;
        n = &p->sel->nodes[node];
        n->key = pool_add(p, key.vstart, key.vlen);
        *ret = node;
        if (op == SEL_IN || op == SEL_NOT_IN)
                return parse_set(p, node);
        n->value = pool_add(p, p->tok.vstart, p->tok.vlen);
        n->value_len = p->tok.vlen;
        return lex(p);
}

static int parse_or(struct parser *p, uint32_t *ret);

static int parse_group(struct parser *p, bool negate, uint32_t *ret)
{
        size_t open = p->tok.start;
        struct sel_node *n;
        int r;

        if (p->depth >= SEL_MAX_DEPTH)
                return fail(p, open, "parentheses nested deeper than %u", SEL_MAX_DEPTH);
        p->depth++;
        r = lex(p);
        if (r < 0)
                return r;
        r = parse_or(p, ret);
        if (r < 0)
                return r;
        if (p->tok.kind == T_EOF)
                return fail(p, open, "'(' opened at column %zu is never closed", open + 1);
        if (p->tok.kind != T_RPAREN)
                return fail_expected(p, "')', '&&' or '||'");
        p->depth--;
        n = &p->sel->nodes[*ret];
        n->negate = n->negate != negate;
        return lex(p);
}

/* {'!'} ( has(k) | all() | global() | comparison | '(' or ')' ) */
static int parse_term(struct parser *p, uint32_t *ret)
{
        bool negate = false;
        int r;

        while (p->tok.kind == T_NOT) {
                negate = !negate;
                r = lex(p);
                if (r < 0)
                        return r;
        }
        switch (p->tok.kind) {
        case T_HAS:
                r = new_node(p, SEL_HAS, negate, ret);
                if (r < 0)
                        return r;
                p->sel->nodes[*ret].key = pool_add(p, p->tok.vstart, p->tok.vlen);
                return lex(p);
        case T_ALL:
        case T_GLOBAL:
                r = new_node(p, p->tok.kind == T_ALL ? SEL_ALL : SEL_GLOBAL, negate, ret);
                return r < 0 ? r : lex(p);
        case T_LABEL:
                return parse_comparison(p, negate, ret);
        case T_LPAREN:
                return parse_group(p, negate, ret);
        default:
                if (p->tok.kind == T_RPAREN && p->prev == T_LPAREN)
                        return fail(p, p->tok.start, "empty parentheses");
                return fail_expected(p, "a label, has(), all(), '!' or '('");
        }
}

/* Operands separated by tok (&& or ||) become one AND/OR node with a list of operands; a single
 * operand stands for itself. */
static int parse_list(struct parser *p, enum tok sep, enum sel_op op,
                      int (*operand)(struct parser *p, uint32_t *ret), uint32_t *ret)
{
        uint32_t first, last, node, next;
        int r;

        r = operand(p, &first);
        if (r < 0)
                return r;
        if (p->tok.kind != sep) {
                *ret = first;
                return 0;
        }
        r = new_node(p, op, false, &node);
        if (r < 0)
                return r;
        p->sel->nodes[node].first = last = first;
        while (p->tok.kind == sep) {
                r = lex(p);
                if (r < 0)
                        return r;
                r = operand(p, &next);
                if (r < 0)
                        return r;
                p->sel->nodes[last].next = next;
                last = next;
        }
        *ret = node;
        return 0;
}

static int parse_and(struct parser *p, uint32_t *ret)
{
        return parse_list(p, T_AND, SEL_AND, parse_term, ret);
}

static int parse_or(struct parser *p, uint32_t *ret)
{
        return parse_list(p, T_OR, SEL_OR, parse_and, ret);
}

static int parse_root(struct parser *p)
{
        int r;

        r = lex(p);
        if (r < 0)
                return r;
        if (p->tok.kind == T_EOF) /* empty or blank: Calico's all() */
                return new_node(p, SEL_ALL, false, &p->sel->root);
        r = parse_or(p, &p->sel->root);
        if (r < 0)
                return r;
        if (p->tok.kind == T_RPAREN)
                return fail(p, p->tok.start, "unmatched ')'");
        if (p->tok.kind != T_EOF)
                return fail_expected(p, "'&&', '||' or the end of the selector");
        return 0;
}

int sel_compile(const char *text, struct sel **ret, struct sel_error *ret_err)
{
        _cleanup_(sel_freep) struct sel *s = NULL;
        struct sel_error scratch;
        struct parser p = { .text = text, .err = ret_err ? ret_err : &scratch };
        int r;

        assert(text);
        assert(ret);

        p.len = strnlen(text, SEL_MAX_LEN + 1);
        if (p.len > SEL_MAX_LEN)
                return fail(&p, SEL_MAX_LEN, "selector longer than %u bytes", SEL_MAX_LEN);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        p.pool_size = 2 * p.len + 1;
        s->pool = malloc(p.pool_size);
        if (!s->pool)
                return -ENOMEM;
        p.sel = s;

        r = parse_root(&p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- evaluation ---- */

static bool set_contains(const struct sel *s, const struct sel_node *n, const char *v)
{
        size_t lo = n->first, hi = (size_t)n->first + n->count;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(v, s->values[mid]);

                if (c == 0)
                        return true;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return false;
}

static bool ends_with(const char *v, const char *suffix, size_t suffix_len)
{
        size_t len = strlen(v);

        return len >= suffix_len && memcmp(v + len - suffix_len, suffix, suffix_len) == 0;
}

/* Recursion depth is bounded by SEL_MAX_DEPTH: only parentheses nest nodes. */
static bool eval(const struct sel *s, uint32_t i, const struct cfg_labels *labels)
{
        const struct sel_node *n = &s->nodes[i];
        const char *v = n->key ? cfg_labels_get(labels, n->key) : NULL;
        bool r = false;

        switch (n->op) {
        case SEL_ALL:
        case SEL_GLOBAL: r = true; break;
        case SEL_HAS: r = v; break;
        case SEL_EQ: r = v && streq(v, n->value); break;
        case SEL_NE: r = !v || !streq(v, n->value); break; /* a missing label is "not equal" */
        case SEL_IN: r = v && set_contains(s, n, v); break;
        case SEL_NOT_IN: r = !v || !set_contains(s, n, v); break;
        case SEL_CONTAINS: r = v && strstr(v, n->value); break;
        case SEL_STARTS_WITH: r = v && strncmp(v, n->value, n->value_len) == 0; break;
        case SEL_ENDS_WITH: r = v && ends_with(v, n->value, n->value_len); break;
        case SEL_AND:
                r = true;
                for (uint32_t c = n->first; r && c != SEL_NONE; c = s->nodes[c].next)
                        r = eval(s, c, labels);
                break;
        case SEL_OR:
                for (uint32_t c = n->first; !r && c != SEL_NONE; c = s->nodes[c].next)
                        r = eval(s, c, labels);
                break;
        }
        return r != n->negate;
}

bool sel_match(const struct sel *s, const struct cfg_labels *labels)
{
        assert(s);
        return eval(s, s->root, labels);
}

bool sel_is_all(const struct sel *s)
{
        const struct sel_node *n;

        assert(s);
        n = &s->nodes[s->root];
        return (n->op == SEL_ALL || n->op == SEL_GLOBAL) && !n->negate;
}

void sel_free(struct sel *s)
{
        if (!s)
                return;
        free(s->nodes);
        free(s->values);
        free(s->pool);
        free(s);
}

/* ---- formatting ---- */

struct out {
        char *buf;
        size_t size;
        size_t len; /* what would have been written */
};

static void put(struct out *o, const char *str)
{
        size_t n = strlen(str);

        if (o->len + 1 < o->size) {
                size_t room = o->size - 1 - o->len;

                memcpy(o->buf + o->len, str, n < room ? n : room);
        }
        o->len += n;
}

/* Calico's choice: double quotes unless the value holds one (it cannot hold both kinds). */
static void put_quoted(struct out *o, const char *value)
{
        const char *q = strchr(value, '"') ? "'" : "\"";

        put(o, q);
        put(o, value);
        put(o, q);
}

static void fmt_node(const struct sel *s, uint32_t i, enum sel_op parent, struct out *o)
{
        static const char *const infix[] = {
                [SEL_EQ] = " == ",
                [SEL_NE] = " != ",
                [SEL_CONTAINS] = " contains ",
                [SEL_STARTS_WITH] = " starts with ",
                [SEL_ENDS_WITH] = " ends with ",
                [SEL_IN] = " in {",
                [SEL_NOT_IN] = " not in {",
        };
        const struct sel_node *n = &s->nodes[i];
        bool compound = n->op == SEL_AND || n->op == SEL_OR;
        /* Parentheses only where needed: under '!', and an OR inside an AND. */
        bool paren = compound && (n->negate || (n->op == SEL_OR && parent == SEL_AND));

        if (n->negate)
                put(o, "!");
        if (paren)
                put(o, "(");
        switch (n->op) {
        case SEL_ALL: put(o, "all()"); break;
        case SEL_GLOBAL: put(o, "global()"); break;
        case SEL_HAS:
                put(o, "has(");
                put(o, n->key);
                put(o, ")");
                break;
        case SEL_EQ:
        case SEL_NE:
        case SEL_CONTAINS:
        case SEL_STARTS_WITH:
        case SEL_ENDS_WITH:
                put(o, n->key);
                put(o, infix[n->op]);
                put_quoted(o, n->value);
                break;
        case SEL_IN:
        case SEL_NOT_IN:
                put(o, n->key);
                put(o, infix[n->op]);
                for (uint32_t k = 0; k < n->count; k++) {
                        if (k > 0)
                                put(o, ", ");
                        put_quoted(o, s->values[n->first + k]);
                }
                put(o, "}");
                break;
        case SEL_AND:
        case SEL_OR:
                for (uint32_t c = n->first; c != SEL_NONE; c = s->nodes[c].next) {
                        if (c != n->first)
                                put(o, n->op == SEL_AND ? " && " : " || ");
                        fmt_node(s, c, n->op, o);
                }
                break;
        }
        if (paren)
                put(o, ")");
}

int sel_format(const struct sel *s, char *buf, size_t size)
{
        struct out o = { .buf = buf, .size = size };

        assert(s);
        assert(buf || size == 0);
        fmt_node(s, s->root, SEL_ALL, &o);
        if (size > 0)
                buf[o.len < size ? o.len : size - 1] = 0;
        return o.len > INT32_MAX ? INT32_MAX : (int)o.len;
}
