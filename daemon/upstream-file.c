/* The file the daemon keeps with the upstream routes (setting upstreamRoutesFile):
 * written atomically and only when its content changes, so a network automation job
 * that watches it (inotify, mtime, a checksum) sees one complete document per change
 * and nothing when nothing changed, restarts of the daemon included.
 *
 * Owns this one file and nothing else; the content comes from upstream.c. */
#include "upstream-file.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Does path already hold exactly content? */
static bool same_content(const char *path, const char *content, size_t len)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_(freep) char *buf = NULL;
        size_t got = 0;
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != len)
                return false;
        buf = malloc(len + 1);
        if (!buf)
                return false;
        while (got < len) {
                ssize_t n = read(fd, buf + got, len - got);

                if (n <= 0)
                        return false;
                got += (size_t)n;
        }
        return memcmp(buf, content, len) == 0;
}

static int write_all(int fd, const char *p, size_t len)
{
        while (len) {
                ssize_t n = write(fd, p, len);

                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* An unnamed file in dir (O_TMPFILE), or a named temporary one where the file system
 * has no O_TMPFILE; *ret_tmp gets that name. */
static int open_temp(const char *dir, const char *base, char *tmp, size_t size, bool *ret_named)
{
        int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);

        *ret_named = false;
        snprintf(tmp, size, "%s/.%s.XXXXXX", dir, base);
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
                return fd >= 0 ? fd : -errno;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_named = true;
        return fd;
}

/* Give the unnamed file a temporary name in dir: linkat through /proc/self/fd (the
 * AT_EMPTY_PATH form needs CAP_DAC_READ_SEARCH, which the unit does not have). */
static int name_temp(int fd, char *tmp)
{
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        for (int tries = 0; tries < 100; tries++) {
                char *x = tmp + strlen(tmp) - 6;

                for (int i = 0; i < 6; i++)
                        x[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(unsigned)(random() % 36)];
                if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
                        return 0;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

int upstream_file_keep(const char *path, const char *content, size_t len)
{
        _cleanup_(freep) char *d = strdup(path), *b = strdup(path);
        _cleanup_(closep) int fd = -1;
        char tmp[4096 + 64];
        bool named;
        int e;

        if (!d || !b)
                return -ENOMEM;
        if (same_content(path, content, len))
                return 0;
        fd = open_temp(dirname(d), basename(b), tmp, sizeof(tmp), &named);
        if (fd < 0)
                return fd;
        /* mode 0644 whatever the umask: the job that reads it is another user */
        if ((e = write_all(fd, content, len)) < 0 || (fchmod(fd, 0644) < 0 && (e = -errno)) ||
            (fsync(fd) < 0 && (e = -errno)) || (!named && (e = name_temp(fd, tmp)) < 0)) {
                if (named)
                        (void)unlink(tmp);
                return e;
        }
        if (rename(tmp, path) < 0) {
                e = -errno;
                (void)unlink(tmp);
                return e;
        }
        return 1;
}
