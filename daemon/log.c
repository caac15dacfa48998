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

#include "text.h"

static bool use_journal;
static int max_level = LOG_INFO;

static const char *const level_names[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };

/* CALICO_UNDERLAY_LOG_LEVEL: a syslog level name ("err" too) or number; info otherwise. */
static int parse_level(const char *s)
{
        if (s[0] >= '0' && s[0] <= '7' && !s[1])
                return s[0] - '0';
        if (strcmp(s, "err") == 0)
                return LOG_ERR;
        for (int i = 0; i <= LOG_DEBUG; i++)
                if (strcmp(s, level_names[i]) == 0)
                        return i;
        return LOG_INFO;
}

void log_init(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (getenv("CALICO_UNDERLAY_LOG_LEVEL"))
                max_level = parse_level(getenv("CALICO_UNDERLAY_LOG_LEVEL"));
        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return;
        use_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool log_enabled(int level)
{
        return level <= max_level;
}

void log_set_max_level(int level)
{
        max_level = level;
}

static const char *level_name(int level)
{
        return level >= 0 && level <= LOG_DEBUG ? level_names[level] : "info";
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
        text_utf8_trim(msg); /* a long line is cut: not inside a character */
        if (!use_journal) {
                text_line(stderr, "%s: %s", level_name(level), msg); /* a terminal: escaped */
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
                        text_line(stderr, "%s: %s", level_name(level), msg);
        }
}
