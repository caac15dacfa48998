/* The one place that writes log lines. Journal when stderr is the journal's stream
 * ($JOURNAL_STREAM names stderr's device and inode, as systemd documents), so that
 * MESSAGE_ID and the fields survive; plain "<level>: message" lines otherwise. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

static bool use_journal;
static int max_level = LOG_INFO;

void log_init(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (getenv("CALICO_UNDERLAY_LOG_LEVEL")) {
                const char *l = getenv("CALICO_UNDERLAY_LOG_LEVEL");

                max_level = strcmp(l, "debug") == 0 ? LOG_DEBUG : strcmp(l, "notice") == 0 ? LOG_NOTICE : LOG_INFO;
        }
        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return;
        use_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_max_level(int level)
{
        max_level = level;
}

static const char *level_name(int level)
{
        static const char *const names[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };

        return level >= 0 && level <= LOG_DEBUG ? names[level] : "info";
}

void log_full(int level, const char *message_id, const char *const *fields, const char *fmt, ...)
{
        struct iovec iov[16];
        char msg[2048], prio[16], mid[64];
        size_t n = 0;
        va_list ap;

        if (level > max_level)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (!use_journal) {
                fprintf(stderr, "%s: %s\n", level_name(level), msg);
                return;
        }
        {
                char m[sizeof(msg) + 8];

                snprintf(m, sizeof(m), "MESSAGE=%s", msg);
                snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
                iov[n++] = (struct iovec){ m, strlen(m) };
                iov[n++] = (struct iovec){ prio, strlen(prio) };
                if (message_id) {
                        snprintf(mid, sizeof(mid), "MESSAGE_ID=%s", message_id);
                        iov[n++] = (struct iovec){ mid, strlen(mid) };
                }
                for (size_t i = 0; fields && fields[i] && n < ELEMENTSOF(iov); i++)
                        iov[n++] = (struct iovec){ (void *)fields[i], strlen(fields[i]) };
                if (sd_journal_sendv(iov, (int)n) < 0)
                        fprintf(stderr, "%s: %s\n", level_name(level), msg);
        }
}
