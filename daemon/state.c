/* The runtime record (see state.h). Plain "key=value" lines so an operator can read
 * it; rewritten atomically so a crash never leaves half a record. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

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

static int parse_line(struct host_record *r, const char *line)
{
        char *end;
        long long v;

        if (strncmp(line, "ifname=", 7) == 0) {
                if (strlen(line + 7) == 0 || strlen(line + 7) >= sizeof(r->ifname))
                        return -EINVAL;
                snprintf(r->ifname, sizeof(r->ifname), "%s", line + 7);
                return 0;
        }
        if (strncmp(line, "ifindex=", 8) == 0) {
                errno = 0;
                v = strtoll(line + 8, &end, 10);
                if (errno || end == line + 8 || *end || v < 0 || v > INT32_MAX)
                        return -EINVAL;
                r->ifindex = (int)v;
                return 0;
        }
        if (strncmp(line, "proxy_arp=", 10) == 0 || strncmp(line, "proxy_delay_ms=", 15) == 0) {
                const char *val = strchr(line, '=') + 1;

                errno = 0;
                v = strtoll(val, &end, 10);
                if (errno || end == val || *end || v < -1)
                        return -EINVAL;
                if (line[6] == 'a')
                        r->proxy_arp = (int)v;
                else
                        r->proxy_delay_ms = v;
                return 0;
        }
        return -EINVAL;
}

int state_load(const char *dir, struct host_record *ret)
{
        struct host_record r = { .proxy_arp = -1, .proxy_delay_ms = -1 };
        _cleanup_(fclosep) FILE *f = NULL;
        char path[4096], line[256];

        snprintf(path, sizeof(path), "%s/state", dir);
        f = fopen(path, "re");
        if (!f) {
                if (errno != ENOENT)
                        return -errno;
                *ret = (struct host_record){ .proxy_arp = -1, .proxy_delay_ms = -1 };
                return 0;
        }
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                if (!line[0] || line[0] == '#')
                        continue;
                if (parse_line(&r, line) < 0)
                        return -EINVAL;
        }
        if (!r.ifname[0])
                return -EINVAL;
        r.valid = true;
        *ret = r;
        return 0;
}

int state_save(const char *dir, const struct host_record *rec)
{
        char path[4096], tmp[4096];
        FILE *f;
        int r = 0;

        snprintf(path, sizeof(path), "%s/state", dir);
        if (!rec->valid)
                return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(tmp, sizeof(tmp), "%s/.state.tmp", dir);
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f,
                "# calico-underlayd: the uplink's settings before its first change, restored when\n"
                "# underlay mode ends or on --cleanup. -1 = not recorded.\n"
                "ifname=%s\nproxy_arp=%d\nproxy_delay_ms=%lld\n",
                rec->ifname, rec->proxy_arp, (long long)rec->proxy_delay_ms);
        if (rec->ifindex > 0)
                fprintf(f, "ifindex=%d\n", rec->ifindex);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0)
                r = -errno;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

bool state_equal(const struct host_record *a, const struct host_record *b)
{
        if (a->valid != b->valid)
                return false;
        if (!a->valid)
                return true;
        return strcmp(a->ifname, b->ifname) == 0 && a->proxy_arp == b->proxy_arp &&
               a->proxy_delay_ms == b->proxy_delay_ms && a->ifindex == b->ifindex;
}
