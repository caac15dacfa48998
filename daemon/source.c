/* The datastore seam (source.h): the one path from the settings file to a model, and
 * the dispatch to the kind of source the settings name.
 *
 * Owns: reading the settings file and calicoctl's settings file (their bytes; config/
 * parses them), choosing the source implementation, and --check/--once's one-shot
 * load. Must never log or touch the host: callers report. */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "http.h"
#include "source-impl.h"
#include "util.h"
#include "yamltree.h"

int source_settings(const char *path, const char *host_name, struct cfg_settings *ret, struct cfg_diags *d)
{
        const char *p = path ? path : CFG_DEFAULT_CONFIG;
        _cleanup_(closep) int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        /* The default file is optional: every setting has a default. */
        if (fd < 0 && errno == ENOENT && !path)
                return cfg_settings_load_buffer(p, NULL, 0, host_name, ret, d);
        if (fd < 0) {
                int r = -errno;

                cfg_error(d, p, 0, 0, "cannot open: %s", strerror(-r));
                return r;
        }
        /* Size known and over the cap: not read at all. Otherwise (a FIFO, a file that
         * grows) the reader stops at the cap. */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > YDOC_MAX_FILE_SIZE)
                return ydoc_too_large(p, d);
        return cfg_settings_load_stream(p, files_fd_read, &fd, host_name, ret, d);
}

/* The Kubernetes datastore's kubeconfig: the `kubeconfig` setting, else calicoctl's
 * (its file's kubeconfig key, or KUBECONFIG), else the daemon's default; and `auto`
 * picks Kubernetes when nothing names a datastore but that kubeconfig is there (the
 * setting, or the default file). */
static int resolve_kubernetes(const struct cfg_settings *s, struct cfg_source *src)
{
        const char *path = s->kubeconfig ? s->kubeconfig : src->kdd.kubeconfig ? src->kdd.kubeconfig
                                                                               : CFG_DEFAULT_KUBECONFIG;
        char *p;

        if (src->type == CFG_DATASTORE_FILES && s->datastore == CFG_DATASTORE_AUTO && src->kubernetes &&
            (s->kubeconfig || access(CFG_DEFAULT_KUBECONFIG, F_OK) == 0))
                src->type = CFG_DATASTORE_KUBERNETES;
        if (src->type != CFG_DATASTORE_KUBERNETES)
                return 0;
        if (!(p = strdup(path)))
                return -ENOMEM;
        free(src->kdd.kubeconfig);
        src->kdd.kubeconfig = p;
        return 0;
}

static int resolve_calicoctl(const struct cfg_settings *s, const char *const *envp, struct cfg_source *ret,
                             struct cfg_diags *d);

int source_resolve(const struct cfg_settings *s, const char *const *envp, struct cfg_source *ret,
                   struct cfg_diags *d)
{
        struct cfg_source src = {};
        int r;

        if ((r = resolve_calicoctl(s, envp, &src, d)) < 0)
                return r;
        if ((r = resolve_kubernetes(s, &src)) < 0) {
                cfg_source_clear(&src);
                return r;
        }
        *ret = src;
        return 0;
}

static int resolve_calicoctl(const struct cfg_settings *s, const char *const *envp, struct cfg_source *ret,
                             struct cfg_diags *d)
{
        const char *path = s->calicoctl_config ? s->calicoctl_config : CFG_DEFAULT_CALICOCTL_CONFIG;
        _cleanup_(freep) char *buf = NULL;
        size_t size = 0;
        struct stat st;
        int r;

        if (s->datastore == CFG_DATASTORE_FILES)
                return cfg_source_resolve(s, NULL, 0, envp, ret, d);
        /* calicoctl reads its file when it exists, and only then the environment. */
        if (stat(path, &st) < 0) {
                if (errno != ENOENT)
                        return cfg_error(d, path, 0, 0, "cannot read calicoctl's settings file: %s", strerror(errno));
                return cfg_source_resolve(s, NULL, 0, envp, ret, d);
        }
        if ((r = files_read(path, YDOC_MAX_FILE_SIZE, &buf, &size)) == -EFBIG)
                return ydoc_too_large(path, d);
        if (r < 0)
                return r == -ENOMEM ? r : cfg_error(d, path, 0, 0, "cannot open: %s", strerror(-r));
        return cfg_source_resolve(s, buf, size, envp, ret, d);
}

int source_new(sd_event *ev, const struct cfg_source *conf, const struct source_ops *ops, void *userdata,
               struct source **ret)
{
        struct source *src = NULL;
        int r;

        switch (conf->type) {
        case CFG_DATASTORE_ETCDV3:
                r = etcd_source_new(&conf->etcd, &src);
                break;
        case CFG_DATASTORE_FILES:
                r = files_source_new(&src);
                break;
        case CFG_DATASTORE_KUBERNETES:
                r = kube_source_new(&conf->kdd, &src);
                break;
        default:
                return -EINVAL; /* AUTO is resolved before */
        }
        if (r < 0)
                return r;
        src->ev = ev;
        src->ops = ev ? ops : NULL;
        src->userdata = userdata;
        *ret = src;
        return 0;
}

void source_free(struct source *src)
{
        if (src)
                src->impl->free(src);
}

int source_start(struct source *src)
{
        return src->impl->start(src);
}

bool source_same(const struct source *src, const struct cfg_source *conf)
{
        return src->impl->same(src, conf);
}

int source_model(struct source *src, struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d)
{
        return src->impl->model(src, s, ret, d);
}

bool source_can_update(const struct source *src)
{
        return src->impl->update != NULL;
}

int source_update(struct source *src, struct cfg_model *m, struct cfg_touched *t, struct cfg_diags *d)
{
        int r = src->impl->update ? src->impl->update(src, m, t, d) : -EAGAIN;

        /* The planner takes each prefix once, in order (one change may name a block
         * twice: its own key and its node's new address). */
        if (r > 0)
                cfg_touched_done(t);
        return r;
}

void source_refresh(struct source *src)
{
        src->impl->refresh(src);
}

void source_origin(const struct source *src, struct source_origin *ret)
{
        src->impl->origin(src, ret);
}

bool source_waiting(const struct source *src, char *buf, size_t size)
{
        return src->impl->waiting(src, buf, size);
}

const char *source_error(const struct source *src)
{
        return src->impl->error(src);
}

int source_load_once(const char *config_path, const char *host_name, struct cfg_model **ret,
                     struct cfg_diags *d, struct source_origin *o, char *why, size_t why_size)
{
        struct cfg_settings s = {};
        struct cfg_source conf = {};
        struct source *src = NULL;
        int r;

        *o = (struct source_origin){ .type = CFG_DATASTORE_FILES, .unit = "file" };
        if (why_size)
                why[0] = '\0';
        r = source_settings(config_path, host_name, &s, d);
        if (r >= 0)
                r = source_resolve(&s, (const char *const *)environ, &conf, d);
        if (r >= 0 && conf.type == CFG_DATASTORE_ETCDV3 && cfg_etcd_password_in_clear(&conf.etcd))
                /* Said even when etcd does not answer: the operator learns it before. */
                cfg_notice(d, NULL, 0, 0, "the etcd password is sent in clear to %s (http://): use https://",
                           cfg_etcd_password_in_clear(&conf.etcd));
        if (r >= 0)
                r = source_new(NULL, &conf, NULL, NULL, &src);
        if (r >= 0) {
                src->settings = &s;
                r = source_start(src);
                source_origin(src, o);
                if (conf.type == CFG_DATASTORE_ETCDV3 && cfg_etcd_password_in_clear(&conf.etcd))
                        snprintf(o->clear_password, sizeof(o->clear_password), "%s",
                                 cfg_etcd_password_in_clear(&conf.etcd));
                if (r < 0 && source_error(src))
                        snprintf(why, why_size, "%s", source_error(src));
        }
        if (r >= 0)
                r = source_model(src, &s, ret, d);
        /* A one-shot source has read everything or failed: never "pending". */
        if (r == 0)
                r = -EIO;
        source_free(src);
        /* Read (or failed): nothing speaks HTTP again in this run, and the pass that
         * follows is the peak of a --once (100k blocks from etcd: 3.4 MB less). */
        http_unload();
        cfg_source_clear(&conf);
        cfg_settings_clear(&s);
        return r < 0 ? r : 0;
}
