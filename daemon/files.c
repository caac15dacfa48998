/* The files source (source.h): the `resources` setting's files and folders.
 *
 * Owns: the order files are read in (each entry of `resources` in turn; a folder's
 * YAML files by name, one level deep), the one naming rule, the checks that keep a
 * half-written or unreadable file from withdrawing routes, reading each file's bytes
 * (capped) and handing them with the file's path to config/'s loader, and, for the
 * daemon, the inotify watch on those folders (watch.c) that says when to read again.
 * Must never parse YAML (config/ does) or log (the loop does). */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load.h"
#include "source-impl.h"
#include "util.h"
#include "watch.h"
#include "yamltree.h"

bool files_is_resource_name(const char *n)
{
        size_t len = strlen(n);

        if (n[0] == '.')
                return false; /* hidden: editors' temp files, ConfigMap's ..data */
        return (len > 5 && streq(n + len - 5, ".yaml")) || (len > 4 && streq(n + len - 4, ".yml"));
}

int files_read(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_(freep) char *buf = NULL;
        size_t n = 0, cap = 0;
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
                return -EFBIG;
        /* Read to the end, whatever the size said: a file may grow, and a FIFO has no
         * size; more than max is refused, so a source fed for ever stops there. */
        for (;;) {
                ssize_t k;

                if (n == cap) {
                        size_t want = cap ? cap * 2 : (S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096);
                        char *p;

                        if (cap > max)
                                return -EFBIG;
                        if (want > max + 1)
                                want = max + 1;
                        if (!(p = realloc(buf, want + 1)))
                                return -ENOMEM;
                        buf = p;
                        cap = want;
                }
                k = read(fd, buf + n, cap - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        if (n > max)
                return -EFBIG;
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

/* ---- the walk ---- */

int files_fd_read(void *ctx, void *buf, size_t size, size_t *ret_n)
{
        int fd = *(int *)ctx;
        ssize_t k;

        do
                k = read(fd, buf, size);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        *ret_n = (size_t)k;
        return 0;
}

/* The file is read piece by piece into the parser: a 20 MB list of affinities never
 * sits in memory whole. One whose size is over the cap is not read at all; one that
 * grows past it while read (or a device) stops there (yamltree.c). */
static int read_resource_file(struct cfg_loader *l, const char *path, struct cfg_diags *d)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0) {
                cfg_error(d, path, 0, 0, "cannot open: %s", strerror(errno));
                return 0;
        }
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > YDOC_MAX_FILE_SIZE) {
                ydoc_too_large(path, d);
                return 0;
        }
        return cfg_loader_add_yaml_stream(l, path, files_fd_read, &fd);
}

/* One resource file. Symlinks are followed (ConfigMap volumes are made of them). An
 * entry that cannot be read as a file must not silently drop its resources (their
 * routes would be withdrawn): it is an error. So is an empty file: calicoctl and
 * kubectl never print one, and a file caught half-written must not withdraw anything.
 * Only an entry deleted since the folder was listed is a real change (in_dir). */
static int read_entry(struct cfg_loader *l, const char *path, bool in_dir, struct cfg_diags *d)
{
        struct stat st;

        if (stat(path, &st) < 0) {
                int e = errno;

                if (e == ENOENT && lstat(path, &st) == 0)
                        cfg_error(d, path, 0, 0, "broken symbolic link: its target is missing");
                else if (!(in_dir && e == ENOENT))
                        cfg_error(d, path, 0, 0, "cannot read resources: %s", strerror(e));
                return 0;
        }
        if (!S_ISREG(st.st_mode)) {
                cfg_error(d, path, 0, 0, "not a regular file (%s)",
                          S_ISDIR(st.st_mode) ? "a directory: only one folder level is read" : "a special file");
                return 0;
        }
        if (st.st_size == 0) {
                cfg_error(d, path, 0, 0, "empty file refused (a half-written file must not withdraw routes)");
                return 0;
        }
        return read_resource_file(l, path, d);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* The folder's resource files, sorted by name. -EINVAL (in d) stops the walk. */
static int list_dir(const char *dir, char ***ret, size_t *ret_n, struct cfg_diags *d)
{
        _cleanup_(closedirp) DIR *dp = opendir(dir);
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        int r = 0;

        if (!dp)
                return cfg_error(d, dir, 0, 0, "cannot read directory: %s", strerror(errno));
        while ((de = readdir(dp))) {
                if (!files_is_resource_name(de->d_name))
                        continue;
                if (n >= CFG_MAX_FILES) {
                        r = cfg_error(d, dir, 0, 0, "more than %d files", CFG_MAX_FILES);
                        break;
                }
                if ((r = GROW(names, cap, n + 1)) < 0 || asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (n > 1)
                qsort(names, n, sizeof(*names), name_cmp);
        *ret = names;
        *ret_n = n;
        return r;
}

static int read_dir(struct cfg_loader *l, const char *dir, struct cfg_diags *d)
{
        char **names = NULL;
        size_t n = 0;
        int r;

        r = list_dir(dir, &names, &n, d);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = read_entry(l, names[i], true, d);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

static int read_path(struct cfg_loader *l, const char *path, struct cfg_diags *d)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return cfg_error(d, path, 0, 0, "cannot read resources: %s", strerror(errno));
        if (S_ISDIR(st.st_mode))
                return read_dir(l, path, d);
        return read_entry(l, path, false, d);
}

/* Every entry of `resources` in turn; an entry that cannot be read at all stops the
 * walk (its error is in d and the load fails). */
static int read_resources(const struct cfg_settings *s, struct cfg_loader *l, struct cfg_diags *d)
{
        int r = 0;

        for (size_t i = 0; i < s->n_resources && r >= 0; i++)
                r = read_path(l, s->resources[i], d);
        return r == -ENOMEM ? r : 0;
}

/* ---- the source ---- */

struct files_source {
        struct source base;
        struct watch_set *watch;
        sd_event_source *io;
};

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct files_source *f = userdata;
        int r;

        (void)s;
        (void)fd;
        (void)revents;
        r = watch_set_drain(f->watch);
        /* A read error: reload to be sure. */
        if (r != 0 && f->base.ops && f->base.ops->changed)
                f->base.ops->changed(&f->base, f->base.userdata);
        return 0;
}

static int files_start(struct source *src)
{
        struct files_source *f = (struct files_source *)src;
        int r;

        if (!src->ev)
                return 0;
        if ((r = watch_set_new(&f->watch)) < 0 ||
            (r = sd_event_add_io(src->ev, &f->io, watch_set_fd(f->watch), EPOLLIN, on_inotify, f)) < 0)
                return r;
        return 0;
}

/* Watches first, then the files: a file changed while we read it is already watched,
 * so its event comes after and triggers another load. */
static int files_model(struct source *src, struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d)
{
        struct files_source *f = (struct files_source *)src;
        struct cfg_loader *l;
        int r;

        if (f->watch && (r = watch_set_update(f->watch, NULL, 0, (const char *const *)s->resources,
                                              s->n_resources)) < 0 && src->ops && src->ops->cannot_watch)
                src->ops->cannot_watch(src, r, src->userdata);
        if ((r = cfg_loader_new(s, d, &l)) < 0)
                return r;
        if ((r = read_resources(s, l, d)) < 0) {
                cfg_loader_free(l);
                return r;
        }
        if ((r = cfg_loader_finish(l, ret)) < 0)
                return r;
        return 1;
}

static void files_refresh(struct source *src)
{
        (void)src; /* every model is read afresh */
}

static bool files_same(const struct source *src, const struct cfg_source *conf)
{
        (void)src;
        return conf->type == CFG_DATASTORE_FILES;
}

static void files_origin(const struct source *src, struct source_origin *ret)
{
        (void)src;
        *ret = (struct source_origin){ .type = CFG_DATASTORE_FILES, .unit = "file" };
}

static bool files_waiting(const struct source *src, char *buf, size_t size)
{
        (void)src;
        (void)buf;
        (void)size;
        return false;
}

static const char *files_error(const struct source *src)
{
        (void)src;
        return NULL;
}

static void files_free(struct source *src)
{
        struct files_source *f = (struct files_source *)src;

        sd_event_source_disable_unref(f->io);
        watch_set_free(f->watch);
        free(f);
}

static const struct source_impl files_impl = {
        .type = CFG_DATASTORE_FILES,
        .start = files_start,
        .model = files_model,
        .refresh = files_refresh,
        .same = files_same,
        .origin = files_origin,
        .waiting = files_waiting,
        .error = files_error,
        .free = files_free,
};

int files_source_new(struct source **ret)
{
        struct files_source *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        f->base.impl = &files_impl;
        *ret = &f->base;
        return 0;
}
