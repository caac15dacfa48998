/* Calico label selectors (an IP pool's nodeSelector): compile the text once into an
 * immutable tree, then evaluate it against label maps without allocating.
 *
 * The language is Calico's (libcalico-go lib/selector): all(), global(), has(k), k == "v",
 * k != "v", k in {...}, k not in {...}, k contains "s", k starts with "s", k ends with "s",
 * !, &&, || and parentheses. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "labels.h"

#define SEL_MAX_LEN 4096u   /* bytes of selector text */
#define SEL_MAX_DEPTH 64u   /* nested parentheses */
#define SEL_MAX_LABEL 512u  /* characters in a label name (Calico's limit) */

struct sel; /* compiled selector, immutable */

struct sel_error {
        size_t column;     /* 1-based column in the selector text where the problem is */
        char message[160]; /* e.g. "unterminated string opened at column 32" */
};

/* Compile text. Returns 0 and *ret, or -EINVAL with *ret_err filled (and *ret untouched), or
 * -ENOMEM. An empty / all-whitespace selector, "all()" and "global()" match everything.
 * ret_err may be NULL. */
int sel_compile(const char *text, struct sel **ret, struct sel_error *ret_err);
/* Does the selector match these labels? labels may be NULL (no labels). */
bool sel_match(const struct sel *s, const struct cfg_labels *labels);
/* True for all()/global()/empty (also when parenthesised). */
bool sel_is_all(const struct sel *s);
void sel_free(struct sel *s); /* accepts NULL */
/* Canonical text of the compiled selector (for messages), e.g. `zone == "az1" && has(rack)`;
 * returns number of chars that would be written, like snprintf. */
int sel_format(const struct sel *s, char *buf, size_t size);

static inline void sel_freep(struct sel **s)
{
        sel_free(*s);
}
