/* Field-by-field comparison of two config models for the property tests of the
 * in-place updates (tests/test-filerec.c, tests/test-kvupdate.c,
 * tests/test-files-source.c): cmocka assertions, see tests/model-check.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "load.h"
#include "model.h"

/* The property tests' settings: node n1. */
struct cfg_settings mc_settings(void);
/* A node's name by index (names on demand are compared as text), "(none)" for UINT32_MAX. */
const char *mc_node_name(const struct cfg_model *m, uint32_t i);
/* The same place: input named alike (cfg_model_file()), same line. */
void mc_same_src(const struct cfg_model *a, struct cfg_src x, const struct cfg_model *b, struct cfg_src y);
void mc_same_prefix(const struct cfg_prefix *a, const struct cfg_prefix *b);
bool mc_same_addrs(const struct cfg_node *a, const struct cfg_node *b);
/* Everything the model says (pools, nodes, blocks, borrowed addresses, FelixConfigurations,
 * counts) but the list of inputs: an in-place update numbers its inputs its own way. */
void mc_same_model(const struct cfg_model *a, const struct cfg_model *b);
/* The same inputs, in the same order, named alike. */
void mc_same_inputs(const struct cfg_model *a, const struct cfg_model *b);
/* The same diagnostics, in the same order, with the same text and severity. */
void mc_same_diags(const struct cfg_diags *a, const struct cfg_diags *b);
bool mc_touched_has(const struct cfg_touched *t, const struct cfg_prefix *p);
const struct cfg_block *mc_find_block(const struct cfg_model *m, const struct cfg_prefix *p);
const struct cfg_borrowed *mc_find_borrowed(const struct cfg_model *m, const struct cfg_prefix *p);
/* Every block and borrowed address whose route may differ between a and b (its node,
 * its node's addresses, its block's node, its pool, its presence) is in t. */
void mc_touched_covers(const struct cfg_model *a, const struct cfg_model *b, const struct cfg_touched *t);
