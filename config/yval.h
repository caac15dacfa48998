/* Typed reads of YAML values with positioned errors. Internal to config/. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "yamltree.h"

struct yctx {
        const char *file;
        struct cfg_diags *diags;
};

#define yerr(c, n, ...) cfg_error((c)->diags, (c)->file, (n) ? (n)->line : 0, (n) ? (n)->col : 0, __VA_ARGS__)
#define ynotice(c, n, ...) cfg_notice((c)->diags, (c)->file, (n) ? (n)->line : 0, (n) ? (n)->col : 0, __VA_ARGS__)

/* Each returns 0 and sets *ret, or -EINVAL after adding an error that names `what`. */
int yv_str(const struct yctx *c, const struct ynode *n, const char *what, const char **ret);
int yv_bool(const struct yctx *c, const struct ynode *n, const char *what, bool *ret);
/* A bool that Kubernetes CRDs may also print as a quoted string ("true"/"false"). */
int yv_bool_or_string(const struct yctx *c, const struct ynode *n, const char *what, bool *ret);
int yv_uint(const struct yctx *c, const struct ynode *n, const char *what, uint64_t min, uint64_t max,
            uint64_t *ret);
int yv_map(const struct yctx *c, const struct ynode *n, const char *what);
/* The value of key in map, which the resource must have: a missing key is an error at the
 * mapping (a NULL node has no position to report). */
int yv_field(const struct yctx *c, const struct ynode *map, const char *key, const char *what,
             const struct ynode **ret);
int yv_seq(const struct yctx *c, const struct ynode *n, const char *what);
