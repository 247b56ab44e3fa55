/*
 * sp_shard — a shard's range applied at start-up, and --export (see
 * sp_shard.h for the rules).
 *
 * The range only ever takes rows away from what a table is made of, so the
 * one way it could lose stock is a restart with a range narrower than the
 * saved table: that is refused unless the rows it drops are exactly ones
 * the last --export wrote out for another shard to load.
 */
#include "sp_shard.h"

#include "sp_args.h"
#include "sp_broker_impl.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_log.h"
#include "sp_recover.h"
#include "sp_snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_RECORD_MAX 64 /* the export record: "LO-HI\n" */

/* The export record of the state directory `dir`: true with its range. */
static bool s_exported(const char *dir, uint32_t *lo, uint32_t *hi)
{
    char path[SP_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, SP_SHARD_EXPORTED);
    void *buf = NULL;
    size_t len = 0;
    char why[128];
    if (sp_file_read(path, &buf, &len, S_RECORD_MAX, why, sizeof why) < 0) {
        return false;
    }
    char text[S_RECORD_MAX + 1];
    memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    text[strcspn(text, "\n")] = '\0';
    return sp_arg_range(SP_SHARD_EXPORTED, text, 1, SP_PRODUCT_ID_MAX, lo, hi, why, sizeof why) ==
           0;
}

/* Up to SP_SHARD_SHOW ids of `cat` outside [lo, hi] into `list` ("3, 4,
 * ..."); returns how many are outside, and whether all of those are in
 * [elo, ehi]. */
static size_t s_outside(const sp_catalogue_t *cat, uint32_t lo, uint32_t hi, uint32_t elo,
                        uint32_t ehi, bool *all_exported, char *list, size_t cap)
{
    size_t n = 0, used = 0;
    *all_exported = true;
    list[0] = '\0';
    for (size_t i = 0; i < sp_catalogue_count(cat); i++) {
        uint32_t id = sp_catalogue_get(cat, i)->id;
        if (id >= lo && id <= hi) {
            continue;
        }
        if (id < elo || id > ehi) {
            *all_exported = false;
        }
        if (n < SP_SHARD_SHOW && used < cap) {
            int k = snprintf(list + used, cap - used, "%s%u", n > 0 ? ", " : "", id);
            used += k > 0 ? (size_t)k : 0;
        } else if (n == SP_SHARD_SHOW && used < cap) {
            snprintf(list + used, cap - used, ", ...");
            used = cap;
        }
        n++;
    }
    return n;
}

int sp_shard_filter(sp_broker_t *b, sp_catalogue_t *cat, sp_shard_from_t from, const char *path,
                    char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    uint32_t lo = cfg->product_lo, hi = cfg->product_hi;
    if (lo == 0) {
        return 0; /* not a shard: the whole catalogue */
    }
    uint32_t elo = 0, ehi = 0;
    bool exported = from == SP_SHARD_FROM_LAST && s_exported(b->names.state_dir, &elo, &ehi);
    bool all_exported = false;
    char list[96];
    size_t out = s_outside(cat, lo, hi, elo, ehi, &all_exported, list, sizeof list);
    if (out > 0 && from == SP_SHARD_FROM_RECOVERY) {
        sp_why(why, cap,
               "--products %u-%u: the saved state to recover (%s and its journal) holds %zu "
               "product(s) outside it (ids %s): start with a range that holds them (or none) "
               "to recover, stop cleanly, then move them with --export",
               lo, hi, path, out, list);
        return SP_E_USAGE;
    }
    if (out > 0 && from == SP_SHARD_FROM_LAST && !(exported && all_exported)) {
        sp_why(why, cap,
               "--products %u-%u: the table saved at the last clean stop (%s) holds %zu "
               "product(s) outside it (ids %s), and starting would discard their stock: move "
               "them first (broker --instance %s --export LO-HI > moved.csv, then load that "
               "into the shard that takes them), or give a range that holds them",
               lo, hi, path, out, list, cfg->instance);
        return SP_E_USAGE;
    }
    size_t total = sp_catalogue_count(cat);
    uint32_t first = total > 0 ? sp_catalogue_get(cat, 0)->id : 0, last = first;
    for (size_t i = 0; i < total; i++) {
        uint32_t id = sp_catalogue_get(cat, i)->id;
        first = id < first ? id : first;
        last = id > last ? id : last;
    }
    if (sp_catalogue_keep_range(cat, lo, hi) == 0) {
        sp_why(why, cap,
               "--products %u-%u: %s holds no product with an id in that range (its %zu "
               "product(s) have ids %u to %u)",
               lo, hi, path, total, first, last);
        return SP_E_CSV_EMPTY;
    }
    if (out > 0 && from == SP_SHARD_FROM_LAST) {
        sp_broker_notify(b, SP_LOG_WARN,
                         "%zu product(s) (ids %s) left this shard with the last --export "
                         "%u-%u: dropped from its table, which now holds %u-%u",
                         out, list, elo, ehi, lo, hi);
    }
    return 0;
}

int sp_shard_check_table(sp_broker_t *b, char *why, size_t cap)
{
    uint32_t lo = b->cfg->product_lo, hi = b->cfg->product_hi;
    if (lo == 0) {
        return 0;
    }
    const sp_row_t *rows = sp_table_rows(b->table);
    size_t out = 0;
    uint32_t example = 0;
    for (uint32_t i = 0; i < sp_table_capacity(b->table); i++) {
        if (rows[i].present && (rows[i].id < lo || rows[i].id > hi)) {
            example = out == 0 ? rows[i].id : example;
            out++;
        }
    }
    if (out == 0) {
        return 0;
    }
    sp_why(why, cap,
           "--products %u-%u: the dead broker's table in /dev/shm%s holds %zu product(s) "
           "outside it (id %u among them): start with a range that holds them (or none) to "
           "recover, stop cleanly, then move them with --export",
           lo, hi, b->names.table, out, example);
    return SP_E_USAGE;
}

void sp_shard_claim(sp_broker_t *b)
{
    b->hdr->product_lo = b->cfg->product_lo;
    b->hdr->product_hi = b->cfg->product_hi;
    char path[SP_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", b->names.state_dir, SP_SHARD_EXPORTED);
    if (unlink(path) == 0) {
        (void)sp_file_fsync_parent(path);
    }
}

/* --- export ------------------------------------------------------------------ */

/* Refuses an instance whose saved table is not the whole truth: one that
 * runs, or one that crashed and has a table, journal or snapshot to
 * recover from. */
static int s_export_ready(const sp_names_t *names, const char *instance, char *why, size_t cap)
{
    sp_table_t *t = NULL;
    int rc = sp_table_open(&t, names->table, false);
    if (rc == 0 || rc == -EACCES) {
        pid_t owner = t != NULL ? atomic_load(&sp_table_hdr(t)->broker_pid) : 0;
        sp_table_close(&t);
        if (sp_pid_alive(owner)) {
            sp_why(why, cap,
                   "instance '%s' is running (broker pid %d): stop it (SIGTERM) and export "
                   "from the table its clean stop saves",
                   instance, (int)owner);
        } else {
            sp_why(why, cap,
                   "instance '%s' did not stop cleanly (its table is still in /dev/shm%s): "
                   "start its broker to recover, stop it cleanly, then export",
                   instance, names->table);
        }
        return -EBUSY;
    }
    char journal[SP_PATH_MAX + 16], snap[SP_PATH_MAX + 32], mark[SP_PATH_MAX + 32];
    snprintf(journal, sizeof journal, "%s/%s", names->state_dir, SP_JOURNAL_DIR);
    snprintf(snap, sizeof snap, "%s/%s", names->state_dir, SP_SNAPSHOT_BIN);
    snprintf(mark, sizeof mark, "%s/%s", names->state_dir, SP_CLEAN_MARK);
    if (access(mark, F_OK) != 0 && (sp_recover_has_journal(journal) || access(snap, F_OK) == 0)) {
        sp_why(why, cap,
               "instance '%s' did not stop cleanly (%s holds a journal or a snapshot to "
               "recover from): start its broker to recover, stop it cleanly, then export",
               instance, names->state_dir);
        return -EBUSY;
    }
    return 0;
}

int sp_broker_export(const char *instance, const char *state_dir, uint32_t lo, uint32_t hi,
                     FILE *out, char *why, size_t cap)
{
    sp_names_t names;
    if (sp_names_init(&names, instance, state_dir) < 0) {
        sp_why(why, cap, "bad instance name '%s' (use 1-%d of A-Z a-z 0-9 _ - .)", instance,
               SP_INSTANCE_NAME_MAX);
        return SP_E_USAGE;
    }
    int rc = s_export_ready(&names, instance, why, cap);
    if (rc < 0) {
        return rc;
    }
    char last[SP_PATH_MAX + 32];
    snprintf(last, sizeof last, "%s/%s", names.state_dir, SP_SNAPSHOT_FILE);
    sp_catalogue_t *cat = sp_catalogue_new();
    if (cat == NULL) {
        return -ENOMEM;
    }
    sp_csv_error_t cerr;
    rc = sp_catalogue_load(cat, last, &cerr);
    if (rc == -ENOENT) {
        sp_why(why, cap,
               "instance '%s' has no saved table (%s): it never stopped cleanly with this "
               "--state-dir",
               instance, last);
    } else if (rc < 0) {
        sp_why(why, cap, "%s: %s", last, cerr.message);
    } else if (sp_catalogue_keep_range(cat, lo, hi) == 0) {
        sp_why(why, cap, "--export %u-%u: the table of '%s' (%s) holds no product in that range",
               lo, hi, instance, last);
        rc = SP_E_CSV_EMPTY;
    }
    if (rc == 0) {
        fprintf(out, "%s\n", SP_CSV_HEADER);
        for (size_t i = 0; i < sp_catalogue_count(cat) && rc == 0; i++) {
            rc = sp_catalogue_write_row(out, sp_catalogue_get(cat, i));
        }
        if (rc == 0 && (fflush(out) != 0 || ferror(out))) {
            rc = -EIO;
        }
        if (rc < 0) {
            sp_why(why, cap, "cannot write the exported rows: %s (nothing recorded)",
                   sp_strerror(rc));
        }
    }
    size_t n = sp_catalogue_count(cat);
    sp_catalogue_destroy(&cat);
    if (rc < 0) {
        return rc;
    }
    /* only now that every row is out: the next start may drop them */
    char path[SP_PATH_MAX + 32], record[S_RECORD_MAX];
    snprintf(path, sizeof path, "%s/%s", names.state_dir, SP_SHARD_EXPORTED);
    int len = snprintf(record, sizeof record, "%u-%u\n", lo, hi);
    rc = sp_file_save(path, record, (size_t)len, why, cap);
    if (rc == 0) {
        sp_why(why, cap, "exported %zu product(s) with ids in %u-%u from '%s'", n, lo, hi,
               instance);
    }
    return rc;
}
