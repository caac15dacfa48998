/* Daemon mode: the sd-event loop (inotify on the inputs, rtnetlink events, signals,
 * timers, sd_notify). Returns the process exit status. */
#pragma once

int loop_run(const char *config_path, const char *host_name);
