/*
 * sp_contact — RUN_DIR/contact, written by the broker, read by local
 * clients (see sp_contact.h).
 */
#include "sp_contact.h"

#include "sp_error.h"
#include "sp_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_path(const sp_names_t *n, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", n->run_dir, SP_CONTACT_FILE);
}

int sp_contact_write(const sp_names_t *n, const sp_contact_t *c, char *why, size_t why_cap)
{
    char text[SP_CONTACT_MAX];
    int len = snprintf(text, sizeof text, "transport %s\norders %s\nevents %s\nsnapshot %s\n",
                       c->transport, c->orders[0] ? c->orders : "-", c->events[0] ? c->events : "-",
                       c->snapshot[0] ? c->snapshot : "-");
    if (len > 0 && c->server_key[0] != '\0') {
        len += snprintf(text + len, sizeof text - (size_t)len, "server_key %s\n", c->server_key);
    }
    if (len < 0 || (size_t)len >= sizeof text) {
        return -ENAMETOOLONG;
    }
    char path[SP_PATH_MAX + 16];
    s_path(n, path, sizeof path);
    return sp_file_save(path, text, (size_t)len, why, why_cap);
}

/* Copies a value into its field; "-" stands for empty. */
static int s_set(char *field, size_t cap, const char *value)
{
    if (strcmp(value, "-") == 0) {
        value = "";
    }
    if (strlen(value) >= cap) {
        return -1;
    }
    snprintf(field, cap, "%s", value);
    return 0;
}

int sp_contact_read(const sp_names_t *n, sp_contact_t *c, char *why, size_t why_cap)
{
    memset(c, 0, sizeof *c);
    char path[SP_PATH_MAX + 16];
    s_path(n, path, sizeof path);
    void *buf = NULL;
    size_t len = 0;
    int rc = sp_file_read(path, &buf, &len, SP_CONTACT_MAX, why, why_cap);
    if (rc < 0) {
        return rc;
    }
    unsigned line = 0;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l != NULL && rc == 0;
         l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *space = strchr(l, ' ');
        if (space == NULL) {
            rc = SP_E_BAD_LAYOUT;
            break;
        }
        *space = '\0';
        const char *key = l, *value = space + 1;
        int bad = 0;
        if (strcmp(key, "transport") == 0) {
            bad = s_set(c->transport, sizeof c->transport, value);
        } else if (strcmp(key, "orders") == 0) {
            bad = s_set(c->orders, sizeof c->orders, value);
        } else if (strcmp(key, "events") == 0) {
            bad = s_set(c->events, sizeof c->events, value);
        } else if (strcmp(key, "snapshot") == 0) {
            bad = s_set(c->snapshot, sizeof c->snapshot, value);
        } else if (strcmp(key, "server_key") == 0) {
            bad = s_set(c->server_key, sizeof c->server_key, value);
        }
        rc = bad < 0 ? SP_E_BAD_LAYOUT : 0;
    }
    if (rc == 0 && c->transport[0] == '\0') {
        rc = SP_E_BAD_LAYOUT;
        line = 0;
    }
    if (rc < 0 && line > 0) {
        sp_why(why, why_cap, "%s line %u: not \"key value\" with a value that fits", path, line);
    } else if (rc < 0) {
        sp_why(why, why_cap, "%s: no transport line", path);
    }
    free(buf);
    return rc;
}
