/* Typed reads of YAML values with positioned errors. Internal to config/.
 *
 * yread_*: the value of a node as a C type, or an error naming `what` at the node's
 * line and column; yexpect_*: the node must be of that kind. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "labels.h"
#include "yamltree.h"

struct yctx {
        const char *file;
        struct cfg_diags *diags;
};

#define yerr(c, n, ...) cfg_error((c)->diags, (c)->file, (n) ? (n)->line : 0, (n) ? (n)->col : 0, __VA_ARGS__)
#define ynotice(c, n, ...) cfg_notice((c)->diags, (c)->file, (n) ? (n)->line : 0, (n) ? (n)->col : 0, __VA_ARGS__)

/* Each returns 0 and sets *ret, or -EINVAL after adding an error that names `what`. */
int yread_str(const struct yctx *c, const struct ynode *n, const char *what, const char **ret);
int yread_bool(const struct yctx *c, const struct ynode *n, const char *what, bool *ret);
/* A bool that Kubernetes CRDs may also print as a quoted string ("true"/"false"). */
int yread_bool_or_string(const struct yctx *c, const struct ynode *n, const char *what, bool *ret);
int yread_uint(const struct yctx *c, const struct ynode *n, const char *what, uint64_t min, uint64_t max,
            uint64_t *ret);
int yexpect_map(const struct yctx *c, const struct ynode *n, const char *what);
/* The value of key in map, which the resource must have: a missing key is an error at the
 * mapping (a NULL node has no position to report). */
int yread_field(const struct yctx *c, const struct ynode *map, const char *key, const char *what,
             const struct ynode **ret);
int yexpect_seq(const struct yctx *c, const struct ynode *n, const char *what);
/* A label map (metadata.labels, nodeLabels) added to *ret, unsealed; `key:` with
 * nothing after it is an empty value, as Kubernetes reads it. */
int yread_labels(const struct yctx *c, const struct ynode *n, const char *what, struct cfg_labels *ret);
