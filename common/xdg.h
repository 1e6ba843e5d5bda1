/* SPDX-License-Identifier: MIT */
#pragma once

/* XDG base directories, each a malloc'ed absolute path. Relative values are ignored, as the spec says. */
int xdg_runtime_dir(char **ret); /* $XDG_RUNTIME_DIR, else -ENXIO */
int xdg_state_home(char **ret);  /* $XDG_STATE_HOME or ~/.local/state */
int xdg_config_home(char **ret); /* $XDG_CONFIG_HOME or ~/.config */
int xdg_data_home(char **ret);   /* $XDG_DATA_HOME or ~/.local/share */

/* Where the daemon reads a kind of data file: first (when set), then $XDG_CONFIG_HOME/djdesk/SUBDIR. A
 * NULL-terminated list, empty rather than NULL; NULL when out of memory. */
char **djdesk_config_dirs(const char *first, const char *subdir);

/* $DJDESK_SOCKET, else $XDG_RUNTIME_DIR/djdesk/daemon.sock */
int djdesk_socket_path(char **ret);
