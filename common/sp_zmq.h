/*
 * sp_zmq — ZeroMQ set-up shared by the ZeroMQ modules (sp_zlink, sp_events,
 * sp_router): czmq's own signal handling is switched off so that sp_signal's
 * flag stays the only interrupt mechanism, and every socket gets the same
 * maximum message size and high-water marks.
 */
#ifndef SP_ZMQ_H
#define SP_ZMQ_H

#include <stddef.h>

#define SP_ZMQ_HWM           100000 /* messages queued per pipe before back-pressure */
#define SP_ZMQ_PUB_LINGER_MS 1000   /* how long a closing publisher may flush */

/* Called by every ZeroMQ module before its first socket. */
void sp_zmq_setup(void);

#endif
