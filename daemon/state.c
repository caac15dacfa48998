/* The runtime record (see state.h). Plain "key=value" lines so an operator can read
 * it; rewritten atomically so a crash never leaves half a record. The folder must be
 * ours: another user's folder could swap the record, or a link, under us. A record that
 * does not parse is reported and kept, never overwritten: it may hold the only copy of
 * the uplink's original values. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define STATE_FILE "state"
#define STATE_TMP ".state.tmp"
#define STATE_MAX_LINES 64

const char *state_dir(char *buf, size_t size)
{
        const char *env = getenv("RUNTIME_DIRECTORY");
        size_t n;

        if (!env || !*env)
                return STATE_DEFAULT_DIR;
        n = strcspn(env, ":");
        snprintf(buf, size, "%.*s", (int)n, env);
        return buf;
}

static void closep_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}

/* systemd allocates DynamicUser= uids from this range (DYNAMIC_UID_MIN/MAX in its
 * meson_options.txt; systemd.exec(5), DynamicUser=). */
#define DYNAMIC_UID_MIN 61184u
#define DYNAMIC_UID_MAX 65519u

/* Run as root (an operator's --check, --once or --cleanup on a node where the packaged
 * unit runs), the unit's own folder is taken too: systemd made it for the unit's
 * dynamic user, whose uid no other user can hold, and only that user may write it.
 * Any other user's folder stays refused. */
static bool unit_folder_for_root(const struct stat *st)
{
        return geteuid() == 0 && st->st_uid >= DYNAMIC_UID_MIN && st->st_uid <= DYNAMIC_UID_MAX &&
               !(st->st_mode & (S_IWGRP | S_IWOTH));
}

/* The folder, owned by the user we run as (systemd makes RuntimeDirectory= so, for a
 * DynamicUser too). A link to it is followed: with DynamicUser= and
 * RuntimeDirectoryPreserve=yes, as the packaged unit has them, systemd keeps the folder
 * in /run/private and $RUNTIME_DIRECTORY (/run/calico-underlay) is a symbolic link to
 * it. What is checked is the folder actually opened (its owner, below); the files in
 * it are opened without following links. */
static int open_dir(const char *dir, bool create, char *why, size_t why_size)
{
        struct stat st;
        int fd, r;

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        r = -errno;
                        snprintf(why, why_size, "cannot create %s: %s", dir, strerror(-r));
                        return r;
                }
                fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (fd < 0) {
                r = -errno;
                if (r == -ENOTDIR)
                        snprintf(why, why_size, "%s is not a folder: refused", dir);
                else
                        snprintf(why, why_size, "cannot open %s: %s", dir, strerror(-r));
                return r == -ENOTDIR ? -EPERM : r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                snprintf(why, why_size, "cannot stat %s: %s", dir, strerror(-r));
                return r;
        }
        if (st.st_uid != geteuid() && !unit_folder_for_root(&st)) {
                close(fd);
                snprintf(why, why_size, "%s is owned by uid %u, not by this daemon's uid %u: refused", dir,
                         (unsigned)st.st_uid, (unsigned)geteuid());
                return -EPERM;
        }
        return fd;
}

static int parse_int(const char *s, long long min, long long max, long long *ret)
{
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_line(struct host_record *r, const char *line)
{
        const char *eq = strchr(line, '='), *val = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t)(eq - line) : 0;
        long long v;

#define KEY(k) (klen == sizeof(k) - 1 && strncmp(line, k, klen) == 0)
        if (KEY("ifname")) {
                if (strlen(val) == 0 || strlen(val) >= sizeof(r->ifname))
                        return -EINVAL;
                snprintf(r->ifname, sizeof(r->ifname), "%s", val);
                return 0;
        }
        if (KEY("ifindex") && parse_int(val, 0, INT32_MAX, &v) == 0)
                r->ifindex = (int)v;
        else if (KEY("proxy_arp") && parse_int(val, -1, INT32_MAX, &v) == 0)
                r->proxy_arp = (int)v;
        else if (KEY("proxy_delay_ms") && parse_int(val, -1, INT32_MAX, &v) == 0)
                r->proxy_delay_ms = v;
        else if (KEY("proxy_delay6_ms") && parse_int(val, 0, INT32_MAX, &v) == 0) {
                r->proxy_delay6_ms = v;
                r->has_proxy_delay6 = true;
        }
        else if (KEY("proxy_ndp") && parse_int(val, 0, INT32_MAX, &v) == 0) {
                r->proxy_ndp = (int)v;
                r->has_proxy_ndp = true;
        }
        else if (KEY("route_protocol") && parse_int(val, 1, 255, &v) == 0)
                r->route_protocol = (uint8_t)v;
        else if (KEY("route_table") && parse_int(val, 1, UINT32_MAX, &v) == 0)
                r->route_table = (uint32_t)v;
        else
                return -EINVAL;
#undef KEY
        return 0;
}

/* The lines of f into r; damaged says what is wrong, if anything. */
static void parse_record(FILE *f, struct host_record *r)
{
        char line[256];
        unsigned n = 0;

        while (fgets(line, sizeof(line), f)) {
                size_t len = strcspn(line, "\n");

                n++;
                if (line[len] != '\n' && !feof(f)) {
                        snprintf(r->damaged, sizeof(r->damaged), "line %u is too long", n);
                        return;
                }
                line[len] = 0;
                if (!line[0] || line[0] == '#')
                        continue;
                if (n > STATE_MAX_LINES || parse_line(r, line) < 0) {
                        snprintf(r->damaged, sizeof(r->damaged), "line %u does not parse: \"%.40s\"", n, line);
                        return;
                }
        }
        if (ferror(f))
                snprintf(r->damaged, sizeof(r->damaged), "read error");
        else if (!r->ifname[0] && (r->ifindex || r->proxy_arp >= 0 || r->proxy_delay_ms >= 0))
                snprintf(r->damaged, sizeof(r->damaged), "uplink values without ifname=");
        else if (!r->ifname[0] && !r->route_protocol)
                snprintf(r->damaged, sizeof(r->damaged), "nothing recorded in it");
        else if (!r->route_protocol != !r->route_table)
                snprintf(r->damaged, sizeof(r->damaged), "route_protocol= and route_table= go together");
}

int state_load(const char *dir, struct host_record *ret, char *why, size_t why_size)
{
        struct host_record r = HOST_RECORD_INIT;
        _cleanup_(closep_fd) int dfd = -1;
        _cleanup_(fclosep) FILE *f = NULL;
        int fd;

        dfd = open_dir(dir, false, why, why_size);
        if (dfd == -ENOENT) {
                *ret = r;
                return 0;
        }
        if (dfd < 0)
                return dfd;
        fd = openat(dfd, STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                *ret = r;
                return 0;
        }
        if (fd < 0 && errno == ELOOP) {
                snprintf(r.damaged, sizeof(r.damaged), "it is a symbolic link");
                *ret = r;
                return 0;
        }
        if (fd < 0 || !(f = fdopen(fd, "re"))) {
                int e = -errno;

                if (fd >= 0)
                        close(fd);
                snprintf(why, why_size, "cannot read %s/%s: %s", dir, STATE_FILE, strerror(-e));
                return e;
        }
        parse_record(f, &r);
        r.valid = !r.damaged[0] && r.ifname[0];
        if (r.damaged[0])
                r.route_protocol = 0, r.route_table = 0;
        *ret = r;
        return 0;
}

bool state_present(const struct host_record *rec)
{
        return rec->valid || rec->route_protocol;
}

/* A new file of our own: a leftover temporary file (a crash, or a link someone put
 * there) is removed, never written through. */
static int open_tmp(int dfd)
{
        for (int i = 0; i < 2; i++) {
                int fd = openat(dfd, STATE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

                if (fd >= 0 || errno != EEXIST)
                        return fd >= 0 ? fd : -errno;
                if (unlinkat(dfd, STATE_TMP, 0) < 0 && errno != ENOENT)
                        return -errno;
        }
        return -EEXIST;
}

static int write_record(FILE *f, const struct host_record *rec)
{
        fprintf(f, "# calico-underlayd: the uplink's settings before its first change, restored when\n"
                   "# underlay mode ends or on --cleanup (-1 = not recorded), and the protocol and\n"
                   "# table of our routes. Do not edit: a line that does not parse stops the daemon\n"
                   "# from touching the uplink until it is fixed or removed.\n");
        if (rec->valid) {
                fprintf(f, "ifname=%s\nproxy_arp=%d\nproxy_delay_ms=%lld\n", rec->ifname, rec->proxy_arp,
                        (long long)rec->proxy_delay_ms);
                if (rec->ifindex > 0)
                        fprintf(f, "ifindex=%d\n", rec->ifindex);
                if (rec->has_proxy_ndp)
                        fprintf(f, "proxy_ndp=%d\n", rec->proxy_ndp);
                if (rec->has_proxy_delay6)
                        fprintf(f, "proxy_delay6_ms=%lld\n", (long long)rec->proxy_delay6_ms);
        }
        if (rec->route_protocol)
                fprintf(f, "route_protocol=%u\nroute_table=%u\n", rec->route_protocol, rec->route_table);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0)
                return -errno;
        return 0;
}

int state_save(const char *dir, const struct host_record *rec, char *why, size_t why_size)
{
        _cleanup_(closep_fd) int dfd = -1;
        FILE *f;
        int fd, r;

        dfd = open_dir(dir, state_present(rec), why, why_size);
        if (dfd == -ENOENT && !state_present(rec))
                return 0;
        if (dfd < 0)
                return dfd;
        if (!state_present(rec)) {
                if (unlinkat(dfd, STATE_FILE, 0) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(why, why_size, "cannot remove %s/%s: %s", dir, STATE_FILE, strerror(-r));
                        return r;
                }
                return 0;
        }
        fd = open_tmp(dfd);
        if (fd < 0 || !(f = fdopen(fd, "we"))) {
                r = fd < 0 ? fd : -errno;
                if (fd >= 0)
                        close(fd);
                snprintf(why, why_size, "cannot create %s/%s: %s", dir, STATE_TMP, strerror(-r));
                return r;
        }
        r = write_record(f, rec);
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dfd, STATE_TMP, dfd, STATE_FILE) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(dfd, STATE_TMP, 0);
                snprintf(why, why_size, "cannot write %s/%s: %s", dir, STATE_FILE, strerror(-r));
        }
        return r;
}

bool state_equal(const struct host_record *a, const struct host_record *b)
{
        if (a->route_protocol != b->route_protocol || a->route_table != b->route_table)
                return false;
        if (a->valid != b->valid)
                return false;
        if (!a->valid)
                return true;
        return strcmp(a->ifname, b->ifname) == 0 && a->proxy_arp == b->proxy_arp &&
               a->proxy_delay_ms == b->proxy_delay_ms && a->ifindex == b->ifindex &&
               a->has_proxy_ndp == b->has_proxy_ndp && (!a->has_proxy_ndp || a->proxy_ndp == b->proxy_ndp) &&
               a->has_proxy_delay6 == b->has_proxy_delay6 &&
               (!a->has_proxy_delay6 || a->proxy_delay6_ms == b->proxy_delay6_ms);
}
