/* SPDX-License-Identifier: MIT */
#pragma once

/* Presets: the allowlist of commands a run may execute. Each preset is one JSON file in a presets.d
 * directory; loading validates every field, skips a bad file with a warning naming file and field, and
 * never fails for a bad file. Plain C: no transport, no store. */

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj-error.h"
#include "dj-macro.h"

#define PRESET_TIMEOUT_DEFAULT_S        UINT64_C(60)
#define PRESET_TIMEOUT_MAX_S            UINT64_C(86400)
#define PRESET_MAX_OUTPUT_LINES_DEFAULT UINT64_C(100000)
#define PRESET_MAX_OUTPUT_LINES_MAX     UINT64_C(10000000)

typedef struct PresetParam {
        char *name;
        char *regex; /* the source, as written in the file */
        regex_t re;  /* "^(" regex ")$", REG_EXTENDED|REG_NOSUB */
        char *def;   /* default value or NULL; always matches re */
} PresetParam;

typedef struct Preset {
        char *key; /* [a-z0-9-]{1,64} */
        char *label;
        char *description; /* "" when absent */
        char **argv;       /* "{python}", "{manage}" and "{param}" elements are placeholders */
        PresetParam *params;
        size_t n_params;
        char *docs_url; /* NULL when absent */
        char *icon;     /* NULL when absent */
        char *category; /* NULL when absent */
        int64_t order;
        bool requires_confirmation;
        bool read_only;
        bool mask_secrets; /* "mask_secrets": secret-looking setting values in its output are masked
                            * (run_mask_secrets) before they are logged or stored */
        bool rescan;       /* "rescan": the workspace is scanned again (every kind) after a run */
        uint64_t timeout_s;
        uint64_t max_output_lines;
        char *path; /* the file it was loaded from */
} Preset;

typedef struct PresetSet PresetSet;

/* Loads every "*.json" in each directory (files in name order; a missing directory is fine). A later
 * directory overrides an earlier one by key. A bad file is skipped and "FILE: field 'F': reason" is
 * appended to *ret_warnings (NULL when there were none; ret_warnings may be NULL). timeout_s defaults to
 * default_timeout_s (0 means PRESET_TIMEOUT_DEFAULT_S). Returns 0, or -ENOMEM. */
int preset_set_load(char *const *dirs, uint64_t default_timeout_s, PresetSet **ret, char ***ret_warnings);
PresetSet *preset_set_free(PresetSet *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PresetSet *, preset_set_free);
#define _cleanup_preset_set_free_ _cleanup_(preset_set_freep)

/* Presets sorted by order, then key. */
size_t preset_set_size(const PresetSet *s);
const Preset *preset_set_nth(const PresetSet *s, size_t i);
const Preset *preset_set_find(const PresetSet *s, const char *key);

const PresetParam *preset_find_param(const Preset *p, const char *name);

/* The argv to execute: "{python}" and "{manage}" become python and manage, "{name}" the param's value (or
 * its default) as exactly one element, never split. params is an object of string values, or NULL.
 * Refusals (DJ_E_INVALID): params not an object, an undeclared param, a value that is not a string or
 * fails its regex, a param with neither value nor default, a placeholder whose value was not given. */
int preset_expand_argv(const Preset *p, const char *python, const char *manage, json_t *params,
                       char ***ret_argv, DjError *reterr);

/* Every field; params as {name: {"regex": ..., "default": ... or null}}. NULL on OOM. */
json_t *preset_to_json(const Preset *p);
