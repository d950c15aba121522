/*
 * console.h - the web console: one HTML page with its script and styles
 * inline (src/obs/console.html), embedded in the binary at build time
 * (cmake/embed.cmake writes it as a byte array), so the broker serves it
 * with no file to install. The page reads the JSON endpoints of
 * broker/observe.c and draws its charts as plain SVG: no library, no
 * network access beyond the broker itself.
 */
#ifndef SLUICE_OBS_CONSOLE_H
#define SLUICE_OBS_CONSOLE_H

#include <stddef.h>

extern const char obs_console_html[];
extern const size_t obs_console_html_len;

#endif
