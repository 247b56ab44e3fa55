/*
 * sp_transport — the table of registered transports (see sp_transport.h).
 *
 * Registering a transport is one line in s_all: its descriptor, defined in
 * its own module.  Ids are stored in table headers, so a transport keeps its
 * id for ever and a retired one's is never reused.
 */
#include "sp_transport.h"

#include "sp_direct.h"
#include "sp_error.h"
#include "sp_mq.h"
#include "sp_nats.h"
#include "sp_shmlink.h"
#include "sp_zlink.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const sp_transport_t *const s_all[] = {
    &sp_transport_mq,     &sp_transport_zmq,  &sp_transport_shm,
    &sp_transport_direct, &sp_transport_nats,
};

#define S_COUNT (sizeof s_all / sizeof s_all[0])

const sp_transport_t *sp_transport_at(unsigned i)
{
    return i < S_COUNT ? s_all[i] : NULL;
}

const sp_transport_t *sp_transport_by_scheme(const char *endpoint)
{
    for (unsigned i = 0; endpoint != NULL && i < S_COUNT; i++) {
        const char *scheme = s_all[i]->scheme;
        if (scheme != NULL && strncmp(endpoint, scheme, strlen(scheme)) == 0) {
            return s_all[i];
        }
    }
    return NULL;
}

const sp_transport_t *sp_transport_find(const char *name)
{
    for (unsigned i = 0; name != NULL && i < S_COUNT; i++) {
        if (strcmp(s_all[i]->name, name) == 0) {
            return s_all[i];
        }
    }
    return NULL;
}

const sp_transport_t *sp_transport_by_id(uint32_t id)
{
    for (unsigned i = 0; i < S_COUNT; i++) {
        if (s_all[i]->id == id) {
            return s_all[i];
        }
    }
    return NULL;
}

const char *sp_transport_name_of(uint32_t id)
{
    const sp_transport_t *t = sp_transport_by_id(id);
    return t != NULL ? t->name : "?";
}

const char *sp_transport_names(char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < S_COUNT && used < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == S_COUNT ? " or " : ", ";
        int n = snprintf(buf + used, cap - used, "%s%s", sep, s_all[i]->name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

int sp_transport_owner_check(const char *what, const char *name, int rc, uid_t uid, char *why,
                             size_t why_cap)
{
    if (rc == -ENOENT || (rc == 0 && uid == geteuid())) {
        return 0;
    }
    if (rc == 0) {
        sp_why(why, why_cap,
               "the %s %s belongs to uid %u, not to us: refusing to use or remove it "
               "(choose another --instance)",
               what, name, (unsigned)uid);
    } else {
        sp_why(why, why_cap,
               "the %s %s exists and cannot be opened (%s): refusing to touch it "
               "(choose another --instance)",
               what, name, sp_strerror(rc));
    }
    return -EACCES;
}
