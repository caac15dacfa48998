/* The daemon's event loop (DESIGN.md §4, §5).
 *
 * Level-triggered: events only mark the configuration or the host dirty and arm a
 * short debounce timer; the timer runs one full reconcile. A configuration that fails
 * to load keeps the last valid model and leaves the host alone. Stopping changes
 * nothing on the host. Idle, the loop sleeps: no polling beyond the watchdog and the
 * resyncSeconds safety net. */
#include "loop.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "log.h"
#include "monitor.h"
#include "reconcile.h"
#include "state.h"

#define CONFIG_DEBOUNCE_USEC (200 * 1000)
#define HOST_DEBOUNCE_USEC (20 * 1000)
#define MAX_WATCHES 64

struct loop {
        sd_event *ev;
        const char *config_path;
        const char *host_name;
        struct cfg_model *model; /* the last valid one */
        char last_error[512];
        char state_dir[4096];
        struct nl *nl;
        struct nl_monitor *mon;
        int ino_fd;
        int watches[MAX_WATCHES];
        size_t n_watches;
        sd_event_source *debounce;
        sd_event_source *resync;
        bool config_dirty;
        bool host_dirty;
        bool started;
        /* what the last pass left, for STATUS= */
        int uplink;
        char uplink_name[IFNAMSIZ];
        bool underlay;
        size_t n_underlay_pools, n_routes, n_failed;
        bool tunnels_unneeded;
};

/* ---- status ---- */

static void update_status(struct loop *l)
{
        char s[1024];
        size_t n;

        if (!l->model)
                n = (size_t)snprintf(s, sizeof(s), "STATUS=waiting for a valid configuration");
        else if (l->underlay)
                n = (size_t)snprintf(s, sizeof(s), "STATUS=underlay: %zu pool%s, proxy_arp on %s, %zu block route%s%s%s",
                                     l->n_underlay_pools, l->n_underlay_pools == 1 ? "" : "s",
                                     l->uplink_name[0] ? l->uplink_name : "(no uplink)", l->n_routes,
                                     l->n_routes == 1 ? "" : "s", l->tunnels_unneeded ? ", tunnels removed" : "",
                                     l->n_failed ? ", some changes failed" : "");
        else
                n = (size_t)snprintf(s, sizeof(s), "STATUS=overlay: no underlay pool applies%s",
                                     l->tunnels_unneeded ? ", tunnels removed" : "");
        if (l->last_error[0] && n < sizeof(s))
                snprintf(s + n, sizeof(s) - n, "; last error: %s", l->last_error);
        sd_notify(0, s);
}

/* ---- configuration ---- */

static void add_watch(struct loop *l, const char *path)
{
        int wd;

        if (l->n_watches >= MAX_WATCHES)
                return;
        wd = inotify_add_watch(l->ino_fd, path,
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                       IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR);
        if (wd >= 0)
                l->watches[l->n_watches++] = wd;
}

/* Watch folders, not files: editors and ConfigMaps replace files by renaming. */
static void rewatch(struct loop *l, const struct cfg_settings *s)
{
        char buf[4096];
        struct stat st;

        for (size_t i = 0; i < l->n_watches; i++)
                inotify_rm_watch(l->ino_fd, l->watches[i]);
        l->n_watches = 0;
        snprintf(buf, sizeof(buf), "%s", l->config_path ? l->config_path : CFG_DEFAULT_CONFIG);
        add_watch(l, dirname(buf));
        for (size_t i = 0; s && i < s->n_resources; i++) {
                if (stat(s->resources[i], &st) == 0 && S_ISDIR(st.st_mode)) {
                        add_watch(l, s->resources[i]);
                        continue;
                }
                snprintf(buf, sizeof(buf), "%s", s->resources[i]);
                add_watch(l, dirname(buf));
        }
}

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

static void reload(struct loop *l)
{
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        int r;

        r = cfg_model_load(&(struct cfg_load_opts){ .config_path = l->config_path, .host_name = l->host_name }, &m,
                           &d);
        log_diags(&d, LOG_NOTICE);
        if (r < 0) {
                char first[512] = "";

                log_diags(&d, LOG_ERR);
                for (size_t i = 0; i < d.n && !first[0]; i++)
                        if (d.v[i].severity == CFG_ERROR)
                                cfg_diag_fmt(&d.v[i], first, sizeof(first));
                snprintf(l->last_error, sizeof(l->last_error), "%s", first[0] ? first : strerror(-r));
                log_full(LOG_ERR, LOG_ID_CONFIG_REJECTED, NULL,
                         "configuration rejected, keeping the %s and the host as they are: %s",
                         l->model ? "last valid model" : "host", l->last_error);
                /* Watch what we can so that a fix is seen. */
                if (!l->model) {
                        struct cfg_settings s;
                        struct cfg_diags d2 = {};

                        if (cfg_settings_load(l->config_path ? l->config_path : CFG_DEFAULT_CONFIG,
                                              l->config_path != NULL, l->host_name, &s, &d2) == 0) {
                                rewatch(l, &s);
                                cfg_settings_clear(&s);
                        } else
                                rewatch(l, NULL);
                        cfg_diags_clear(&d2);
                }
        } else {
                if (l->model)
                        log_full(LOG_NOTICE, LOG_ID_RELOADED, NULL, "configuration reloaded: %zu pools, %zu blocks",
                                 m->n_pools, m->n_blocks);
                cfg_model_free(l->model);
                l->model = m;
                l->last_error[0] = 0;
                l->host_dirty = true;
                rewatch(l, &m->settings);
        }
        cfg_diags_clear(&d);
}

/* ---- reconcile ---- */

static void log_action(const struct plan_action *a, const struct nl_result *res, bool drift, int level)
{
        char line[512], field[128], dev[64];
        const char *fields[] = { field, dev, NULL };
        const char *id;

        plan_action_fmt(a, line, sizeof(line));
        snprintf(dev, sizeof(dev), "INTERFACE=%s", a->dev);
        switch (a->kind) {
        case PLAN_ADD_ROUTE:
        case PLAN_DEL_ROUTE:
                cfg_prefix_fmt(&a->route.dst, field + 15, sizeof(field) - 15);
                memcpy(field, "UNDERLAY_ROUTE=", 15);
                id = a->kind == PLAN_ADD_ROUTE ? LOG_ID_ROUTE_ADDED : LOG_ID_ROUTE_REMOVED;
                break;
        case PLAN_REMOVE_TUNNEL:
                snprintf(field, sizeof(field), "UNDERLAY_TUNNEL=%s", a->dev);
                id = LOG_ID_TUNNEL;
                break;
        default:
                snprintf(field, sizeof(field), "UNDERLAY_VALUE=%lld", (long long)a->value);
                id = LOG_ID_PROXY_ARP;
                break;
        }
        if (res->error) {
                log_full(LOG_ERR, LOG_ID_ACTION_FAILED, fields, "%s failed: %s%s%s", line, strerror(-res->error),
                         res->message[0] ? ": " : "", res->message);
                return;
        }
        log_full(level, drift ? LOG_ID_DRIFT : id, fields, "%s%s%s%s", drift ? "repaired drift: " : "", line,
                 res->message[0] ? ": " : "", res->message);
}

static void log_findings(const struct plan *p)
{
        for (size_t i = 0; i < p->n_findings; i++) {
                char code[96];
                const char *fields[] = { code, NULL };
                const struct plan_finding *f = &p->findings[i];

                snprintf(code, sizeof(code), "UNDERLAY_FINDING=%s", f->code);
                log_full(f->severity == PLAN_INFO ? LOG_DEBUG : LOG_WARNING,
                         strcmp(f->code, "foreign-route-conflict") == 0 ? LOG_ID_CONFLICT : LOG_ID_FINDING, fields,
                         "%s: %s", f->code, f->message);
        }
}

static void reconcile(struct loop *l, bool drift)
{
        struct reconcile r = {};
        int e;

        if (!l->model)
                return;
        e = reconcile_run(l->nl, l->model, &l->model->settings, l->state_dir, false, &r);
        if (e < 0) {
                snprintf(l->last_error, sizeof(l->last_error), "reconcile failed: %s", strerror(-e));
                log_err("%s", l->last_error);
                reconcile_clear(&r);
                return;
        }
        for (size_t i = 0; i < r.plan->n_actions; i++)
                log_action(&r.plan->actions[i], &r.results[i], drift && l->started,
                           r.plan->n_actions <= 64 ? LOG_INFO : LOG_DEBUG);
        if (r.plan->n_actions || !l->started)
                log_findings(r.plan);
        l->underlay = r.plan->underlay;
        l->tunnels_unneeded = r.plan->tunnels_unneeded;
        l->n_routes = r.plan->n_routes_wanted;
        l->n_failed = r.n_failed;
        l->n_underlay_pools = 0;
        for (size_t i = 0; i < r.plan->n_pools; i++)
                l->n_underlay_pools += r.plan->pools[i].applies && r.plan->pools[i].underlay;
        l->uplink = r.plan->uplink;
        snprintf(l->uplink_name, sizeof(l->uplink_name), "%s", r.plan->uplink_name);
        if (r.state_error)
                snprintf(l->last_error, sizeof(l->last_error), "runtime record in %.200s: %s", l->state_dir,
                         strerror(-r.state_error));
        else if (r.n_failed)
                snprintf(l->last_error, sizeof(l->last_error), "%zu change%s failed", r.n_failed,
                         r.n_failed == 1 ? "" : "s");
        else if (!strncmp(l->last_error, "reconcile failed", 16) || strstr(l->last_error, "failed"))
                l->last_error[0] = 0;
        if (r.plan->n_actions || !l->started)
                log_full(LOG_INFO, LOG_ID_RECONCILED, NULL, "reconciled: %zu change%s, %zu failed; %s mode",
                         r.plan->n_actions, r.plan->n_actions == 1 ? "" : "s", r.n_failed,
                         r.plan->underlay ? "underlay" : "overlay");
        reconcile_clear(&r);
}

static int on_debounce(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct loop *l = userdata;
        bool drift = !l->config_dirty;

        (void)s;
        (void)usec;
        if (l->config_dirty) {
                l->config_dirty = false;
                reload(l);
        }
        l->host_dirty = false;
        reconcile(l, drift);
        update_status(l);
        return 0;
}

static void arm(struct loop *l, uint64_t delay)
{
        uint64_t now;

        sd_event_now(l->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(l->debounce, now + delay);
        sd_event_source_set_enabled(l->debounce, SD_EVENT_ONESHOT);
}

/* ---- event sources ---- */

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct loop *l = userdata;
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));

        (void)s;
        (void)revents;
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
        l->config_dirty = true;
        arm(l, CONFIG_DEBOUNCE_USEC);
        return 0;
}

static bool pool_covers(const struct cfg_model *m, const struct cfg_prefix *p)
{
        return cfg_model_pool_for(m, p) != NULL;
}

/* Cheap relevance test: events about things we neither want nor own are dropped. */
static bool event_relevant(const struct loop *l, const struct nl_event *ev)
{
        const struct cfg_settings *s = &l->model->settings;

        switch (ev->type) {
        case NL_EV_ROUTE:
                if (ev->route.protocol == s->route_protocol || ev->route.dst.len == 0)
                        return true;
                return ev->route.dst.family == AF_INET && pool_covers(l->model, &ev->route.dst);
        case NL_EV_LINK:
                return ev->ifindex == l->uplink || s->uplink_mode == CFG_UPLINK_REGEX ||
                       (s->uplink && strcmp(ev->ifname, s->uplink) == 0) || strcmp(ev->ifname, s->tunnel_ipip) == 0 ||
                       strcmp(ev->ifname, s->tunnel_vxlan) == 0 || (s->uplink_mode == CFG_UPLINK_AUTO && !l->uplink);
        case NL_EV_ADDR:
                return true; /* tunnel and uplink addresses; rare */
        case NL_EV_NETCONF:
                return ev->ifindex == l->uplink || ev->ifindex < 0;
        }
        return false;
}

static void on_nl_event(const struct nl_event *ev, void *userdata)
{
        struct loop *l = userdata;

        if (l->model && event_relevant(l, ev))
                l->host_dirty = true;
}

static int on_netlink(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct loop *l = userdata;
        int r;

        (void)s;
        (void)fd;
        (void)revents;
        r = nl_monitor_drain(l->mon, on_nl_event, l);
        if (r == -ENOBUFS) {
                log_warning("rtnetlink event socket overrun: full resync");
                l->host_dirty = true;
        }
        if (l->host_dirty && !l->config_dirty)
                arm(l, HOST_DEBOUNCE_USEC);
        return 0;
}

static int on_resync(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct loop *l = userdata;
        uint32_t secs = l->model ? l->model->settings.resync_seconds : 0;

        if (secs) {
                sd_event_source_set_time(s, usec + (uint64_t)secs * 1000000);
                sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        l->host_dirty = true;
        arm(l, 0);
        return 0;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct loop *l = userdata;

        (void)s;
        (void)si;
        sd_notify(0, "RELOADING=1\nSTATUS=reloading");
        l->config_dirty = false;
        reload(l);
        reconcile(l, false);
        sd_notify(0, "READY=1");
        update_status(l);
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

static int setup(struct loop *l)
{
        sigset_t ss;
        int r;

        sigemptyset(&ss);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return -errno;
        if ((r = sd_event_default(&l->ev)) < 0 || (r = sd_event_add_signal(l->ev, NULL, SIGHUP, on_hup, l)) < 0 ||
            (r = sd_event_add_signal(l->ev, NULL, SIGTERM, on_term, l)) < 0 ||
            (r = sd_event_add_signal(l->ev, NULL, SIGINT, on_term, l)) < 0)
                return r;
        l->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (l->ino_fd < 0)
                return -errno;
        if ((r = sd_event_add_io(l->ev, NULL, l->ino_fd, EPOLLIN, on_inotify, l)) < 0 ||
            (r = nl_open(&l->nl)) < 0 || (r = nl_monitor_open(&l->mon)) < 0 ||
            (r = sd_event_add_io(l->ev, NULL, nl_monitor_fd(l->mon), EPOLLIN, on_netlink, l)) < 0 ||
            (r = sd_event_add_time(l->ev, &l->debounce, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_debounce, l)) < 0 ||
            (r = sd_event_add_time(l->ev, &l->resync, CLOCK_MONOTONIC, UINT64_MAX, 1000000, on_resync, l)) < 0)
                return r;
        /* Pings at half the WatchdogSec= interval, when systemd asks for them. */
        return sd_event_set_watchdog(l->ev, true);
}

static void arm_resync(struct loop *l)
{
        uint64_t now;

        if (!l->model || !l->model->settings.resync_seconds)
                return;
        sd_event_now(l->ev, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(l->resync, now + (uint64_t)l->model->settings.resync_seconds * 1000000);
        sd_event_source_set_enabled(l->resync, SD_EVENT_ONESHOT);
}

int loop_run(const char *config_path, const char *host_name)
{
        struct loop l = { .config_path = config_path, .host_name = host_name, .ino_fd = -1 };
        int r;

        log_init();
        state_dir(l.state_dir, sizeof(l.state_dir));
        if (strcmp(l.state_dir, "") == 0 || l.state_dir[0] != '/')
                snprintf(l.state_dir, sizeof(l.state_dir), "%s", STATE_DEFAULT_DIR);
        r = setup(&l);
        if (r < 0) {
                log_err("cannot start: %s", strerror(-r));
                r = 1;
                goto out;
        }
        log_full(LOG_INFO, LOG_ID_STARTED, NULL, "calico-underlayd starting (node %s)", host_name ? host_name : "?");
        reload(&l);
        reconcile(&l, false);
        l.started = true;
        arm_resync(&l);
        sd_notify(0, "READY=1");
        update_status(&l);
        r = sd_event_loop(l.ev);
        r = r < 0 ? 1 : 0;
out:
        sd_event_source_unref(l.debounce);
        sd_event_source_unref(l.resync);
        sd_event_unref(l.ev);
        nl_monitor_close(l.mon);
        nl_close(l.nl);
        if (l.ino_fd >= 0)
                close(l.ino_fd);
        cfg_model_free(l.model);
        return r;
}
