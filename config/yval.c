/* Typed YAML scalars, with Go/YAML 1.1 spellings where the Kubernetes tools use them
 * (true/True/TRUE). Never guesses: a value of the wrong type is an error at its position. */
#include "yval.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int yread_str(const struct yctx *c, const struct ynode *n, const char *what, const char **ret)
{
        if (!n || n->kind != YN_SCALAR || ynode_is_null(n))
                return yerr(c, n, "%s must be a string, not %s", what, ynode_kind_name(n));
        *ret = n->str;
        return 0;
}

static int parse_bool(const char *s, bool *ret)
{
        static const char *const t[] = { "true", "True", "TRUE" };
        static const char *const f[] = { "false", "False", "FALSE" };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                if (streq(s, t[i])) {
                        *ret = true;
                        return 0;
                }
                if (streq(s, f[i])) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int yread_bool(const struct yctx *c, const struct ynode *n, const char *what, bool *ret)
{
        if (!n || n->kind != YN_SCALAR || n->quoted || parse_bool(n->str, ret) < 0)
                return yerr(c, n, "%s must be true or false", what);
        return 0;
}

int yread_bool_or_string(const struct yctx *c, const struct ynode *n, const char *what, bool *ret)
{
        if (!n || n->kind != YN_SCALAR || parse_bool(n->str, ret) < 0)
                return yerr(c, n, "%s must be true or false", what);
        return 0;
}

int yread_uint(const struct yctx *c, const struct ynode *n, const char *what, uint64_t min, uint64_t max,
            uint64_t *ret)
{
        const char *s;
        uint64_t v = 0;

        if (!n || n->kind != YN_SCALAR || n->quoted || ynode_is_null(n))
                return yerr(c, n, "%s must be a number from %llu to %llu", what, (unsigned long long)min,
                            (unsigned long long)max);
        s = n->str;
        if (*s == '+')
                s++;
        if (!*s)
                return yerr(c, n, "%s must be a number", what);
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
                        return yerr(c, n, "%s must be a number from %llu to %llu, not \"%s\"", what,
                                    (unsigned long long)min, (unsigned long long)max, n->str);
                v = v * 10 + (uint64_t)(*s - '0');
        }
        if (v < min || v > max)
                return yerr(c, n, "%s must be from %llu to %llu, not %llu", what, (unsigned long long)min,
                            (unsigned long long)max, (unsigned long long)v);
        *ret = v;
        return 0;
}

int yexpect_map(const struct yctx *c, const struct ynode *n, const char *what)
{
        if (!n || n->kind != YN_MAP)
                return yerr(c, n, "%s must be a mapping, not %s", what, ynode_kind_name(n));
        return 0;
}

int yread_field(const struct yctx *c, const struct ynode *map, const char *key, const char *what,
             const struct ynode **ret)
{
        const struct ynode *v = ynode_get(map, key);

        if (!v)
                return yerr(c, map, "%s is missing", what);
        *ret = v;
        return 0;
}

int yexpect_seq(const struct yctx *c, const struct ynode *n, const char *what)
{
        if (!n || n->kind != YN_SEQ)
                return yerr(c, n, "%s must be a list, not %s", what, ynode_kind_name(n));
        return 0;
}

int yread_labels(const struct yctx *c, const struct ynode *n, const char *what, struct cfg_labels *ret)
{
        const char *v;
        int r;

        if ((r = yexpect_map(c, n, what)) < 0)
                return r;
        for (size_t i = 0; i < n->n; i++) {
                const struct ynode *val = n->pairs[i].val;

                /* `key:` with nothing after it is null in YAML: an empty label value. */
                v = "";
                if (!ynode_is_null(val) && (r = yread_str(c, val, "a label value", &v)) < 0)
                        return r;
                if ((r = cfg_labels_set(ret, n->pairs[i].key->str, v)) < 0)
                        return r;
        }
        return 0;
}
