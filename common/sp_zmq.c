/*
 * sp_zmq — process-wide ZeroMQ set-up and the options every socket shares.
 */
#include "sp_zmq.h"

#include <czmq.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

static void s_setup_once(void)
{
    zsys_handler_set(NULL);
    /* czmq's own first-use set-up is not safe when two threads make their
     * first socket at once (czmq issue #2196): do it here, once */
    zsys_init();
}

void sp_zmq_setup(void)
{
    /* once per process, whichever thread comes first: an in-process broker
     * (`--threads`, the bench's zmq-inproc) calls this from the broker, its
     * worker threads and the customer threads at the same time */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_setup_once);
}

int sp_zmq_max_frame(size_t largest)
{
    size_t limit = largest + SP_ZMQ_FRAME_SLACK;
    if (limit < SP_ZMQ_MSG_FLOOR) {
        limit = SP_ZMQ_MSG_FLOOR;
    }
    return limit > INT_MAX ? INT_MAX : (int)limit;
}

void sp_zmq_set_max_frame(void *sock, size_t largest)
{
    zsock_set_maxmsgsize(sock, sp_zmq_max_frame(largest));
}

void sp_zmq_endpoint_opts(void *sock, const char *endpoint)
{
    if (endpoint != NULL && strncmp(endpoint, "tcp://[", strlen("tcp://[")) == 0) {
        zsock_set_ipv6(sock, 1);
    }
}

void sp_zmq_worker_rid(uint32_t worker_id, pid_t pid, char *out, size_t cap)
{
    snprintf(out, cap, "w%u.%ld", worker_id, (long)pid);
}
