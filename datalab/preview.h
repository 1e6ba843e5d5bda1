/* SPDX-License-Identifier: MIT */
#pragma once

/* The HTML preview of a notebook: one self-contained page (inline CSS, no scripts, no network) that nothing
 * in the notebook can inject markup into. */

#include <jansson.h>
#include <stddef.h>

#include "dj-error.h"

/* Renders any nbformat 4 notebook (nb as parsed JSON; sources and texts either strings or arrays of
 * strings, joined as they are) as an HTML5 page titled title (escaped; NULL gives "Notebook"):
 *   - markdown cells through md4c (GitHub tables, strikethrough, task lists; raw HTML off: it shows as
 *     text; no bare-URL autolinks). A link whose URL has a scheme other than http, https or mailto
 *     (javascript:, data:, vbscript:, file:...) points to "#" instead; relative URLs are kept. A
 *     Markdown image's src is always "#": the page loads nothing;
 *   - code cells' sources escaped inside <pre><code>, with "In [n]:" prompts from execution_count;
 *   - stream outputs (stderr styled apart), text/plain results and error tracebacks escaped inside
 *     <pre><samp>, with terminal escape sequences (ANSI colours) removed;
 *   - image/png and image/jpeg output data embedded as data: URLs, only when the base64 is made of
 *     [A-Za-z0-9+/=] and whitespace, decodes, and the bytes start with the PNG or JPEG signature; any other
 *     image (SVG...), text/html and application/javascript are never rendered (text/plain is shown
 *     instead, when there is one);
 *   - raw cells escaped inside <pre>; cells of unknown types are left out;
 *   - a Content-Security-Policy that allows no script, no network and only data: images.
 * A cell or output of the wrong shape (a source that is not text, an output that is not an object...)
 * becomes a short fixed note in the page. The same notebook and title always give the same bytes.
 * A notebook that is not nbformat 4 (not an object, "nbformat" not the integer 4, no "cells" array) is
 * DJ_E_INVALID, and then *ret and *ret_len are untouched. Otherwise *ret is a NUL-terminated page owned by
 * the caller and *ret_len (ret_len may be NULL) its length. -ENOMEM when out of memory. */
int preview_render(json_t *nb, const char *title, char **ret, size_t *ret_len, DjError *reterr);
