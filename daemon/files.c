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
#include <time.h>
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

        if (!buf && !size) /* start again (YDOC_REWINDS) */
                return lseek(fd, 0, SEEK_SET) < 0 ? -errno : 0;
        do
                k = read(fd, buf, size);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        *ret_n = (size_t)k;
        return 0;
}

/* What the walk does with each resource file it finds (stat()ed, following symlinks:
 * ConfigMap volumes are made of them): read it into a load, or into the cache. */
struct walk {
        int (*file)(struct walk *w, const char *path, const struct stat *st, struct cfg_diags *d);
        struct cfg_loader *l; /* the full load's */
};

/* The file is read piece by piece into the parser: a 20 MB list of affinities never
 * sits in memory whole. One whose size is over the cap is not read at all; one that
 * grows past it while read (or a device) stops there (yamltree.c). */
static int read_resource_file(struct walk *w, const char *path, const struct stat *st0, struct cfg_diags *d)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        (void)st0;
        if (fd < 0) {
                cfg_error(d, path, 0, 0, "cannot open: %s", strerror(errno));
                return 0;
        }
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > YDOC_MAX_FILE_SIZE) {
                ydoc_too_large(path, d);
                return 0;
        }
        return cfg_loader_add_yaml_stream(w->l, path, files_fd_read, &fd);
}

/* One resource file. Symlinks are followed (ConfigMap volumes are made of them). An
 * entry that cannot be read as a file must not silently drop its resources (their
 * routes would be withdrawn): it is an error. So is an empty file: calicoctl and
 * kubectl never print one, and a file caught half-written must not withdraw anything.
 * Only an entry deleted since the folder was listed is a real change (in_dir). */
static int read_entry(struct walk *w, int dfd, const char *name, const char *path, bool in_dir, struct cfg_diags *d)
{
        struct stat st;
        int r = fstatat(dfd, name, &st, 0);

        /* Gone from the folder opened: the folder may have been swapped (a symlink to
         * it re-pointed) while the walk went; the path says. */
        if (r < 0 && errno == ENOENT && dfd != AT_FDCWD)
                r = stat(path, &st);
        if (r < 0) {
                int e = errno;

                if (e == ENOENT && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
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
        return w->file(w, path, &st, d);
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
static int list_dir(DIR *dp, const char *dir, char ***ret, size_t *ret_n, struct cfg_diags *d)
{
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

/* Each file is stat()ed by its name in the folder: a path would be looked up
 * again from the root for every one of thousands of files. */
static int read_dir(struct walk *w, const char *dir, struct cfg_diags *d)
{
        _cleanup_(closedirp) DIR *dp = opendir(dir);
        size_t n = 0, skip = strlen(dir) + 1;
        char **names = NULL;
        int r;

        r = list_dir(dp, dir, &names, &n, d);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = read_entry(w, dirfd(dp), names[i] + skip, names[i], true, d);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

static int read_path(struct walk *w, const char *path, struct cfg_diags *d)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return cfg_error(d, path, 0, 0, "cannot read resources: %s", strerror(errno));
        if (S_ISDIR(st.st_mode))
                return read_dir(w, path, d);
        return read_entry(w, AT_FDCWD, path, path, false, d);
}

/* Every entry of `resources` in turn; an entry that cannot be read at all stops the
 * walk (its error is in d and the load fails). */
static int read_resources(const struct cfg_settings *s, struct walk *w, struct cfg_diags *d)
{
        int r = 0;

        for (size_t i = 0; i < s->n_resources && r >= 0; i++)
                r = read_path(w, s->resources[i], d);
        return r == -ENOMEM ? r : 0;
}

/* ---- the cache (issue 16) ----
 *
 * Per resource file its identity (device, inode, size, modification time, from the
 * stat() that follows symlinks, so a ConfigMap's ..data swap is a new identity) and
 * a hash of its bytes, with what it gave the load (config/'s cfg_file_rec). A change
 * reads only the files whose identity moved: one whose size is the same is hashed
 * first (a touch, or a copy of the same bytes, is not parsed), any other is parsed once
 * with the hash taken on the way. The model is then merged from every file's record
 * (cfg_model_from_file_recs(): the full load's rules and messages). Anything the cache
 * cannot take (a file with an error, the walk's own errors, a cap) is left to the full
 * load, which reads every file and says what is wrong. */

struct cached_file {
        char *path;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
        uint64_t hash;
        struct cfg_file_rec *rec;
        bool seen;
        bool racy; /* changed too close to when it was read to trust its times: hash it */
};

/* 64-bit words through a multiply and a shift (not cryptographic: it tells a touch
 * from a change), in four lanes that do not wait for each other (one lane was 2% of a
 * big export's load), the same whatever pieces the bytes come in. */
#define HASH_LANES 4
struct hash64 {
        uint64_t h[HASH_LANES], len;
        uint8_t tail[8 * HASH_LANES];
        size_t n_tail;
};

static uint64_t mix(uint64_t h, uint64_t w)
{
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        return h ^ (h >> 32);
}

static void hash_block(struct hash64 *x, const uint8_t *p)
{
        for (size_t i = 0; i < HASH_LANES; i++) {
                uint64_t w;

                memcpy(&w, p + 8 * i, 8);
                x->h[i] = mix(x->h[i], w);
        }
}

static void hash_bytes(struct hash64 *x, const void *data, size_t n)
{
        const uint8_t *p = data;
        size_t k;

        x->len += n;
        if (x->n_tail) {
                k = n < sizeof(x->tail) - x->n_tail ? n : sizeof(x->tail) - x->n_tail;
                memcpy(x->tail + x->n_tail, p, k);
                x->n_tail += k;
                p += k;
                n -= k;
                if (x->n_tail < sizeof(x->tail))
                        return;
                hash_block(x, x->tail);
                x->n_tail = 0;
        }
        for (; n >= sizeof(x->tail); p += sizeof(x->tail), n -= sizeof(x->tail))
                hash_block(x, p);
        memcpy(x->tail, p, n);
        x->n_tail = n;
}

static uint64_t hash_end(const struct hash64 *x)
{
        uint8_t last[sizeof(x->tail)] = {};
        struct hash64 y = *x;
        uint64_t h = 0;

        memcpy(last, x->tail, x->n_tail);
        hash_block(&y, last);
        for (size_t i = 0; i < HASH_LANES; i++)
                h = mix(h, y.h[i]);
        return mix(h, x->len);
}

struct hash_reader {
        int fd;
        struct hash64 h;
};

static int hashing_read(void *ctx, void *buf, size_t size, size_t *ret_n)
{
        struct hash_reader *hr = ctx;
        int r = files_fd_read(&hr->fd, buf, size, ret_n);

        if (r == 0 && !buf) /* started again: the hash too */
                hr->h = (struct hash64){};
        else if (r == 0)
                hash_bytes(&hr->h, buf, *ret_n);
        return r;
}

static int hash_fd(int fd, uint64_t *ret)
{
        struct hash64 h = {};
        char buf[65536];

        for (;;) {
                size_t n;
                int r = files_fd_read(&fd, buf, sizeof(buf), &n);

                if (r < 0)
                        return r;
                if (n == 0)
                        break;
                hash_bytes(&h, buf, n);
        }
        *ret = hash_end(&h);
        return lseek(fd, 0, SEEK_SET) < 0 ? -errno : 0;
}

static bool same_time(struct timespec a, struct timespec b)
{
        return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* The change time is in the identity as well as the modification time: a program can
 * set a file's mtime back (cp -p, touch -r, archives with fixed times), not its ctime,
 * which every write and every utimensat() moves. */
static bool same_identity(const struct cached_file *e, const struct stat *st)
{
        return !e->racy && e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
               same_time(e->mtime, st->st_mtim) && same_time(e->ctime, st->st_ctim);
}

/* A file changed within RACY_SEC of its reading may change again within the same tick
 * of a coarse clock (jiffies before Linux 6.13, 1-2 s on FAT, some NFS and FUSE
 * mounts) and keep the times it was read with: the next walk hashes it rather than
 * trust them (git's "racily clean" entries), until a walk finds it older. */
#define RACY_SEC 2

static void set_identity(struct cached_file *e, const struct stat *st)
{
        struct timespec now;

        e->dev = st->st_dev;
        e->ino = st->st_ino;
        e->size = st->st_size;
        e->mtime = st->st_mtim;
        e->ctime = st->st_ctim;
        e->racy = clock_gettime(CLOCK_REALTIME, &now) < 0 || now.tv_sec - st->st_ctim.tv_sec <= RACY_SEC ||
                  now.tv_sec - st->st_mtim.tv_sec <= RACY_SEC;
}

static void cached_file_free(struct cached_file *e)
{
        if (!e)
                return;
        free(e->path);
        cfg_file_rec_free(e->rec);
        free(e);
}

struct files_cache {
        struct cached_file **v; /* by path */
        size_t n, cap;
        /* The walk that made the model last built or updated from the cache. */
        struct cached_file **last;
        size_t n_last, cap_last;
        const struct cfg_model *last_model;
        size_t n_parsed; /* files parsed since the source began (tests) */
};

static size_t cache_pos(const struct files_cache *c, const char *path, bool *found)
{
        size_t lo = 0, hi = c->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int k = strcmp(c->v[mid]->path, path);

                if (k == 0) {
                        *found = true;
                        return mid;
                }
                if (k < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

static void cache_clear(struct files_cache *c)
{
        for (size_t i = 0; i < c->n; i++)
                cached_file_free(c->v[i]);
        free(c->v);
        free(c->last);
        *c = (struct files_cache){ .n_parsed = c->n_parsed };
}

struct cache_walk {
        struct walk w;
        struct files_cache *c;
        struct cfg_settings *s;
        struct cached_file **list; /* in the walk's order */
        size_t n, cap;
        size_t hint;  /* cache_entry()'s */
        bool cannot;  /* the cache cannot take it: the full load */
        bool changed; /* a file was parsed again, or came */
        /* Files parsed again: their entry and the record they had (NULL: new). */
        struct cached_file **redone;
        struct cfg_file_rec **old;
        size_t n_redone, cap_redone, cap_old;
};

static void cache_walk_clear(struct cache_walk *cw)
{
        for (size_t i = 0; i < cw->n_redone; i++)
                cfg_file_rec_free(cw->old[i]);
        free(cw->old);
        free(cw->redone);
        free(cw->list);
}

/* The entry for path, created empty where it belongs. A folder's files come in the
 * cache's order: the one after the last found (*hint) is tried first. */
static int cache_entry(struct files_cache *c, const char *path, size_t *hint, struct cached_file **ret)
{
        bool found;
        size_t pos;
        struct cached_file *e;
        int r;

        if (*hint < c->n && streq(c->v[*hint]->path, path)) {
                *ret = c->v[(*hint)++];
                return 0;
        }
        pos = cache_pos(c, path, &found);
        *hint = pos + 1;
        if (found) {
                *ret = c->v[pos];
                return 0;
        }
        if ((r = GROW(c->v, c->cap, c->n + 1)) < 0)
                return r;
        if (!(e = calloc(1, sizeof(*e))) || !(e->path = strdup(path))) {
                free(e);
                return -ENOMEM;
        }
        memmove(c->v + pos + 1, c->v + pos, (c->n - pos) * sizeof(*c->v));
        c->v[pos] = e;
        c->n++;
        *ret = e;
        return 0;
}

/* The file parsed again (its hash taken on the way): the entry's record and identity. */
static int cache_parse(struct cache_walk *cw, struct cached_file *e, int fd, const struct stat *st)
{
        struct hash_reader hr = { .fd = fd };
        struct cfg_file_rec *rec = NULL;
        int r;

        if ((r = GROW(cw->redone, cw->cap_redone, cw->n_redone + 1)) < 0 ||
            (r = GROW(cw->old, cw->cap_old, cw->n_redone + 1)) < 0)
                return r;
        r = cfg_file_rec_read(cw->s, e->path, hashing_read, &hr, &rec);
        if (r <= 0) {
                cw->cannot = true;
                return r < 0 ? r : -ECANCELED;
        }
        /* The old record stays until the model no longer needs it (an update in place
         * compares them). */
        cw->redone[cw->n_redone] = e;
        cw->old[cw->n_redone++] = e->rec;
        e->rec = rec;
        e->hash = hash_end(&hr.h);
        set_identity(e, st);
        cw->changed = true;
        cw->c->n_parsed++;
        return 0;
}

static int cache_file(struct walk *w, const char *path, const struct stat *st0, struct cfg_diags *d)
{
        struct cache_walk *cw = (struct cache_walk *)w;
        _cleanup_(closep) int fd = -EBADF;
        struct cached_file *e;
        struct stat st;
        uint64_t h;
        int r;

        (void)d;
        if ((r = cache_entry(cw->c, path, &cw->hint, &e)) < 0 || (r = GROW(cw->list, cw->cap, cw->n + 1)) < 0)
                return r;
        cw->list[cw->n++] = e;
        /* The same identity: not read at all. */
        if (e->rec && same_identity(e, st0))
                return 0;
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size > YDOC_MAX_FILE_SIZE) {
                cw->cannot = true;
                return -ECANCELED;
        }
        /* The same size: maybe the same bytes (touched, copied over). */
        if (e->rec && e->size == st.st_size) {
                if ((r = hash_fd(fd, &h)) < 0) {
                        cw->cannot = true;
                        return -ECANCELED;
                }
                if (h == e->hash) {
                        set_identity(e, &st);
                        return 0;
                }
        }
        return cache_parse(cw, e, fd, &st);
}

/* Files no walk found any more. */
static void cache_sweep(struct files_cache *c, struct cached_file **list, size_t n)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                list[i]->seen = true;
        for (size_t i = 0; i < c->n; i++) {
                if (c->v[i]->seen)
                        c->v[k++] = c->v[i];
                else
                        cached_file_free(c->v[i]);
        }
        c->n = k;
        for (size_t i = 0; i < n; i++)
                list[i]->seen = false;
}

/* The same files as the walk that made m, some parsed again: m updated in place
 * (cfg_model_update_file_recs()), or -EAGAIN. */
static int cache_in_place(struct cache_walk *cw, struct cfg_model *m, struct cfg_touched *t)
{
        _cleanup_(freep) struct cfg_file_rec **recs = malloc((cw->n ? cw->n : 1) * sizeof(*recs));
        _cleanup_(freep) size_t *changed = malloc((cw->n_redone ? cw->n_redone : 1) * sizeof(*changed));
        _cleanup_(freep) struct cfg_file_rec **old = malloc((cw->n_redone ? cw->n_redone : 1) * sizeof(*old));
        size_t n_changed = 0;

        if (!recs || !changed || !old)
                return -ENOMEM;
        for (size_t i = 0; i < cw->n; i++)
                recs[i] = cw->list[i]->rec;
        /* Each file once, in the walk's order, with the record the model was made from. */
        for (size_t i = 0; i < cw->n; i++)
                for (size_t k = 0; k < cw->n_redone; k++)
                        if (cw->redone[k] == cw->list[i]) {
                                if (!cw->old[k])
                                        return -EAGAIN;
                                changed[n_changed] = i;
                                old[n_changed++] = cw->old[k];
                                break;
                        }
        if (n_changed != cw->n_redone)
                return -EAGAIN; /* a file twice in the walk, or parsed twice */
        return cfg_model_update_file_recs(m, recs, cw->n, changed, old, n_changed, t);
}

/* Walk the resources through the cache. since: the model made from the cache's last
 * walk, to update in place when the files are the same (1 with t filled, or 0 when
 * nothing changed); else merge into *ret (1). -EAGAIN when the full load must decide,
 * -EINVAL (errors in d: a conflict across files), -ENOMEM. s are the settings to read
 * under, taken by *ret as cfg_loader_finish() takes them. */
static int cache_load(struct files_cache *c, struct cfg_settings *s, struct cfg_model *since,
                      struct cfg_touched *t, struct cfg_model **ret, struct cfg_diags *d)
{
        struct cache_walk cw = { .w.file = cache_file, .c = c, .s = s };
        _cleanup_(freep) const char **names = NULL;
        _cleanup_(freep) struct cfg_file_rec **recs = NULL;
        struct cfg_diags walk_diags = {};
        bool same_files;
        int r;

        r = read_resources(s, &cw.w, &walk_diags);
        if (r >= 0 && (cw.cannot || walk_diags.n_errors))
                r = -EAGAIN;
        cfg_diags_clear(&walk_diags);
        if (r < 0)
                goto out;
        cache_sweep(c, cw.list, cw.n);
        same_files = since && since == c->last_model && cw.n == c->n_last &&
                     !memcmp(cw.list, c->last, cw.n * sizeof(*cw.list));
        if (same_files && !cw.changed) {
                r = 0;
                goto out;
        }
        if (same_files) {
                r = cache_in_place(&cw, since, t);
                if (r != -EAGAIN)
                        goto out; /* -ENOMEM: m whole, t maybe short (the caller rebuilds) */
        }
        /* The records replaced are of no more use (only an update in place compares
         * them): freed before the merge, whose peak is the load's (the big export's
         * old record is 2.4 MB at 100k blocks). */
        for (size_t k = 0; k < cw.n_redone; k++) {
                cfg_file_rec_free(cw.old[k]);
                cw.old[k] = NULL;
        }
        names = malloc((cw.n ? cw.n : 1) * sizeof(*names));
        recs = malloc((cw.n ? cw.n : 1) * sizeof(*recs));
        if (!names || !recs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < cw.n; i++) {
                names[i] = cw.list[i]->path;
                recs[i] = cw.list[i]->rec;
        }
        r = cfg_model_from_file_recs(s, names, recs, cw.n, ret, d);
        if (r == -E2BIG)
                r = -EAGAIN;
        if (r < 0)
                goto out;
        free(c->last);
        c->last = TAKE_PTR(cw.list);
        c->n_last = cw.n;
        c->cap_last = cw.cap;
        c->last_model = *ret;
        r = 1;
out:
        /* A record the last model was made from was replaced, and that model was not
         * brought up to date: the next change merges everything. */
        if (r < 0 && cw.n_redone)
                c->last_model = NULL;
        cache_walk_clear(&cw);
        return r;
}

/* The new model's contents into m (the loop keeps its pointer), the old ones freed. */
static void model_replace(struct cfg_model *m, struct cfg_model *new)
{
        struct cfg_model old = *m;

        *m = *new;
        *new = old;
        new->settings = (struct cfg_settings){}; /* the same settings: m has them */
        cfg_model_free(new);
}

/* ---- the source ---- */

struct files_source {
        struct source base;
        struct watch_set *watch;
        sd_event_source *io;
        struct files_cache cache; /* a following source's only */
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

static void update_watch(struct files_source *f, const struct cfg_settings *s)
{
        struct source *src = &f->base;
        int r;

        if (f->watch && (r = watch_set_update(f->watch, NULL, 0, (const char *const *)s->resources,
                                              s->n_resources)) < 0 && src->ops && src->ops->cannot_watch)
                src->ops->cannot_watch(src, r, src->userdata);
}

/* Every file read into one load: --once, --check, and whatever the cache cannot take. */
static int full_load(struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d)
{
        struct walk w = { .file = read_resource_file };
        int r;

        if ((r = cfg_loader_new(s, d, &w.l)) < 0)
                return r;
        if ((r = read_resources(s, &w, d)) < 0) {
                cfg_loader_free(w.l);
                return r;
        }
        if ((r = cfg_loader_finish(w.l, ret)) < 0)
                return r;
        return 1;
}

/* Watches first, then the files: a file changed while we read it is already watched,
 * so its event comes after and triggers another load. A following source reads
 * into its cache, which files_update() then reads only the changed files into. */
static int files_model(struct source *src, struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d)
{
        struct files_source *f = (struct files_source *)src;
        int r;

        update_watch(f, s);
        /* A full build reads every file: the records were read under the settings of
         * the last one, which may not be these. */
        cache_clear(&f->cache);
        if (!src->ev)
                return full_load(s, ret, d);
        r = cache_load(&f->cache, s, NULL, NULL, ret, d);
        if (r != -EAGAIN)
                return r;
        return full_load(s, ret, d);
}

/* The files that changed read again, the model merged from the cache and compared with
 * m (a model of this source's, under the same settings) for the prefixes it touched. */
static int files_update(struct source *src, struct cfg_model *m, struct cfg_touched *t, struct cfg_diags *d)
{
        struct files_source *f = (struct files_source *)src;
        struct cfg_settings s = m->settings;
        struct cfg_model *new = NULL;
        int r;

        if (!src->ev)
                return -EAGAIN;
        update_watch(f, &m->settings);
        r = cache_load(&f->cache, &s, m, t, &new, d);
        if (r <= 0 || !new) /* in place, or nothing changed */
                return r;
        r = cfg_model_diff(m, new, t);
        if (r < 0) {
                new->settings = (struct cfg_settings){};
                cfg_model_free(new);
                f->cache.last_model = NULL;
                return r;
        }
        model_replace(m, new);
        f->cache.last_model = m;
        return r;
}

size_t files_source_parsed(const struct source *src)
{
        return src->impl->type == CFG_DATASTORE_FILES ? ((const struct files_source *)src)->cache.n_parsed : 0;
}

/* SIGHUP: every file read again. */
static void files_refresh(struct source *src)
{
        cache_clear(&((struct files_source *)src)->cache);
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
        cache_clear(&f->cache);
        free(f);
}

static const struct source_impl files_impl = {
        .type = CFG_DATASTORE_FILES,
        .start = files_start,
        .model = files_model,
        .update = files_update,
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
