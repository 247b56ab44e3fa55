/*
 * sp_instance — name derivation and the private run/state directories.
 */
#include "sp_instance.h"

#include "sp_error.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SP_RUN_DIR_MODE 0700

int sp_instance_check(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SP_INSTANCE_NAME_MAX || name[0] == '.') {
        return SP_E_USAGE;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok) {
            return SP_E_USAGE;
        }
    }
    return 0;
}

static int s_fmt(char *buf, size_t cap, const char *fmt, const char *a, const char *b)
{
    int n = snprintf(buf, cap, fmt, a, b);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int sp_names_init(sp_names_t *n, const char *instance, const char *state_dir_base)
{
    memset(n, 0, sizeof *n);
    if (sp_instance_check(instance) < 0) {
        return SP_E_USAGE;
    }
    snprintf(n->name, sizeof n->name, "%s", instance);
    snprintf(n->table, sizeof n->table, "/%s.table", instance);
    snprintf(n->orders_mq, sizeof n->orders_mq, "/%s.orders", instance);
    snprintf(n->ring, sizeof n->ring, "/%s.ring", instance);

    const char *run_base = getenv("SP_RUN_DIR");
    char dflt[SP_PATH_MAX];
    if (run_base == NULL || run_base[0] == '\0') {
        snprintf(dflt, sizeof dflt, "/tmp/stockpipe-%ld", (long)getuid());
        run_base = dflt;
    }
    int rc = s_fmt(n->run_dir, sizeof n->run_dir, "%s/%s", run_base, instance);
    if (rc == 0) {
        rc = s_fmt(n->state_dir, sizeof n->state_dir, "%s/%s",
                   state_dir_base ? state_dir_base : SP_STATE_DIR_DEFAULT, instance);
    }
    return rc;
}

void sp_names_reply_mq(const sp_names_t *n, uint32_t producer_id, char *buf, size_t cap)
{
    snprintf(buf, cap, "/%s.r.%u", n->name, producer_id);
}

void sp_names_hello_mq(const sp_names_t *n, uint64_t tag, char *buf, size_t cap)
{
    snprintf(buf, cap, "/%s.r.h%016llx", n->name, (unsigned long long)tag);
}

int sp_names_ipc_endpoint(const sp_names_t *n, const char *which, char *buf, size_t cap)
{
    /* sun_path is 108 bytes; leave room for the terminating NUL. */
    const size_t sun_path_max = 107;
    int len = snprintf(buf, cap, "ipc://%s/%s.sock", n->run_dir, which);
    if (len < 0 || (size_t)len >= cap || (size_t)len - strlen("ipc://") > sun_path_max) {
        return -ENAMETOOLONG;
    }
    return 0;
}

/* mkdir -p with a mode; an existing directory must be ours and private. */
static int s_mkdir_private(const char *path)
{
    char tmp[SP_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, SP_RUN_DIR_MODE) < 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, SP_RUN_DIR_MODE) < 0 && errno != EEXIST) {
        return -errno;
    }
    struct stat st;
    if (stat(tmp, &st) < 0) {
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return -ENOTDIR;
    }
    if (st.st_uid != getuid() || (st.st_mode & 077) != 0) {
        return -EPERM;
    }
    /* whoever can write the parent can swap our directory for theirs: the
     * parent must be ours or root's, and shared only with the sticky bit
     * (as /tmp is) */
    char *slash = strrchr(tmp, '/');
    if (slash != NULL) {
        if (slash == tmp) {
            slash[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (stat(tmp, &st) < 0) {
            return -errno;
        }
        bool owner_ok = st.st_uid == getuid() || st.st_uid == 0;
        bool shared = (st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0;
        if (!owner_ok || shared) {
            return -EPERM;
        }
    }
    return 0;
}

int sp_names_make_run_dir(const sp_names_t *n)
{
    return s_mkdir_private(n->run_dir);
}

void sp_names_remove_run_dir(const sp_names_t *n)
{
    DIR *d = opendir(n->run_dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            size_t clen = strlen(SP_RUN_CONTACT);
            /* our sockets, the contact file and its temporary copies */
            if ((len > 5 && strcmp(e->d_name + len - 5, ".sock") == 0) ||
                (strncmp(e->d_name, SP_RUN_CONTACT, clen) == 0 &&
                 (e->d_name[clen] == '\0' || e->d_name[clen] == '.'))) {
                char path[SP_PATH_MAX * 2];
                snprintf(path, sizeof path, "%s/%s", n->run_dir, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(n->run_dir);
}

int sp_names_make_state_dir(const sp_names_t *n)
{
    return s_mkdir_private(n->state_dir);
}

bool sp_pid_alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
        return false;
    }
    /* kill() succeeds on a zombie; its state in /proc says it is dead */
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true; /* no /proc: trust kill() */
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    (void)fclose(f); /* read only: nothing to lose */
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')'); /* after the command name */
    return close_paren == NULL || close_paren[1] != ' ' || close_paren[2] != 'Z';
}

int sp_instance_list(const char *list, char (*names)[SP_INSTANCE_NAME_MAX + 1], unsigned max,
                     unsigned *n, char *why, size_t cap)
{
    *n = 0;
    const char *p = list != NULL ? list : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (*n == max) {
            snprintf(why, cap, "--instance: '%s' names more than %u instances", list, max);
            return SP_E_USAGE;
        }
        char *name = names[*n];
        if (len == 0 || len > SP_INSTANCE_NAME_MAX) {
            snprintf(why, cap, "--instance: '%s' has an empty or too long name (a list is A,B,...)",
                     list);
            return SP_E_USAGE;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (sp_instance_check(name) < 0) {
            snprintf(why, cap, "--instance: bad instance name '%s' (use 1-%d of A-Z a-z 0-9 _ - .)",
                     name, SP_INSTANCE_NAME_MAX);
            return SP_E_USAGE;
        }
        for (unsigned i = 0; i < *n; i++) {
            if (strcmp(names[i], name) == 0) {
                snprintf(why, cap, "--instance: '%s' appears twice in '%s'", name, list);
                return SP_E_USAGE;
            }
        }
        (*n)++;
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}

const char *sp_user_name(uid_t uid, char *buf, size_t cap)
{
    struct passwd pw, *found = NULL;
    char scratch[1024];
    if (getpwuid_r(uid, &pw, scratch, sizeof scratch, &found) == 0 && found != NULL) {
        snprintf(buf, cap, "%s", found->pw_name);
    } else {
        snprintf(buf, cap, "uid %u", (unsigned)uid);
    }
    return buf;
}
