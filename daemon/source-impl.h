/* Internal to the sources (source.c, files.c, source-etcd.c): the interface each kind
 * of datastore implements, and the part every source shares. */
#pragma once

#include "source.h"

struct source_impl {
        enum cfg_datastore type;
        int (*start)(struct source *src);
        int (*model)(struct source *src, struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d);
        /* NULL: every change needs a full build (source_update() answers -EAGAIN). */
        int (*update)(struct source *src, struct cfg_model *m, struct cfg_touched *t, struct cfg_diags *d);
        void (*refresh)(struct source *src);
        bool (*same)(const struct source *src, const struct cfg_source *conf);
        void (*origin)(const struct source *src, struct source_origin *ret);
        bool (*waiting)(const struct source *src, char *buf, size_t size);
        const char *(*error)(const struct source *src);
        void (*free)(struct source *src);
};

/* The first member of each source's own struct. */
struct source {
        const struct source_impl *impl;
        sd_event *ev; /* NULL: one-shot */
        const struct source_ops *ops;
        void *userdata;
        /* One-shot (source_load_once()): what model() will be given, known before
         * start() so that a source may load as it reads (NULL: not known). */
        struct cfg_settings *settings;
};

int files_source_new(struct source **ret);
int etcd_source_new(const struct cfg_etcd *conf, struct source **ret);
int kube_source_new(const struct cfg_kdd *conf, struct source **ret);
