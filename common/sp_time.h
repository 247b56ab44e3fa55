/*
 * sp_time — clocks.  All latencies use CLOCK_MONOTONIC nanoseconds, which
 * every process on one host shares, so a worker's timestamp and a producer's
 * can be compared directly.
 *
 * Nothing to own or free.  Only the /proc readers can fail (0 or -errno); the
 * sleeps block for what they are asked (less when a signal arrives);
 * everything is safe from any thread.
 */
#ifndef SP_TIME_H
#define SP_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SP_NS_PER_SEC 1000000000ull
#define SP_NS_PER_MS  1000000ull
#define SP_NS_PER_US  1000ull

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sp_now_ns(void);
/* CLOCK_REALTIME in ns (wall time, for records kept across reboots). */
uint64_t sp_realtime_ns(void);

/* Sleeps until the monotonic time `deadline_ns` (returns early on a signal). */
void sp_sleep_until_ns(uint64_t deadline_ns);

/* Sleeps for `ns` nanoseconds (returns early on a signal). */
void sp_sleep_ns(uint64_t ns);

/* A CLOCK_REALTIME deadline `timeout_ms` from now, for the *timed* POSIX
 * calls (mq_timedreceive, sem_timedwait) that only take wall-clock time. */
struct timespec sp_deadline_realtime(int timeout_ms);

/* CPU time and run-queue wait (time runnable but not running) in ns, from
 * /proc schedstat: of every live thread of process `pid` (0 = this one), or
 * of the calling thread only.  Returns 0 or -errno. */
int sp_sched_process(int pid, uint64_t *cpu_ns, uint64_t *wait_ns);
int sp_sched_thread(uint64_t *cpu_ns, uint64_t *wait_ns);

/* A size field of process `pid`'s /proc status ("VmRSS", "VmHWM",
 * "RssAnon"), in KiB; -1 when the process or the field is not there. */
long sp_proc_status_kb(int pid, const char *field);

/* A duration for people: "850ns", "12.3us", "4.56ms", "1.23s". */
void sp_fmt_ns(char *buf, size_t cap, uint64_t ns);

#endif
