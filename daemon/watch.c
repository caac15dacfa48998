/* An inotify watch set over some of the daemon's inputs (the loop's: the settings file
 * and calicoctl's; the files source's: the resources). It owns one inotify descriptor
 * and the table of (folder, name) pairs that matter; it reads events and says whether
 * the inputs may have changed. It never reads the configuration itself and never
 * logs: the event loop decides what to do.
 *
 * Why folders: an editor's save or `kubectl`'s ConfigMap update replaces a file by
 * renaming another over it, and a watch on the old inode would go quiet. A ConfigMap
 * volume holds `..data -> ..<timestamp>` and one symlink per key through `..data`; an
 * update renames a new `..data` symlink over the old one, so `..data` counts as a
 * change wherever it appears. */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "util.h"

/* Watch entries at most: the settings file's folder, one or two per resources entry,
 * and the folder of each link's target. */
#define WATCH_MAX 1024
#define WATCH_MASK                                                                                             \
        (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | \
         IN_ATTRIB | IN_ONLYDIR)

struct watch_entry {
        int wd;
        bool any;                /* a resources folder: any YAML file in it */
        char name[NAME_MAX + 1]; /* otherwise the one entry of the folder that matters */
};

struct watch_set {
        int fd;
        struct watch_entry *v;
        size_t n, cap;
};

int watch_set_new(struct watch_set **ret)
{
        struct watch_set *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
                int r = -errno;

                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

void watch_set_free(struct watch_set *w)
{
        if (!w)
                return;
        close(w->fd); /* drops every watch */
        free(w->v);
        free(w);
}

int watch_set_fd(const struct watch_set *w)
{
        return w->fd;
}

static int add(struct watch_set *w, const char *dir, bool any, const char *name)
{
        struct watch_entry *e;
        int wd;

        if (w->n >= WATCH_MAX)
                return -E2BIG;
        if (name && strlen(name) > NAME_MAX)
                return -ENAMETOOLONG;
        /* The same folder again gives the same descriptor: its watch is kept. */
        wd = inotify_add_watch(w->fd, dir, WATCH_MASK);
        if (wd < 0)
                return -errno;
        if (GROW(w->v, w->cap, w->n + 1) < 0)
                return -ENOMEM;
        e = &w->v[w->n++];
        *e = (struct watch_entry){ .wd = wd, .any = any };
        snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
        return 0;
}

/* Watch the folder holding path for path's last component; when that folder does
 * not exist, its parent for the folder's name, and so on up: creating the missing
 * folders is then seen one level at a time, each creation triggering a reload that
 * watches one level deeper. */
static int add_parent(struct watch_set *w, const char *path)
{
        char cur[PATH_MAX], name[NAME_MAX + 1];
        size_t len;
        int r;

        if (snprintf(cur, sizeof(cur), "%s", path) >= (int)sizeof(cur))
                return -ENAMETOOLONG;
        for (;;) {
                char *slash;
                const char *dir;

                len = strlen(cur);
                while (len > 1 && cur[len - 1] == '/')
                        cur[--len] = '\0';
                slash = strrchr(cur, '/');
                if (snprintf(name, sizeof(name), "%s", slash ? slash + 1 : cur) >= (int)sizeof(name))
                        return -ENAMETOOLONG;
                if (!name[0])
                        return 0; /* "/" itself */
                if (!slash)
                        dir = ".";
                else if (slash == cur)
                        dir = "/";
                else {
                        *slash = '\0';
                        dir = cur;
                }
                r = add(w, dir, false, name);
                if (r != -ENOENT && r != -ENOTDIR)
                        return r;
                if (streq(dir, ".") || streq(dir, "/"))
                        return r;
                /* cur now holds dir: go one level up */
        }
}

/* A symlink is followed when the file is read, but a watch on the link's folder sees
 * only the link: watch the folder of what it resolves to as well (for that name), so
 * an edit of the target is seen. A link re-pointed elsewhere shows in the link's own
 * folder, and the reload that follows resolves it again. Only links are resolved
 * (realpath() follows every link on the way, folders included). */
static int add_link_target(struct watch_set *w, const char *path)
{
        char real[PATH_MAX];
        struct stat st;

        if (lstat(path, &st) < 0 || !S_ISLNK(st.st_mode) || !realpath(path, real))
                return 0; /* not a link, or dangling: the link's folder is watched */
        return add_parent(w, real);
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* The YAML files of a resources folder that are links (ConfigMap keys are: through
 * ..data, itself watched; plain links to files elsewhere need their targets'). */
static int add_folder_link_targets(struct watch_set *w, const char *dir)
{
        _cleanup_(closedirp) DIR *d = opendir(dir);
        char path[PATH_MAX];
        struct dirent *de;
        int r, first = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                if (!files_is_resource_name(de->d_name) || (de->d_type != DT_LNK && de->d_type != DT_UNKNOWN))
                        continue;
                if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
                        continue;
                if ((r = add_link_target(w, path)) < 0 && !first)
                        first = r;
        }
        return first;
}

static bool is_dir(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_wd(const struct watch_entry *v, size_t n, int wd)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].wd == wd)
                        return true;
        return false;
}

static size_t count_folders(const struct watch_set *w)
{
        size_t n = 0;

        for (size_t i = 0; i < w->n; i++)
                n += !has_wd(w->v, i, w->v[i].wd);
        return n;
}

int watch_set_update(struct watch_set *w, const char *const *files, size_t n_files, const char *const *resources,
                     size_t n_resources)
{
        struct watch_entry *old = w->v;
        size_t n_old = w->n;
        int r, first = 0;

        w->v = NULL;
        w->n = w->cap = 0;
        /* New watches go in before old ones go out, so a folder in both is never
         * unwatched, not even for a moment. */
        for (size_t i = 0; i < n_files; i++)
                if (((r = add_parent(w, files[i])) < 0 || (r = add_link_target(w, files[i])) < 0) && !first)
                        first = r;
        for (size_t i = 0; i < n_resources; i++) {
                const char *p = resources[i];

                if (is_dir(p) && ((r = add(w, p, true, NULL)) < 0 || (r = add_folder_link_targets(w, p)) < 0) &&
                    !first)
                        first = r;
                if ((r = add_parent(w, p)) < 0 && !first)
                        first = r;
                if (!is_dir(p) && (r = add_link_target(w, p)) < 0 && !first)
                        first = r;
        }
        for (size_t i = 0; i < n_old; i++)
                if (!has_wd(w->v, w->n, old[i].wd) && !has_wd(old, i, old[i].wd))
                        (void)inotify_rm_watch(w->fd, old[i].wd); /* EINVAL: already gone */
        free(old);
        return w->n ? (int)count_folders(w) : (first ? first : -ENOENT);
}

static bool event_relevant(const struct watch_set *w, const struct inotify_event *ev)
{
        const char *name = ev->len ? ev->name : "";

        if (ev->mask & IN_Q_OVERFLOW)
                return true; /* events were lost: reload to be sure */
        for (size_t i = 0; i < w->n; i++) {
                const struct watch_entry *e = &w->v[i];

                if (e->wd != ev->wd)
                        continue;
                /* A watched folder went away (its watch is gone with it). */
                if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
                        return true;
                if (streq(name, "..data"))
                        return true;
                if (e->any ? files_is_resource_name(name) : streq(name, e->name))
                        return true;
        }
        return false;
}

int watch_set_drain(struct watch_set *w)
{
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool relevant = false;
        ssize_t n;

        for (;;) {
                n = read(w->fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                if (n == 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;

                        relevant |= event_relevant(w, ev);
                        p += sizeof(*ev) + ev->len;
                }
        }
        return relevant;
}
