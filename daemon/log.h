/* Logging: structured journal entries (MESSAGE_ID per kind of event, plus fields)
 * when stderr is connected to the journal, plain leveled lines on stderr otherwise. */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "util.h"

/* MESSAGE_IDs, one per kind of event (documented in calico-underlayd(8)). */
#define LOG_ID_STARTED      "5d0b1c6e2a8f4f0c9a3d7e21b4c8f001"
#define LOG_ID_RECONCILED   "5d0b1c6e2a8f4f0c9a3d7e21b4c8f002"
#define LOG_ID_ROUTE_ADDED  "5d0b1c6e2a8f4f0c9a3d7e21b4c8f003"
#define LOG_ID_ROUTE_REMOVED "5d0b1c6e2a8f4f0c9a3d7e21b4c8f004"
#define LOG_ID_PROXY_ARP    "5d0b1c6e2a8f4f0c9a3d7e21b4c8f005"
#define LOG_ID_TUNNEL       "5d0b1c6e2a8f4f0c9a3d7e21b4c8f006"
#define LOG_ID_CONFIG_REJECTED "5d0b1c6e2a8f4f0c9a3d7e21b4c8f007"
#define LOG_ID_DRIFT        "5d0b1c6e2a8f4f0c9a3d7e21b4c8f008"
#define LOG_ID_CONFLICT     "5d0b1c6e2a8f4f0c9a3d7e21b4c8f009"
#define LOG_ID_ACTION_FAILED "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00a"
#define LOG_ID_FINDING      "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00b"
#define LOG_ID_RELOADED     "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00c"
#define LOG_ID_STOPPED      "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00d"
#define LOG_ID_DATASTORE    "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00e"
#define LOG_ID_UPSTREAM_ROUTES "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00f"
#define LOG_ID_RECORD       "5d0b1c6e2a8f4f0c9a3d7e21b4c8f010"
#define LOG_ID_RULE         "5d0b1c6e2a8f4f0c9a3d7e21b4c8f013"

void log_init(void);
void log_set_max_level(int level);
/* Whether a message at this level would be written. */
bool log_enabled(int level);
/* fields: NULL-terminated list of "KEY=value" strings (may be NULL). */
_printf_(4, 5) void log_full(int level, const char *message_id, const char *const *fields, const char *fmt, ...);

#define log_err(...) log_full(LOG_ERR, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, NULL, NULL, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, NULL, NULL, __VA_ARGS__)
