/* The daemon's event loop (DESIGN.md §4, §5).
 *
 * Level-triggered: events only mark the configuration or the host dirty and arm a
 * short debounce timer; the timer runs one full reconcile (observe everything, plan,
 * apply), or, when only the source's documents changed and it can say which prefixes
 * that touched (source_update()), a delta pass over those prefixes against the host as
 * the last full pass left it (reconcile_delta(); issue 16). Every foreign event that
 * matters, an overrun, a failure, SIGHUP and the resync make the next pass a full one:
 * between full dumps the kernel's routes are known from our own changes and from the
 * route events of others' routes in main (plan_ctx_route()). A configuration that
 * fails to load keeps the last valid model and leaves the host alone. Stopping changes
 * nothing on the host. Idle, the loop sleeps: no polling beyond the watchdog and the
 * resyncSeconds safety net.
 *
 * Our own changes come back as rtnetlink events. Those that carry our request's port
 * id (routes, tunnel links) are dropped by a socket filter in the kernel; the rest (the
 * RTM_NEWLINK the kernel raises itself after a proxy_arp change, with port 0) are
 * relevant by design and cost one more pass, which finds nothing to do and emits
 * nothing; then the loop goes quiet. This file must never touch the host except
 * through reconcile_run() and reconcile_delta().
 *
 * The resources come through the datastore seam (source.h): the files source's
 * inotify watch, or the etcd client's list and watch, run on this loop too; a change
 * marks the configuration dirty like a settings change (with the source's debounce:
 * files wait longer than a watch, see below), and the model is built again from the
 * source. Losing the datastore changes nothing: the last model
 * stays, drift is still repaired from it, STATUS= and the journal say so, and the
 * source retries until the datastore answers again. */
#include "loop.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "datastore.h"
#include "log.h"
#include "metrics-file.h"
#include "metrics.h"
#include "monitor.h"
#include "reconcile.h"
#include "source.h"
#include "state.h"
#include "text.h"
#include "upstream-file.h"
#include "upstream.h"
#include "version.h"
#include "watch.h"

/* How long a configuration change waits for more, per source (issue 16): the delay
 * gathers what belongs together into one pass, and must not be what a change costs.
 *
 * Files are written in several steps by tools that know nothing of us: an editor
 * saves through a temporary file and a rename, a ConfigMap swaps a symbolic link, an
 * export (calicoctl get -o yaml, one file per kind or per node) writes file after
 * file, each a few milliseconds apart but with pauses while calicoctl pages through
 * the datastore. A pass in the middle reads a half-written export (a node's blocks
 * without the node), so files wait for 200 ms of quiet, and at most 2 s under a
 * steady stream. The settings file and calicoctl's are files too.
 *
 * A watch (etcd, Kubernetes) delivers whole objects, each already complete and
 * consistent on its own: nothing is half-written, and the next event can only make
 * the model more current. What is worth gathering is a burst (calicoctl apply of a
 * multi-document file, an IPAM transaction's several keys, a watch answer carrying
 * many events): they arrive well under a millisecond to a few milliseconds apart.
 * 20 ms of quiet covers that; a steady stream (a large cluster's pods coming and
 * going) never postpones a pass beyond 50 ms, which bounds the latency of every
 * change. The first list and a list after a broken watch come here too: they are
 * complete reads, the short delay is right for them as well. */
#define FILES_DEBOUNCE_USEC (200 * 1000ULL)
#define FILES_DEBOUNCE_MAX_USEC (2 * 1000 * 1000ULL)
#define WATCH_DEBOUNCE_USEC (20 * 1000ULL)
#define WATCH_DEBOUNCE_MAX_USEC (50 * 1000ULL)
/* Host events come in bursts: one syscall (a link going away takes its routes and
 * addresses) queues them all at once and one read sees them together; a script or a
 * routing daemon issues many syscalls a few microseconds apart. A few milliseconds
 * of quiet coalesce both, and keep drift repair "at once" for a human. */
#define HOST_DEBOUNCE_USEC (5 * 1000ULL)
#define HOST_DEBOUNCE_MAX_USEC (200 * 1000ULL)
/* A pass that failed is retried, backing off up to this. */
#define RETRY_MIN_USEC (1000 * 1000ULL)
#define RETRY_MAX_USEC (300 * 1000 * 1000ULL)
/* Below this the event socket would lose notifications in any bulk change. */
#define MONITOR_RCVBUF_MIN (1 << 20)

struct loop {
        sd_event *ev;
        const char *config_path;
        const char *host_name;
        struct cfg_model *model; /* the last valid one */
        char config_error[512];  /* why the last load failed; "" once one succeeded */
        char host_error[512];    /* why the last pass did not converge */
        char state_dir[4096];
        char status[1024];       /* the last STATUS= sent */
        struct kern *nl;
        struct kern_monitor *mon;
        struct watch_set *watch; /* the settings file and calicoctl's */
        struct source *src;      /* where the resources come from */
        struct metrics metrics;  /* counted after each pass; written when metricsFile is set */
        struct metrics_file *metrics_file;
        char datastore_error[1024]; /* why the datastore does not answer; "" while it does */
        char source_desc[1100];     /* Kubernetes: "kubernetes https://..." for STATUS=, else "" */
        sd_event_source *debounce;
        sd_event_source *resync;
        sd_event_source *retry;
        sd_event_source *upstream; /* upstreamRoutesFile after in-place updates, gathered */
        uint64_t dirty_since;    /* when the debounce timer was first armed; 0 = not armed */
        uint64_t debounce_at;    /* when it fires; 0 = not armed */
        uint64_t retry_usec;     /* the current back-off; 0 = the last pass converged */
        bool config_dirty;
        bool host_dirty;
        bool lost_events;
        bool started;
        bool model_passed;       /* a pass with a model has run: until then, even 0 changes are said */
        /* what the last pass left, for STATUS= and the relevance filter */
        int uplink;
        char uplink_name[IFNAMSIZ];
        char uplink_error[128];
        bool underlay;
        size_t n_underlay_pools, n_routes, n_failed;
        bool tunnels_unneeded;
        bool upstream_pending;   /* the upstream routes file could not be written: retry */
        /* delta passes (issue 16): what the last full pass left, while the host is known
         * to be as it says (our own changes since applied to ctx); NULL: the next pass is
         * a full one */
        struct plan_ctx *ctx;
        struct host_snapshot known; /* that pass's snapshot (links and addresses; no routes) */
        bool settings_dirty;        /* the settings (or the source as a whole) changed: full reload */
        bool full_passes;           /* CALICO_UNDERLAY_FULL_PASSES=1: never a delta pass */
        size_t pass_slice;          /* a full pass applies this many changes at a time */
        bool pass_drift;            /* the running pass repairs drift (its drained lines) */
};

/* A full pass plans and applies 100k routes a slice at a time: its memory stays that
 * of a slice (1,024 changes, 100 kB), not 10 MB of changes and results. */
#define PASS_SLICE 1024
#define PASS_SLICE_MAX (1024 * 1024) /* CALICO_UNDERLAY_PASS_SLICE's cap */

static const char *config_path(const struct loop *l)
{
        return l->config_path ? l->config_path : CFG_DEFAULT_CONFIG;
}

/* ---- status ---- */

static void format_state(const struct loop *l, char *s, size_t size)
{
        const char *plural_p = l->n_underlay_pools == 1 ? "" : "s", *plural_r = l->n_routes == 1 ? "" : "s";

        char what[600];

        if (!l->model && l->src && source_waiting(l->src, what, sizeof(what)))
                snprintf(s, size, "waiting for %s", what);
        else if (!l->model)
                snprintf(s, size, "waiting for a valid configuration");
        else if (l->underlay && l->uplink)
                snprintf(s, size, "underlay: %zu pool%s, proxy_arp on %s, %zu block route%s%s", l->n_underlay_pools,
                         plural_p, l->uplink_name, l->n_routes, plural_r, l->tunnels_unneeded ? ", tunnels removed" : "");
        else if (l->underlay)
                snprintf(s, size, "underlay: %zu pool%s, no uplink (%s), %zu block route%s%s", l->n_underlay_pools,
                         plural_p, l->uplink_error[0] ? l->uplink_error : "not found", l->n_routes, plural_r,
                         l->tunnels_unneeded ? ", tunnels removed" : "");
        else
                snprintf(s, size, "overlay: no underlay pool applies%s", l->tunnels_unneeded ? ", tunnels removed" : "");
        if (l->model && l->source_desc[0] && strlen(s) < size)
                snprintf(s + strlen(s), size - strlen(s), "; from %.500s", l->source_desc);
}

/* One line: what the node does, then what is wrong until it is fixed. Sent only when
 * it changed, so an idle daemon does not wake systemd. */
static void update_status(struct loop *l, const char *prefix)
{
        char s[1024], msg[1200];
        size_t n;

        format_state(l, s, sizeof(s));
        n = strlen(s);
        if (l->config_error[0] && n < sizeof(s))
                n += (size_t)snprintf(s + n, sizeof(s) - n, "; last error: %s", l->config_error);
        if (l->datastore_error[0] && n < sizeof(s))
                n += (size_t)snprintf(s + n, sizeof(s) - n, "; datastore unreachable: %.*s (keeping the %s)",
                                      (int)text_utf8_prefix(l->datastore_error, strlen(l->datastore_error), 500),
                                      l->datastore_error, l->model ? "last model" : "host as it is");
        if (l->host_error[0] && n < sizeof(s))
                snprintf(s + n, sizeof(s) - n, "; %s", l->host_error);
        text_utf8_trim(s); /* cut to the buffer: not inside a character */
        if (!prefix && streq(s, l->status))
                return;
        snprintf(l->status, sizeof(l->status), "%s", s);
        snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix ? prefix : "", s);
        sd_notify(0, msg);
}

/* ---- metrics ---- */

static double wall_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Which datastore, and whether it answers (files always do). */
static void datastore_metrics(const struct loop *l, struct metrics *m)
{
        struct source_origin o = { .type = CFG_DATASTORE_FILES };
        char what[600];

        if (l->src)
                source_origin(l->src, &o);
        m->datastore = o.type == CFG_DATASTORE_ETCDV3        ? "etcdv3"
                       : o.type == CFG_DATASTORE_KUBERNETES ? "kubernetes"
                                                            : "files";
        m->datastore_up = !l->src || (!l->datastore_error[0] && !source_waiting(l->src, what, sizeof(what)));
}

/* The metrics hook: after each pass (r NULL: only the datastore's state changed). */
static void export_metrics(struct loop *l, const struct reconcile *r, bool drift, bool converged)
{
        struct metrics *m = &l->metrics;

        if (r) {
                struct metrics_pass p = {
                        .plan = r->plan,
                        .counted = r->n_reported,
                        .host = r->known ? r->known : &r->host,
                        .results = r->results,
                        .settings = &l->model->settings,
                        .seconds = (double)(r->observe_usec + r->plan_usec + r->apply_usec) / 1e6,
                        .now = wall_now(),
                        .drift = drift,
                        .converged = converged,
                };

                metrics_observe_pass(m, &p);
        }
        datastore_metrics(l, m);
        metrics_file_changed(l->metrics_file, l->model ? l->model->settings.metrics_file : NULL);
}

/* ---- configuration ---- */

static void log_diags(const struct cfg_diags *d, int level)
{
        char buf[1024], file[600];

        for (size_t i = 0; i < d->n; i++) {
                const char *fields[] = { file, NULL };

                if ((d->v[i].severity == CFG_ERROR) != (level == LOG_ERR))
                        continue;
                cfg_diag_fmt(&d->v[i], buf, sizeof(buf));
                snprintf(file, sizeof(file), "UNDERLAY_FILE=%s", d->v[i].file ? d->v[i].file : "");
                log_full(level, level == LOG_ERR ? LOG_ID_CONFIG_REJECTED : NULL, fields, "%s", buf);
        }
}

/* The settings file, and calicoctl's when it may name the datastore (the files
 * source watches the resources). */
static void rewatch(struct loop *l, const struct cfg_settings *s)
{
        const char *files[2] = { config_path(l) };
        size_t n = 1;
        int r;

        if (s && s->datastore != CFG_DATASTORE_FILES && s->calicoctl_config)
                files[n++] = s->calicoctl_config;
        r = watch_set_update(l->watch, files, n, NULL, 0);

        if (r < 0)
                log_warning("cannot watch the configuration (%s): changes need SIGHUP", strerror(-r));
}

static void reject(struct loop *l, const struct cfg_diags *d, int r)
{
        char first[512] = "";

        log_diags(d, LOG_ERR);
        for (size_t i = 0; i < d->n && !first[0]; i++)
                if (d->v[i].severity == CFG_ERROR)
                        cfg_diag_fmt(&d->v[i], first, sizeof(first));
        snprintf(l->config_error, sizeof(l->config_error), "%s", first[0] ? first : strerror(-r));
        text_utf8_trim(l->config_error);
        log_full(LOG_ERR, LOG_ID_CONFIG_REJECTED, NULL, "configuration rejected, keeping the %s as %s: %s",
                 l->model ? "last valid model and the host" : "host", l->model ? "they are" : "it is",
                 l->config_error);
}

/* ---- the datastore ---- */

static void arm(struct loop *l, uint64_t delay, uint64_t max);

/* A change of the settings or a resource file. */
static void files_changed(struct loop *l)
{
        l->config_dirty = true;
        arm(l, FILES_DEBOUNCE_USEC, FILES_DEBOUNCE_MAX_USEC);
}

/* A change the source reports: a watch's objects, or files (see the delays above). */
static void config_changed(struct loop *l)
{
        struct source_origin o;

        source_origin(l->src, &o);
        if (o.type == CFG_DATASTORE_FILES) {
                files_changed(l);
                return;
        }
        l->config_dirty = true;
        arm(l, WATCH_DEBOUNCE_USEC, WATCH_DEBOUNCE_MAX_USEC);
}

static void on_source_reachable(struct source *src, void *userdata)
{
        struct loop *l = userdata;
        struct source_origin o;

        l->settings_dirty = true; /* a new complete read: the model is built from it */
        source_origin(src, &o);
        if (l->datastore_error[0]) {
                log_full(LOG_NOTICE, LOG_ID_DATASTORE, NULL, "datastore reachable again: %s, %s %lld",
                         o.endpoint, o.type == CFG_DATASTORE_KUBERNETES ? "resourceVersion" : "revision",
                         (long long)o.revision);
                l->datastore_error[0] = '\0';
        } else
                log_info("datastore: %zu %ss at %s %lld from %s", o.n_keys, o.unit,
                         o.type == CFG_DATASTORE_KUBERNETES ? "resourceVersion" : "revision", (long long)o.revision,
                         o.endpoint);
        config_changed(l);
}

static void on_source_changed(struct source *src, void *userdata)
{
        (void)src;
        config_changed(userdata);
}

/* The packaged unit allows no IP sockets (files need none): say so instead of leaving
 * the operator with "Couldn't connect". */
static const char *ip_sockets_hint(void)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd >= 0) {
                close(fd);
                return "";
        }
        return errno == EAFNOSUPPORT || errno == EPERM || errno == EACCES
                       ? " (IP sockets are not allowed here: the unit needs the etcd or Kubernetes drop-in of "
                         "calico-underlayd(8))"
                       : "";
}

static void on_source_unreachable(struct source *src, const char *why, void *userdata)
{
        struct loop *l = userdata;
        const char *hint = ip_sockets_hint();

        (void)src;
        if (!l->datastore_error[0])
                log_full(LOG_WARNING, LOG_ID_DATASTORE, NULL, "datastore unreachable: %s%s; keeping the %s, retrying",
                         why, hint, l->model ? "last model and the host as they are" : "host as it is");
        else
                log_debug("datastore still unreachable: %s", why);
        snprintf(l->datastore_error, sizeof(l->datastore_error), "%s%s", why, hint);
        text_utf8_trim(l->datastore_error);
        update_status(l, NULL);
        if (l->model)
                export_metrics(l, NULL, false, false);
}

static void on_source_cannot_watch(struct source *src, int error, void *userdata)
{
        (void)src;
        (void)userdata;
        log_warning("cannot watch the configuration (%s): changes need SIGHUP", strerror(-error));
}

static const struct source_ops source_ops = {
        .changed = on_source_changed,
        .reachable = on_source_reachable,
        .unreachable = on_source_unreachable,
        .cannot_watch = on_source_cannot_watch,
};

static void stop_source(struct loop *l)
{
        source_free(l->src);
        l->src = NULL;
        l->datastore_error[0] = '\0';
}

/* The source the settings name: the running one when it is the same datastore reached
 * the same way (an etcd client keeps its connection and cache), else a new one. */
static int use_source(struct loop *l, const struct cfg_settings *s, const struct cfg_source *conf,
                      struct cfg_diags *d)
{
        char eps[512];
        int r;

        if (l->src && source_same(l->src, conf))
                return 0;
        stop_source(l);
        if ((r = source_new(l->ev, conf, &source_ops, l, &l->src)) < 0 || (r = source_start(l->src)) < 0) {
                stop_source(l);
                return cfg_error(d, NULL, 0, 0, "cannot start the %s datastore: %s", cfg_datastore_name(conf->type),
                                 strerror(-r));
        }
        if (conf->type == CFG_DATASTORE_ETCDV3) {
                cfg_etcd_endpoints_fmt(&conf->etcd, eps, sizeof(eps));
                log_info("datastore: etcdv3 at %s (from %s)%s", eps, conf->etcd.origin,
                         s->has_resources ? "; the resources setting is not read" : "");
                if (cfg_etcd_password_in_clear(&conf->etcd))
                        log_full(LOG_WARNING, LOG_ID_DATASTORE, NULL,
                                 "the etcd password is sent in clear to %s (http://): use https://",
                                 cfg_etcd_password_in_clear(&conf->etcd));
        }
        return 0;
}

/* upstreamRoutesFile: the upstream routes of the model just accepted, as
 * --upstream-routes --format json prints them, written only when they changed. A
 * failure is logged and retried at the next resync or reload. */
static void keep_upstream_routes(struct loop *l)
{
        const struct cfg_settings *s = &l->model->settings;
        struct upstream_input in = {};
        struct upstream *u = NULL;
        _cleanup_(freep) char *json = NULL;
        char sum[256], field[4200];
        const char *fields[] = { field, NULL };
        size_t len;
        int e;

        l->upstream_pending = false;
        sd_event_source_set_enabled(l->upstream, SD_EVENT_OFF);
        if (!s->upstream_routes_file)
                return;
        snprintf(field, sizeof(field), "UNDERLAY_FILE=%s", s->upstream_routes_file);
        e = upstream_input_from_model(l->model, &in);
        if (e >= 0)
                e = upstream_compute(&in, s->upstream_cover_free ? UPSTREAM_AGG_COVER_FREE : UPSTREAM_AGG_EXACT, &u);
        if (e >= 0)
                e = upstream_format(u, NULL, UPSTREAM_FMT_JSON, &json, &len);
        if (e >= 0)
                e = upstream_file_keep(s->upstream_routes_file, json, len);
        if (e < 0) {
                l->upstream_pending = true;
                log_full(LOG_ERR, LOG_ID_UPSTREAM_ROUTES, fields, "cannot write the upstream routes file %s: %s",
                         s->upstream_routes_file, strerror(-e));
        } else if (e > 0) {
                upstream_summary(u, sum, sizeof(sum));
                log_full(LOG_NOTICE, LOG_ID_UPSTREAM_ROUTES, fields, "upstream routes file %s updated: %s",
                         s->upstream_routes_file, sum);
        }
        upstream_free(u);
        upstream_input_clear(&in);
}

/* The upstream routes of the whole model cost about 26 ms of CPU at 100k blocks
 * (tests/bench-plan.c), more than ten times a delta pass's whole change: after a
 * change the source applied in place they wait this long, so that a stream of
 * changes costs one computation a second and no change's route waits for them. */
#define UPSTREAM_GATHER_USEC (1000 * 1000)

static void keep_upstream_routes_later(struct loop *l)
{
        int enabled = SD_EVENT_OFF;
        uint64_t now;

        if (!l->model->settings.upstream_routes_file)
                return;
        (void)sd_event_source_get_enabled(l->upstream, &enabled);
        if (enabled != SD_EVENT_OFF)
                return; /* the one already due covers this change too */
        sd_event_now(l->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(l->upstream, now + UPSTREAM_GATHER_USEC);
        sd_event_source_set_enabled(l->upstream, SD_EVENT_ONESHOT);
}

static int on_upstream(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct loop *l = userdata;

        (void)s;
        (void)usec;
        if (l->model)
                keep_upstream_routes(l);
        return 0;
}

/* Before leaving: the upstream routes of a change still gathering. */
static void flush_upstream_routes(struct loop *l)
{
        int due = SD_EVENT_OFF;

        (void)sd_event_source_get_enabled(l->upstream, &due);
        if (due != SD_EVENT_OFF && l->model)
                keep_upstream_routes(l);
}

static void arm_resync(struct loop *l);

/* The configuration entry of the journal (LOG_ID_RELOADED): a model loaded or reloaded
 * whole, or updated in place by its source (files: the files read again; a watch: the
 * objects that changed). An in-place update from a watch is logged at info, not notice:
 * a busy cluster makes many a second, each with its own pass summary. */
static void log_model(struct loop *l, const struct cfg_model *m, const char *what, int prio)
{
        struct source_origin o;
        char from[1200] = "";

        source_origin(l->src, &o);
        if (o.type == CFG_DATASTORE_ETCDV3)
                snprintf(from, sizeof(from), " from etcdv3 %s revision %lld", o.endpoint, (long long)o.revision);
        if (o.type == CFG_DATASTORE_KUBERNETES) {
                snprintf(from, sizeof(from), " from kubernetes %s resourceVersion %lld", o.endpoint,
                         (long long)o.revision);
                snprintf(l->source_desc, sizeof(l->source_desc), "kubernetes %s", o.endpoint);
        } else
                l->source_desc[0] = '\0';
        log_full(prio, LOG_ID_RELOADED, NULL, "configuration %s%s: node %s, %zu pool%s, %zu block%s, %zu %s%s", what,
                 from, m->settings.node_name ? m->settings.node_name : "?", m->n_pools, m->n_pools == 1 ? "" : "s",
                 m->n_blocks, m->n_blocks == 1 ? "" : "s", m->n_files, o.unit, m->n_files == 1 ? "" : "s");
}

static void accept_model(struct loop *l, struct cfg_model *m)
{
        int enabled = SD_EVENT_OFF;
        bool rearm;

        log_model(l, m, l->model ? "reloaded" : "loaded", l->model ? LOG_NOTICE : LOG_INFO);
        /* The periodic re-check runs whenever there is a model: also when the first one
         * came late (etcd's first list, a first configuration that was invalid), and at
         * once with a resyncSeconds changed at run time (not after the old period).
         * An unchanged period keeps the timer: frequent reloads must not postpone it. */
        (void)sd_event_source_get_enabled(l->resync, &enabled);
        rearm = !l->model || enabled == SD_EVENT_OFF ||
                l->model->settings.resync_seconds != m->settings.resync_seconds;
        cfg_model_free(l->model);
        l->model = m;
        if (rearm && l->started)
                arm_resync(l);
        l->config_error[0] = '\0';
        keep_upstream_routes(l);
        l->metrics.model_time = wall_now();
}

/* Settings first, then watches, then the resources (the source's current documents):
 * a file changed while we read it is already watched, so its event comes after and
 * triggers another load. */
static void reload(struct loop *l)
{
        struct cfg_diags d = {};
        struct cfg_settings s = {};
        struct cfg_source conf = {};
        struct cfg_model *m = NULL;
        int r;

        r = source_settings(l->config_path, l->host_name, &s, &d);
        /* Settings that do not load: keep watching what the last good ones named. */
        rewatch(l, r >= 0 ? &s : l->model ? &l->model->settings : NULL);
        if (r >= 0)
                r = source_resolve(&s, (const char *const *)environ, &conf, &d);
        if (r >= 0)
                r = use_source(l, &s, &conf, &d);
        if (r >= 0)
                r = source_model(l->src, &s, &m, &d);
        cfg_source_clear(&conf);
        cfg_settings_clear(&s);
        log_diags(&d, LOG_NOTICE);
        if (r < 0)
                reject(l, &d, r);
        else if (m)
                accept_model(l, m);
        /* else: the datastore's first list is pending; it marks us dirty when done */
        cfg_diags_clear(&d);
}

/* ---- reconcile ---- */

static void log_action(const struct host_change *a, const char *pool, const struct host_result *res, bool drift,
                       int level)
{
        char line[512], field[128], dev[64], pool_field[320];
        const char *fields[4] = { field };
        size_t n = 1;
        const char *id;

        /* 100k routes at debug level: not formatted when nobody reads them. */
        if (!res->error && !log_enabled(level))
                return;
        host_change_fmt(a, line, sizeof(line));
        /* Only the fields that mean something for this action (a blackhole has no device). */
        if (a->dev[0]) {
                snprintf(dev, sizeof(dev), "INTERFACE=%s", a->dev);
                fields[n++] = dev;
        }
        if (pool) {
                snprintf(pool_field, sizeof(pool_field), "UNDERLAY_POOL=%s", pool);
                fields[n++] = pool_field;
        }
        switch (a->kind) {
        case CHANGE_ADD_ROUTE:
        case CHANGE_DEL_ROUTE:
                memcpy(field, "UNDERLAY_ROUTE=", 15);
                cfg_prefix_fmt(&a->route.dst, field + 15, sizeof(field) - 15);
                id = a->kind == CHANGE_ADD_ROUTE ? LOG_ID_ROUTE_ADDED : LOG_ID_ROUTE_REMOVED;
                break;
        case CHANGE_REMOVE_TUNNEL:
                snprintf(field, sizeof(field), "UNDERLAY_TUNNEL=%s", a->dev);
                id = LOG_ID_TUNNEL;
                break;
        case CHANGE_ADD_RULE:
        case CHANGE_DEL_RULE:
                memcpy(field, "UNDERLAY_RULE=", 14);
                cfg_prefix_fmt(&a->rule->dst, field + 14, sizeof(field) - 14);
                id = LOG_ID_RULE;
                break;
        default:
                snprintf(field, sizeof(field), "UNDERLAY_VALUE=%lld", (long long)a->value);
                id = LOG_ID_PROXY_ARP;
                break;
        }
        if (res->error) {
                log_full(LOG_ERR, LOG_ID_ACTION_FAILED, fields, "%s failed: %s%s%s", line, strerror(-res->error),
                         res->message ? ": " : "", host_result_message(res));
                return;
        }
        log_full(level, drift ? LOG_ID_DRIFT : id, fields, "%s%s%s%s", drift ? "repaired drift: " : "", line,
                 res->message ? ": " : "", host_result_message(res));
}

static void log_findings(const struct plan *p)
{
        for (size_t i = 0; i < p->n_findings; i++) {
                char code[96];
                const char *fields[] = { code, NULL };
                const struct plan_finding *f = &p->findings[i];

                snprintf(code, sizeof(code), "UNDERLAY_FINDING=%s", f->code);
                log_full(f->severity == PLAN_INFO ? LOG_DEBUG : LOG_WARNING,
                         streq(f->code, "foreign-route-conflict") ? LOG_ID_CONFLICT : LOG_ID_FINDING, fields, "%s: %s",
                         f->code, f->message);
        }
}

static void log_uplink(const struct loop *l, int ifindex, const char *name, const char *error)
{
        char dev[64];
        const char *fields[] = { dev, NULL };

        snprintf(dev, sizeof(dev), "INTERFACE=%s", ifindex ? name : l->uplink_name);
        if (ifindex)
                log_full(l->started ? LOG_NOTICE : LOG_INFO, NULL, fields, "uplink: %s (ifindex %d)", name, ifindex);
        else
                log_full(LOG_WARNING, NULL, fields, "no uplink%s%s: %s", l->uplink ? ", lost " : "",
                         l->uplink ? l->uplink_name : "", error[0] ? error : "not found");
}

static void remember(struct loop *l, const struct reconcile *r)
{
        const struct plan *p = r->plan;

        l->underlay = p->underlay;
        l->tunnels_unneeded = p->tunnels_unneeded;
        l->n_routes = p->n_routes_wanted;
        l->n_failed = r->n_failed;
        l->n_underlay_pools = 0;
        for (size_t i = 0; i < p->n_pools; i++)
                l->n_underlay_pools += p->pools[i].applies && p->pools[i].underlay;
        if (p->uplink != l->uplink || !streq(p->uplink_name, l->uplink_name))
                log_uplink(l, p->uplink, p->uplink_name, p->uplink_error);
        l->uplink = p->uplink;
        snprintf(l->uplink_name, sizeof(l->uplink_name), "%s", p->uplink_name);
        snprintf(l->uplink_error, sizeof(l->uplink_error), "%s", p->uplink_error);
        if (r->state_error) {
                char err[sizeof(l->host_error)];

                snprintf(err, sizeof(err), "%s", r->state_why[0] ? r->state_why : strerror(-r->state_error));
                text_utf8_trim(err);
                /* Once per new error: a damaged record stays until someone fixes it. */
                if (!streq(err, l->host_error))
                        log_full(LOG_ERR, LOG_ID_RECORD, NULL, "%s", err);
                snprintf(l->host_error, sizeof(l->host_error), "%s", err);
        }
        else if (r->n_failed)
                snprintf(l->host_error, sizeof(l->host_error), "%zu change%s failed", r->n_failed,
                         r->n_failed == 1 ? "" : "s");
        else
                l->host_error[0] = '\0';
}

static void schedule_retry(struct loop *l)
{
        uint64_t now;

        l->retry_usec = l->retry_usec ? l->retry_usec * 2 : RETRY_MIN_USEC;
        if (l->retry_usec > RETRY_MAX_USEC)
                l->retry_usec = RETRY_MAX_USEC;
        sd_event_now(l->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(l->retry, now + l->retry_usec);
        sd_event_source_set_enabled(l->retry, SD_EVENT_ONESHOT);
}

/* Why a pass runs. Host events and resyncs find drift: the host moved, we did not. */
enum pass_reason {
        PASS_START,
        PASS_CONFIGURATION,
        PASS_HOST_EVENT,
        PASS_RESYNC,
        PASS_RETRY,
        PASS_RELOAD,
};

static const char *pass_reason_name(enum pass_reason why)
{
        static const char *const names[] = {
                [PASS_START] = "start",         [PASS_CONFIGURATION] = "configuration",
                [PASS_HOST_EVENT] = "host event", [PASS_RESYNC] = "resync",
                [PASS_RETRY] = "retry",         [PASS_RELOAD] = "reload",
        };

        return names[why];
}

static void drop_ctx(struct loop *l)
{
        plan_ctx_free(l->ctx);
        l->ctx = NULL;
        host_snapshot_clear(&l->known);
}

/* What every pass does with its outcome: the journal, STATUS=, the retry, the metrics.
 * delta: the prefixes a delta pass planned (0: a full pass). */
static size_t pass_done(struct loop *l, struct reconcile *r, enum pass_reason why, bool drift, size_t delta)
{
        size_t n = reconcile_n_actions(r);
        bool first = !l->model_passed; /* a watched source's model comes after the start */
        char how[64] = "";

        /* A sliced pass logged the changes it took out of the plan, and those left at
         * its head, as it applied them (drained()). */
        for (size_t i = r->n_reported; i < r->plan->n_actions; i++) {
                const struct host_change *a = &r->plan->actions[i];
                const char *pool = a->pool < l->model->n_pools ? l->model->pools[a->pool].name : NULL;

                log_action(a, pool, &r->results[i], drift, n <= 64 ? LOG_INFO : LOG_DEBUG);
        }
        l->model_passed = true;
        if (n || first)
                log_findings(r->plan);
        remember(l, r);
        if (delta)
                snprintf(how, sizeof(how), "; delta pass over %zu prefix%s", delta, delta == 1 ? "" : "es");
        log_debug("reconcile pass (%s): %zu change%s, %zu failed%s", pass_reason_name(why), n, n == 1 ? "" : "s",
                  r->n_failed, how);
        if (n || first)
                log_full(r->n_failed ? LOG_ERR : LOG_INFO, LOG_ID_RECONCILED, NULL,
                         "reconciled: %zu change%s, %zu failed; %s mode%s", n, n == 1 ? "" : "s", r->n_failed,
                         r->plan->underlay ? "underlay" : "overlay", how);
        if (r->n_failed || r->state_error)
                schedule_retry(l);
        else {
                l->retry_usec = 0;
                sd_event_source_set_enabled(l->retry, SD_EVENT_OFF);
        }
        export_metrics(l, r, drift, !r->n_failed && !r->state_error);
        return n;
}

/* A sliced pass's changes, reported as they are applied: only once the pass has more
 * than PLAN_SINK_KEEP (64) of them, so their lines are at the level of a long pass. */
static void drained(void *data, const struct host_change *a, const struct host_result *res, size_t n)
{
        struct loop *l = data;

        for (size_t i = 0; i < n; i++) {
                const char *pool = a[i].pool < l->model->n_pools ? l->model->pools[a[i].pool].name : NULL;

                log_action(&a[i], pool, &res[i], l->pass_drift, LOG_DEBUG);
        }
        metrics_count_changes(&l->metrics, a, res, n, l->pass_drift);
}

/* One full pass. Returns the number of actions taken (0: the host already matched). */
static size_t reconcile(struct loop *l, enum pass_reason why)
{
        struct reconcile_report rep = { .slice = l->pass_slice, .drained = drained, .data = l };
        struct reconcile r = {};
        bool drift = l->started && (why == PASS_HOST_EVENT || why == PASS_RESYNC);
        size_t n;
        int e;

        drop_ctx(l);
        if (!l->model)
                return 0;
        if (l->upstream_pending && why == PASS_RESYNC)
                keep_upstream_routes(l);
        /* A source that can update its model in place has full passes keep the context
         * (2.1 MB at 100k prefixes), so that its first change is a delta pass too.
         * Every full pass applies by slices (rep), its changes reported as they go. */
        l->pass_drift = drift;
        e = reconcile_pass(l->nl, l->model, l->state_dir, !l->full_passes && l->src && source_can_update(l->src),
                           &rep, &r);
        if (e < 0) {
                snprintf(l->host_error, sizeof(l->host_error), "reconcile failed: %s", strerror(-e));
                log_err("%s; retrying", l->host_error);
                export_metrics(l, &r, drift, false);
                reconcile_clear(&r);
                schedule_retry(l);
                return 0;
        }
        n = pass_done(l, &r, why, drift, 0);
        if (r.ctx) {
                /* Kept for delta passes: the links and addresses (the routes are in ctx). */
                l->ctx = r.ctx;
                r.ctx = NULL;
                l->known = r.host;
                r.host = (struct host_snapshot){};
                free(l->known.routes);
                free(l->known.routes4);
                l->known.routes = NULL;
                l->known.routes4 = NULL;
                l->known.n_routes = l->known.n_routes4 = 0;
        }
        reconcile_clear(&r);
        /* A full pass's dump and plan (100k routes: 10 MB each) leave free pages in the
         * heap between what stays (the context): give them back, they come again only
         * with the next full pass. */
        malloc_trim(0);
        return n;
}

/* A delta pass over the prefixes t touched; a full pass when only that can tell. A
 * delta pass that ran is reported like any pass (its changes, its failures, the
 * metrics) even when what it did leaves the known routes in doubt. */
static void reconcile_touched(struct loop *l, const struct cfg_touched *t)
{
        struct reconcile r = {};
        const char *why = NULL;
        bool failed;
        int e;

        e = reconcile_delta(l->nl, l->ctx, &l->known, l->model, t, &r, &why);
        if (r.plan)
                pass_done(l, &r, PASS_CONFIGURATION, false, t->n);
        failed = r.n_failed || r.state_error;
        reconcile_clear(&r);
        if (e > 0 && !failed)
                return;
        drop_ctx(l);
        if (e <= 0) {
                log_debug("no delta pass (%s): full pass", why ? why : strerror(-e));
                reconcile(l, PASS_CONFIGURATION);
        }
}

/* The model brought up to date in place by the source (source_update()), and the
 * prefixes that changed planned alone. false: a full reload is needed (the source
 * cannot tell, or this loop cannot: CALICO_UNDERLAY_FULL_PASSES). */
static bool update_in_place(struct loop *l)
{
        struct cfg_touched t = {};
        struct cfg_diags d = {};
        int r;

        if (l->full_passes || !l->model || !l->src)
                return false;
        r = source_update(l->src, l->model, &t, &d);
        if (r == -EAGAIN) {
                cfg_touched_clear(&t);
                cfg_diags_clear(&d);
                return false;
        }
        if (r == -ENOMEM) {
                /* Not the configuration's fault, and the model may be half changed:
                 * build it afresh (a full reload and pass). */
                cfg_touched_clear(&t);
                cfg_diags_clear(&d);
                return false;
        }
        log_diags(&d, LOG_NOTICE);
        if (r < 0)
                reject(l, &d, r); /* the model stays as it was */
        else
                l->config_error[0] = '\0'; /* valid again, even if back to what the model is */
        if (r > 0) {
                struct source_origin o;

                source_origin(l->src, &o);
                log_model(l, l->model, "updated in place", o.type == CFG_DATASTORE_FILES ? LOG_NOTICE : LOG_INFO);
                keep_upstream_routes_later(l);
                l->metrics.model_time = wall_now();
                if (t.all || !l->ctx)
                        reconcile(l, PASS_CONFIGURATION);
                else
                        reconcile_touched(l, &t);
        }
        cfg_touched_clear(&t);
        cfg_diags_clear(&d);
        return true;
}

/* Trailing-edge debounce with a ceiling: a steady stream of events cannot postpone
 * the pass for ever. A shorter delay never cuts a longer one short (a watch event
 * while a settings file is being written waits for the file). */
static void arm(struct loop *l, uint64_t delay, uint64_t max)
{
        uint64_t now, at;

        sd_event_now(l->ev, CLOCK_MONOTONIC, &now);
        if (!l->dirty_since)
                l->dirty_since = now;
        at = now + delay;
        if (at > l->dirty_since + max)
                at = l->dirty_since + max;
        if (at < l->debounce_at)
                at = l->debounce_at;
        l->debounce_at = at;
        sd_event_source_set_time(l->debounce, at);
        sd_event_source_set_enabled(l->debounce, SD_EVENT_ONESHOT);
}

static int on_debounce(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct loop *l = userdata;
        enum pass_reason why = l->config_dirty ? PASS_CONFIGURATION : l->lost_events ? PASS_RESYNC : PASS_HOST_EVENT;

        (void)s;
        (void)usec;
        l->dirty_since = 0;
        l->debounce_at = 0;
        /* Only the source's documents changed and the host is as last known: the
         * change alone is planned (issue 16). Anything else is a full pass. */
        if (l->config_dirty && !l->settings_dirty && !l->host_dirty && !l->lost_events && update_in_place(l)) {
                l->config_dirty = false;
                update_status(l, NULL);
                return 0;
        }
        if (l->config_dirty) {
                l->config_dirty = false;
                l->settings_dirty = false;
                reload(l);
        }
        l->host_dirty = false;
        l->lost_events = false;
        reconcile(l, why);
        update_status(l, NULL);
        return 0;
}

/* ---- event sources ---- */

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct loop *l = userdata;
        int r;

        (void)s;
        (void)fd;
        (void)revents;
        r = watch_set_drain(l->watch);
        if (r < 0)
                log_warning("reading inotify events: %s", strerror(-r));
        if (r != 0) {
                l->settings_dirty = true; /* the settings file, or calicoctl's */
                files_changed(l);
        }
        return 0;
}

/* A /128 in main inside an IPv6 underlay pool: Felix's route to a local pod, whose proxy
 * NDP entry follows it (coming with a new pod, going with its device). */
static bool pod_route6(const struct loop *l, const struct host_route *rt)
{
        if (rt->dst.family != AF_INET6 || rt->dst.len != 128 || rt->table != RT_TABLE_MAIN)
                return false;
        for (size_t i = 0; i < l->model->n_pools; i++) {
                const struct cfg_pool *p = &l->model->pools[i];

                if (p->cidr.family == AF_INET6 && !p->nat_outgoing && cfg_prefix_contains(&p->cidr, &rt->dst))
                        return true;
        }
        return false;
}

/* Could this route change what we want or own? Our own routes and anything in our
 * table, the default route (the uplink with auto, the gateway always), the route to the
 * can-reach address, and IPv6 pod routes (proxy NDP). Other foreign routes in main for
 * pool prefixes (BIRD's, Felix's) change nothing we do: they win by lookup while ours
 * stand by (DESIGN.md §3.2), so BIRD coming and going starts no pass at all. */
static bool route_relevant(const struct loop *l, const struct kern_event *ev)
{
        const struct cfg_settings *s = &l->model->settings;
        const struct host_route *rt = &ev->route;

        if (rt->protocol == s->route_protocol || rt->table == s->route_table || pod_route6(l, rt))
                return true;
        /* The default route: it names the uplink (auto), and its gateway is an
         * address no route of ours may cover (whatever the uplink mode; a delta pass
         * plans with the gateway of the last full pass). */
        if (rt->dst.len == 0 && rt->table == RT_TABLE_MAIN)
                return true;
        return s->uplink_mode == CFG_UPLINK_CAN_REACH && cfg_prefix_contains(&rt->dst, &s->uplink_reach);
}

static bool link_relevant(const struct loop *l, const struct kern_event *ev)
{
        const struct cfg_settings *s = &l->model->settings;

        if (ev->ifindex == l->uplink || !l->uplink || s->uplink_mode == CFG_UPLINK_REGEX)
                return true;
        if (s->uplink_mode == CFG_UPLINK_NAME && s->uplink && streq(ev->ifname, s->uplink))
                return true;
        return streq(ev->ifname, s->tunnel_ipip) || streq(ev->ifname, s->tunnel_vxlan) ||
               streq(ev->ifname, s->tunnel_vxlan_v6);
}

/* Cheap relevance test: events about things we neither want nor own are dropped. */
static bool event_relevant(const struct loop *l, const struct kern_event *ev)
{
        switch (ev->type) {
        case NL_EV_ROUTE:
                return route_relevant(l, ev);
        case NL_EV_RULE:
                /* Ours changed or deleted by someone else: repair. Others' rules are
                 * theirs. */
                return ev->rule.protocol == l->model->settings.route_protocol;
        case NL_EV_LINK:
                return link_relevant(l, ev);
        case NL_EV_ADDR:
                return true; /* the uplink's subnet, tunnel addresses, can-reach; rare */
        case NL_EV_NETCONF:
                /* proxy_arp reset by hand on the uplink comes as RTM_NEWNETCONF;
                 * -1 and -2 are "all" and "default" */
                return ev->ifindex == l->uplink || ev->ifindex < 0;
        }
        return false;
}

static void on_nl_event(const struct kern_event *ev, void *userdata)
{
        struct loop *l = userdata;
        int r;

        if (!l->model || l->host_dirty)
                return;
        if (event_relevant(l, ev)) {
                l->host_dirty = true;
                return;
        }
        /* Others' routes in main (BIRD's, static ones) start no pass, but a delta
         * pass counts and reports them for the prefixes they share with blocks: the
         * context learns them here, not only from the next full dump. */
        if (ev->type != NL_EV_ROUTE || !l->ctx)
                return;
        r = plan_ctx_route(l->ctx, &ev->route, ev->removed);
        if (r < 0)
                drop_ctx(l); /* the next change is planned by a full pass */
        else if (r > 0)
                l->host_dirty = true;
}

static int on_netlink(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct loop *l = userdata;
        int r;

        (void)s;
        (void)fd;
        (void)revents;
        r = kern_monitor_drain(l->mon, on_nl_event, l);
        if (r < 0)
                log_warning("reading rtnetlink events: %s", strerror(-r));
        if (r > 0) {
                if (!l->lost_events)
                        log_warning("rtnetlink event socket overrun (ENOBUFS): notifications lost, full resync");
                l->lost_events = true;
                l->host_dirty = true;
        }
        /* While the configuration is being debounced, that pass covers the host too. */
        if (l->host_dirty && !l->config_dirty)
                arm(l, HOST_DEBOUNCE_USEC, HOST_DEBOUNCE_MAX_USEC);
        return 0;
}

static void arm_resync(struct loop *l)
{
        uint64_t now;

        if (!l->model || !l->model->settings.resync_seconds) {
                sd_event_source_set_enabled(l->resync, SD_EVENT_OFF);
                return;
        }
        sd_event_now(l->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(l->resync, now + (uint64_t)l->model->settings.resync_seconds * 1000000);
        sd_event_source_set_enabled(l->resync, SD_EVENT_ONESHOT);
}

static int on_resync(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct loop *l = userdata;

        (void)s;
        (void)usec;
        arm_resync(l);
        if (reconcile(l, PASS_RESYNC) > 0)
                log_notice("periodic resync found the host out of step and repaired it");
        update_status(l, NULL);
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct loop *l = userdata;

        (void)s;
        (void)usec;
        reconcile(l, PASS_RETRY);
        update_status(l, NULL);
        return 0;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct loop *l = userdata;
        char msg[128];
        struct timespec ts;

        (void)s;
        (void)si;
        /* MONOTONIC_USEC= lets a Type=notify-reload manager match this reload. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
        sd_notify(0, msg);
        log_notice("SIGHUP: reloading the configuration");
        l->config_dirty = false;
        l->settings_dirty = false;
        reload(l);
        /* A reload also reads the datastore afresh (etcd: a new list). */
        if (l->src)
                source_refresh(l->src);
        reconcile(l, PASS_RELOAD);
        arm_resync(l);
        update_status(l, "READY=1\n");
        return 0;
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        (void)userdata;
        sd_notify(0, "STOPPING=1\nSTATUS=stopping; the host is left as it is");
        log_full(LOG_INFO, LOG_ID_STOPPED, NULL, "stopping on signal %u; routes and settings stay in place",
                 si->ssi_signo);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int setup_signals(struct loop *l)
{
        sigset_t ss;
        int r;

        sigemptyset(&ss);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return -errno;
        if ((r = sd_event_add_signal(l->ev, NULL, SIGHUP, on_hup, l)) < 0 ||
            (r = sd_event_add_signal(l->ev, NULL, SIGTERM, on_term, l)) < 0 ||
            (r = sd_event_add_signal(l->ev, NULL, SIGINT, on_term, l)) < 0)
                return r;
        return 0;
}

static int setup(struct loop *l)
{
        int r;

        if ((r = sd_event_default(&l->ev)) < 0 || (r = setup_signals(l)) < 0 || (r = watch_set_new(&l->watch)) < 0 ||
            (r = sd_event_add_io(l->ev, NULL, watch_set_fd(l->watch), EPOLLIN, on_inotify, l)) < 0 ||
            (r = kern_open(&l->nl)) < 0 || (r = kern_monitor_open(&l->mon)) < 0 ||
            (r = sd_event_add_io(l->ev, NULL, kern_monitor_fd(l->mon), EPOLLIN, on_netlink, l)) < 0 ||
            (r = sd_event_add_time(l->ev, &l->debounce, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_debounce, l)) < 0 ||
            (r = sd_event_add_time(l->ev, &l->resync, CLOCK_MONOTONIC, UINT64_MAX, 1000000, on_resync, l)) < 0 ||
            (r = sd_event_add_time(l->ev, &l->retry, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_retry, l)) < 0 ||
            (r = sd_event_add_time(l->ev, &l->upstream, CLOCK_MONOTONIC, UINT64_MAX, 10000, on_upstream, l)) < 0 ||
            (r = metrics_file_new(l->ev, &l->metrics, &l->metrics_file)) < 0)
                return r;
        /* Notifications of our own requests tell us nothing, and a bulk change would
         * overrun the socket with them. */
        if ((r = kern_monitor_ignore_sender(l->mon, kern_portid(l->nl))) < 0)
                log_warning("cannot filter our own changes out of the event socket (%s): each costs a pass",
                            strerror(-r));
        if (kern_monitor_rcvbuf(l->mon) < MONITOR_RCVBUF_MIN)
                log_warning("rtnetlink event socket buffer is only %zu bytes (no CAP_NET_ADMIN?): bulk changes "
                            "will overrun it and cost full resyncs",
                            kern_monitor_rcvbuf(l->mon));
        /* Pings at half the WatchdogSec= interval, when systemd asks for them. */
        return sd_event_set_watchdog(l->ev, true);
}

int loop_run(const char *config, const char *host_name)
{
        struct loop l = { .config_path = config, .host_name = host_name };
        int r;

        log_init();
        metrics_init(&l.metrics);
        /* A diagnostic: every pass a full one, as before delta passes (the benchmark
         * runs both side by side). */
        l.full_passes = getenv("CALICO_UNDERLAY_FULL_PASSES") && streq(getenv("CALICO_UNDERLAY_FULL_PASSES"), "1");
        if (l.full_passes)
                log_info("CALICO_UNDERLAY_FULL_PASSES=1: every pass is a full one");
        /* A test knob: tiny slices, so that a small cluster's pass has several. */
        l.pass_slice = PASS_SLICE;
        if (getenv("CALICO_UNDERLAY_PASS_SLICE")) {
                const char *s = getenv("CALICO_UNDERLAY_PASS_SLICE");
                char *end;
                unsigned long v = strtoul(s, &end, 10);

                l.pass_slice = *s >= '0' && *s <= '9' && !*end && v >= 1 && v <= PASS_SLICE_MAX ? v : PASS_SLICE;
                log_info("CALICO_UNDERLAY_PASS_SLICE=%zu: a full pass applies that many changes at a time",
                         l.pass_slice);
        }
        state_dir(l.state_dir, sizeof(l.state_dir));
        if (l.state_dir[0] != '/')
                snprintf(l.state_dir, sizeof(l.state_dir), "%s", STATE_DEFAULT_DIR);
        log_full(LOG_INFO, LOG_ID_STARTED, NULL, "calico-underlayd %s starting", PACKAGE_VERSION);
        r = setup(&l);
        if (r < 0) {
                log_err("cannot start: %s", strerror(-r));
                r = 1;
                goto out;
        }
        /* The event sockets are open before the first look at the host and the files:
         * whatever changes from here on is seen. */
        reload(&l);
        reconcile(&l, PASS_START);
        l.started = true;
        arm_resync(&l);
        /* READY=1 even without a valid configuration: the daemon is up and watching,
         * and STATUS= says what it waits for. */
        update_status(&l, "READY=1\n");
        r = sd_event_loop(l.ev);
        r = r < 0 ? 1 : 0;
        flush_upstream_routes(&l);
out:
        sd_event_source_unref(l.debounce);
        sd_event_source_unref(l.resync);
        sd_event_source_unref(l.retry);
        sd_event_source_unref(l.upstream);
        source_free(l.src);
        metrics_file_free(l.metrics_file);
        sd_event_unref(l.ev);
        kern_monitor_close(l.mon);
        kern_close(l.nl);
        watch_set_free(l.watch);
        drop_ctx(&l);
        cfg_model_free(l.model);
        return r;
}
