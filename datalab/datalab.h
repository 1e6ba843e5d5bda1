/* SPDX-License-Identifier: MIT */
#pragma once

/* Data Lab templates and exports.
 *
 * A template is a JSON data file (data/datalab/<slug>.json, or the user's datalab/ directory):
 *   {"slug", "title", "description", "tags": [..], "data": ["schema", "migrations", "logs", "runs"],
 *    "cells": [{"cell_type": "markdown" | "code", "source": "..." | ["line\n", ...]}]}
 * Placeholders: {{name}}, {{slug}}, {{path}}, {{title}} in Markdown cells (escaped as Markdown text, so a
 * name cannot become markup); {{data}} in code cells only: the input document as JSON text with no ' and
 * no line break of its own, to be read with json.loads(r'''{{data}}'''). Anything else is refused.
 *
 * Rendering gives an nbformat 4.5 notebook in Jupyter's canonical form (nbjson.h) whose bytes depend only
 * on the template and the input document: stable cell ids (from the template's slug and the cell's
 * position), kernelspec and language_info for Python 3, and metadata.djdesk {template, title,
 * description, workspace, data_sha256}. No time, no version. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj-error.h"
#include "dj-macro.h"

#define DATALAB_NAME_MAX     64                   /* a template slug, a notebook's name without .ipynb */
#define DATALAB_NOTEBOOK_MAX (UINT64_C(64) << 20) /* bytes: larger files are not previewed or hashed */

typedef enum DatalabBlock {
        DATALAB_BLOCK_SCHEMA = 1 << 0,
        DATALAB_BLOCK_MIGRATIONS = 1 << 1,
        DATALAB_BLOCK_LOGS = 1 << 2,
        DATALAB_BLOCK_RUNS = 1 << 3,
} DatalabBlock;

typedef struct DatalabTemplate {
        char *slug;
        char *title;
        char *description;
        char **tags;
        unsigned blocks; /* DatalabBlock */
        json_t *cells;   /* [{cell_type, source (one string)}] */
        char *path;      /* the file it was read from */
} DatalabTemplate;

DatalabTemplate *datalab_template_free(DatalabTemplate *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(DatalabTemplate *, datalab_template_free);

/* Reads and checks one template file (DJ_E_INVALID with the reason: bad JSON, a missing key, a slug that
 * is not the file's name, an unknown block or placeholder, a cell type other than markdown or code). */
int datalab_template_load(const char *path, DatalabTemplate **ret, DjError *reterr);

/* {slug, title, description, tags, data} */
json_t *datalab_template_to_json(const DatalabTemplate *t);

/* The set of templates: every <slug>.json of each directory, a later directory's template replacing an
 * earlier one of the same slug; sorted by slug. A bad file is skipped with a warning. */
typedef struct DatalabTemplates {
        DatalabTemplate **items;
        size_t n;
} DatalabTemplates;

DatalabTemplates *datalab_templates_free(DatalabTemplates *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(DatalabTemplates *, datalab_templates_free);
int datalab_templates_load(char *const *dirs, DatalabTemplates **ret, char ***ret_warnings);
const DatalabTemplate *datalab_templates_find(const DatalabTemplates *s, const char *slug);

/* Names: a template slug or a notebook name (without ".ipynb"): [A-Za-z0-9][A-Za-z0-9._-]*, at most
 * DATALAB_NAME_MAX, no "..": nothing that can leave its directory. */
bool datalab_name_valid(const char *name);
/* The DatalabBlock of a block name ("schema"...); 0 for an unknown name. */
unsigned datalab_block_from_string(const char *s);

/* Lower-case hex SHA-256 of data (ret: 65 bytes with the NUL). */
#define DATALAB_SHA256_HEX 65
void datalab_sha256_hex(const void *data, size_t len, char ret[static DATALAB_SHA256_HEX]);

/* The writer's input: a header line, the compact JSON {"workspace": {name, slug, path}, "blocks": [..]},
 * then the data the notebook embeds, already serialized the way its first code cell holds it (canonical,
 * indent 1, ' as \u0027, see NBJSON_PYTHON_EMBED): the daemon serializes what it holds once, and the writer
 * never parses or re-serializes it. */
typedef struct DatalabInput {
        char *name, *slug, *path;
        const char *data; /* into the parsed buffer */
        size_t data_len;
        unsigned blocks; /* DatalabBlock: the blocks the data has */
} DatalabInput;

/* The daemon's side: doc is the data document ({template, workspace, and the blocks}). */
int datalab_input_format(json_t *doc, char **ret, size_t *ret_len);
/* The writer's side: checks the header and that the data is UTF-8 text with no ', no line break but '\n'
 * and braces around it (so it is always a sound Python literal); ret->data points into buf. */
int datalab_input_parse(const char *buf, size_t len, DatalabInput *ret, DjError *reterr);
void datalab_input_done(DatalabInput *in);

/* Renders the notebook. *ret is the file's complete bytes (with the trailing newline); ret_digest (may be
 * NULL) gets the data's SHA-256 (of the embedded text). A template needing a block the input lacks is
 * DJ_E_INVALID. */
int datalab_render(const DatalabTemplate *t, const DatalabInput *in, char **ret, size_t *ret_len,
                   char ret_digest[static DATALAB_SHA256_HEX], DjError *reterr);

/* The directory of a workspace's notebooks, root/slug, opened O_PATH|O_DIRECTORY: root is created (0700,
 * with its parents) when create is set; slug is one plain directory entry (created 0700 when create):
 * a symlink there is refused (DJ_E_NOT_ALLOWED), and so is a slug that is not a valid name. With create
 * unset, a missing directory is -ENOENT without an error set. */
int datalab_open_dir(const char *root, const char *slug, bool create, DjError *reterr);

/* Writes dirfd/name atomically: a temporary file beside it (0644), fsync, rename over name, fsync of the
 * directory. A symlink or a non-regular file at name is refused; on any failure the previous file is left
 * as it was and the temporary removed. The temporary has no name (O_TMPFILE) until it is complete, so a
 * writer killed while writing leaves nothing behind either (where the file system cannot, a hidden
 * ".NAME.<random>.tmp"). When the file already holds exactly these bytes nothing is written and
 * *ret_unchanged is set. */
int datalab_write_file(int dirfd, const char *name, const void *data, size_t len, bool *ret_unchanged,
                       DjError *reterr);

/* Reads dirfd/name (a regular file, not a symlink, at most max bytes): -EFBIG beyond max. */
int datalab_read_file(int dirfd, const char *name, uint64_t max, char **ret, size_t *ret_len);

/* export.list's entry of a notebook file: {slug (the name without .ipynb), title, description, file (the
 * full path), size, sha256, modified_at (µs, the caller formats it), template (metadata.djdesk.template or
 * null)}. Title: metadata.djdesk.title, else the first Markdown heading, else the name. A file that is
 * not a readable notebook gets title = name, template null, and "error": why. */
json_t *datalab_notebook_info(int dirfd, const char *dir_path, const char *name);
