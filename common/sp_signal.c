/*
 * sp_signal — async-signal-safe stop flag.  The handler stores into a
 * lock-free atomic and does nothing else.
 */
#include "sp_signal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

static atomic_int s_stop_signal = 0; /* -1: programmatic stop */

static void s_on_signal(int sig)
{
    atomic_store(&s_stop_signal, sig);
}

int sp_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        return -errno;
    }
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        return -errno;
    }
    return 0;
}

bool sp_signal_stopping(void)
{
    return atomic_load_explicit(&s_stop_signal, memory_order_relaxed) != 0;
}

int sp_signal_which(void)
{
    int sig = atomic_load(&s_stop_signal);
    return sig > 0 ? sig : 0;
}

void sp_signal_request_stop(void)
{
    int expected = 0;
    atomic_compare_exchange_strong(&s_stop_signal, &expected, -1);
}

void sp_signal_reset(void)
{
    atomic_store(&s_stop_signal, 0);
}
