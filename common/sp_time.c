/*
 * sp_time — thin wrappers over clock_gettime/clock_nanosleep, and the
 * scheduler's per-thread accounting.
 */
#include "sp_time.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t sp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t sp_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * SP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void sp_sleep_until_ns(uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / SP_NS_PER_SEC),
                          .tv_nsec = (long)(deadline_ns % SP_NS_PER_SEC)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

void sp_sleep_ns(uint64_t ns)
{
    sp_sleep_until_ns(sp_now_ns() + ns);
}

struct timespec sp_deadline_realtime(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * SP_NS_PER_MS;
    ts.tv_sec += (time_t)(ns / SP_NS_PER_SEC);
    ts.tv_nsec = (long)(ns % SP_NS_PER_SEC);
    return ts;
}

void sp_fmt_ns(char *buf, size_t cap, uint64_t ns)
{
    const uint64_t ns_per_us = 1000;
    if (ns < ns_per_us) {
        snprintf(buf, cap, "%lluns", (unsigned long long)ns);
    } else if (ns < SP_NS_PER_MS) {
        snprintf(buf, cap, "%.1fus", (double)ns / (double)ns_per_us);
    } else if (ns < SP_NS_PER_SEC) {
        snprintf(buf, cap, "%.2fms", (double)ns / (double)SP_NS_PER_MS);
    } else {
        snprintf(buf, cap, "%.2fs", (double)ns / (double)SP_NS_PER_SEC);
    }
}

static int s_schedstat(const char *path, uint64_t *cpu_ns, uint64_t *wait_ns)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -errno;
    }
    unsigned long long cpu = 0, wait = 0;
    /* NOLINTNEXTLINE(cert-err34-c): the kernel writes schedstat, plain decimals */
    int n = fscanf(f, "%llu %llu", &cpu, &wait);
    (void)fclose(f); /* read only: nothing to lose */
    if (n != 2) {
        return -EPROTO;
    }
    *cpu_ns += cpu;
    *wait_ns += wait;
    return 0;
}

int sp_sched_process(int pid, uint64_t *cpu_ns, uint64_t *wait_ns)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", pid > 0 ? pid : (int)getpid());
    *cpu_ns = *wait_ns = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[128];
        snprintf(path, sizeof path, "%s/%.20s/schedstat", dir, e->d_name);
        s_schedstat(path, cpu_ns, wait_ns); /* a thread may just have exited */
    }
    closedir(d);
    return 0;
}

long sp_proc_status_kb(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            char *end = NULL;
            long v = strtol(line + n + 1, &end, 10);
            kb = end != line + n + 1 && v >= 0 ? v : -1;
            break;
        }
    }
    (void)fclose(f); /* read only */
    return kb;
}

int sp_sched_thread(uint64_t *cpu_ns, uint64_t *wait_ns)
{
    *cpu_ns = *wait_ns = 0;
    return s_schedstat("/proc/thread-self/schedstat", cpu_ns, wait_ns);
}
