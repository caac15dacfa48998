/* A small YAML reader on top of libyaml: builds each resource as a tree of nodes with
 * 1-based line/column positions, in an arena that is reset after every resource.
 *
 * List documents (a root mapping with an `items` sequence, as kubectl and calicoctl
 * print them, or a root sequence, as calicoctl prints several results) are streamed: each item is built, handed to the callback and freed before
 * the next, so a 50,000-item list never exists as one tree. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

enum ynode_kind {
        YN_SCALAR,
        YN_SEQ,
        YN_MAP,
};

struct ypair;

struct ynode {
        uint8_t kind;
        bool quoted;   /* scalar written with quotes, as a block or tagged !!str: never
                        * null/bool/int */
        uint32_t line; /* 1-based */
        uint32_t col;  /* 1-based */
        size_t n;      /* scalar length, or number of items / pairs */
        union {
                const char *str;          /* YN_SCALAR, NUL-terminated */
                struct ynode **items;     /* YN_SEQ */
                struct ypair *pairs;      /* YN_MAP */
        };
};

struct ypair {
        struct ynode *key;
        struct ynode *val;
};

/* Limits on what input can make us build. */
#define YDOC_MAX_DEPTH 64
#define YDOC_MAX_MAP_KEYS 256u
/* One scalar: Kubernetes caps all of an object's annotations together at 256 KiB. */
#define YDOC_MAX_SCALAR (256u << 10)
/* One file (50,000 BlockAffinities as kubectl prints them are 22 MB). */
#define YDOC_MAX_FILE_SIZE (256u << 20)

/* Called for every resource: the root of each non-list document, and each item of a
 * list document. Return <0 to stop loading (the error must already be in diags), 0 to
 * go on. node->line is where the resource starts. */
typedef int (*ydoc_resource_fn)(const struct ynode *node, void *userdata);

/* flags: YDOC_LIST_ITEMS streams the `items` of a root mapping (Calico resources); without
 * it every document is handed over whole (the settings file, where `items` is just an
 * unknown key). */
#define YDOC_LIST_ITEMS 1u
/* ydoc_load_stream(): the reader starts again at the first byte when called as
 * read(ctx, NULL, 0, &n) (returning 0, or -errno when it cannot). A stream in the plain
 * subset of block YAML that kubectl and calicoctl print is then read without libyaml
 * (yamltree.c), checked whole first: the same trees and errors, several times faster. */
#define YDOC_REWINDS 2u

/* Read every document in buf (size bytes; config/ reads no file: the daemon hands the
 * bytes in). name stands for the input in diagnostics. A YAML syntax error is an error
 * diagnostic with the position libyaml reports, and -EINVAL. */
int ydoc_load_buffer(const char *name, const void *buf, size_t size, unsigned flags, ydoc_resource_fn fn,
                     void *userdata, struct cfg_diags *diags);

/* The same, the bytes coming from read (a file, read piece by piece so that a large
 * one never sits in memory whole): read fills up to size bytes of buf and sets *ret_n
 * (0 at the end), or returns -errno, which fails the load with a "read error". More
 * than YDOC_MAX_FILE_SIZE bytes fail it with -EFBIG. */
typedef int (*ydoc_read_fn)(void *ctx, void *buf, size_t size, size_t *ret_n);
int ydoc_load_stream(const char *name, ydoc_read_fn read, void *ctx, unsigned flags, ydoc_resource_fn fn,
                     void *userdata, struct cfg_diags *diags);
/* The error for an input over YDOC_MAX_FILE_SIZE (a reader that knows its size first). */
int ydoc_too_large(const char *name, struct cfg_diags *diags);

/* Lookups on a tree. */
const struct ynode *ynode_get(const struct ynode *map, const char *key);
bool ynode_is_null(const struct ynode *n);
/* Plain scalar string, or NULL when n is not a scalar (or is null). */
const char *ynode_str(const struct ynode *n);
const char *ynode_kind_name(const struct ynode *n);
