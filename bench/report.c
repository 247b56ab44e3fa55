/*
 * report — the machine header, raw baseline rows, and the three outputs:
 * the terminal table, CSV (one line per row, for gnuplot and spreadsheets)
 * and JSON (everything, with the machine, the command and the targets).
 */
#include "bench.h"

#include "sp_link.h"
#include "sp_mq.h"
#include "sp_version.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

void bench_raw_row(const br_cfg_t *cfg, unsigned repeats, bench_row_t *row)
{
    memset(row, 0, sizeof *row);
    snprintf(row->kind, sizeof row->kind, "%s", cfg->kind == BR_SHOP ? "shop" : "raw");
    /* the variant this is the ceiling of, so plots group them */
    const char *t = bench_variant_of_raw(cfg->kind);
    snprintf(row->transport, sizeof row->transport, "%s", t ? t : br_kind_name(cfg->kind));
    snprintf(row->series, sizeof row->series, "raw-%s", br_kind_name(cfg->kind));
    bool table = cfg->kind == BR_ATOMIC || cfg->kind == BR_SHOP;
    if (table) {
        snprintf(row->label, sizeof row->label, "raw-%s/%up/%u%s", br_kind_name(cfg->kind),
                 cfg->procs, cfg->products, cfg->zipf_s > 0 ? "/zipf" : "");
        row->procs = cfg->procs;
        row->producers = cfg->procs;
        row->products = cfg->products;
        row->zipf_s = cfg->zipf_s;
        if (cfg->kind == BR_SHOP) {
            snprintf(row->series, sizeof row->series, "shop-%up", cfg->procs);
        }
    } else {
        snprintf(row->label, sizeof row->label, "raw-%s/%uB/b%u", br_kind_name(cfg->kind),
                 cfg->msg_size, cfg->batch);
        row->procs = 2;
        row->batch = cfg->batch;
    }
    bench_row_no_latency(row);
    row->cpu_prod = row->cpu_broker = row->cpu_work = -1;
    row->audit = 1;

    br_result_t res;
    br_cfg_t warm = *cfg;
    warm.seconds = cfg->seconds / 4;
    if (br_run(&warm, &res) < 0) {
        row->audit = 0;
        snprintf(row->note, sizeof row->note, "%s", res.why);
        snprintf(row->flags, sizeof row->flags, "failed");
        return;
    }
    double ops[BENCH_REPEATS_MAX], cpu = 0;
    uint64_t orders = 0;
    for (unsigned i = 0; i < repeats && i < BENCH_REPEATS_MAX; i++) {
        int rc = br_run(cfg, &res);
        if (rc < 0) {
            row->audit = 0;
            snprintf(row->note, sizeof row->note, "%s", res.why);
            snprintf(row->flags, sizeof row->flags, "failed");
            break;
        }
        ops[row->repeats++] = res.orders_per_s;
        cpu += res.cpu_s;
        orders += res.orders;
    }
    if (row->repeats > 0) {
        row->ops_min = bench_min(ops, row->repeats);
        row->ops_max = bench_max(ops, row->repeats);
        row->ops_med = bench_median(ops, row->repeats);
        row->orders = orders;
        row->cpu_total = orders > 0 ? cpu / ((double)orders / 1e6) : -1;
    }
}

/* ---- machine ---- */

static void s_first_line_with(const char *path, const char *key, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            char *v = strchr(line, ':');
            if (v != NULL) {
                v++;
                v += strspn(v, " \t");
                v[strcspn(v, "\n")] = '\0';
                snprintf(out, cap, "%s", v);
            }
            break;
        }
    }
    (void)fclose(f); /* read only: nothing to lose */
}

void bench_machine(bench_machine_t *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->cpu, sizeof m->cpu, "unknown");
    s_first_line_with("/proc/cpuinfo", "model name", m->cpu, sizeof m->cpu);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores = n > 0 ? (unsigned)n : 0;
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
        snprintf(m->host, sizeof m->host, "%s", u.nodename);
    }
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    snprintf(m->libzmq, sizeof m->libzmq, "%d.%d.%d", maj, min, pat);
    snprintf(m->czmq, sizeof m->czmq, "%d.%d.%d", CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR,
             CZMQ_VERSION_PATCH);
    m->mq_msg_max = sp_mq_limit("msg_max");
    m->mq_msgsize_max = sp_mq_limit("msgsize_max");
    m->mq_queues_max = sp_mq_limit("queues_max");
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        m->date[0] = '\0'; /* on failure the contents are indeterminate */
    }
    if (getloadavg(m->load, 3) != 3) {
        m->load[0] = m->load[1] = m->load[2] = -1;
    }
}

void bench_print_header(FILE *out, const bench_machine_t *m, const char *command)
{
    fprintf(out, "stockpipe %s bench — %s\n", sp_version(), command);
    fprintf(out, "machine: %s, %u cores, %s; load average %.2f %.2f %.2f\n", m->cpu, m->cores,
            m->kernel, m->load[0], m->load[1], m->load[2]);
    fprintf(out, "libzmq %s, czmq %s; mq msg_max %ld, msgsize_max %ld, queues_max %ld; %s\n",
            m->libzmq, m->czmq, m->mq_msg_max, m->mq_msgsize_max, m->mq_queues_max, m->date);
}

/* ---- terminal table ---- */

static void s_num(char *buf, size_t cap, double v)
{
    if (v < 0) {
        snprintf(buf, cap, "-");
    } else if (v >= 1e6) {
        snprintf(buf, cap, "%.2fM", v / 1e6);
    } else if (v >= 1e3) {
        snprintf(buf, cap, "%.1fk", v / 1e3);
    } else {
        snprintf(buf, cap, "%.0f", v);
    }
}

static void s_us(char *buf, size_t cap, double us)
{
    if (us < 0) {
        snprintf(buf, cap, "-");
    } else if (us >= 1e3) {
        snprintf(buf, cap, "%.1fms", us / 1e3);
    } else {
        snprintf(buf, cap, "%.0fus", us);
    }
}

void bench_print_row_head(FILE *out)
{
    fprintf(out,
            "cell: transport/strategy/producers x workers (Np: N processes, no workers)/b orders "
            "per message/products[/zipf][/unguarded]\n"
            "mode: fast = closed loop; else the open-loop offered rate and its share of the "
            "cell's closed-loop median\n"
            "eff: orders/s / the raw baseline of the same transport and batching (- where none "
            "was measured: --no-raw, or it failed)\n");
    fprintf(out, "%-34s %-11s %9s %19s %6s %7s %7s %7s %6s %5s  %s\n", "cell", "mode", "orders/s",
            "(min-max)", "eff", "p50", "p99", "p99.9", "cpu/M", "audit", "flags");
}

void bench_print_row(FILE *out, const bench_row_t *r)
{
    char med[16], lo[16], hi[16], p50[16], p99[16], p999[16], eff[16], cpu[16], range[40];
    s_num(med, sizeof med, r->ops_med);
    s_num(lo, sizeof lo, r->ops_min);
    s_num(hi, sizeof hi, r->ops_max);
    snprintf(range, sizeof range, "(%s-%s)", lo, hi);
    s_us(p50, sizeof p50, r->p50);
    s_us(p99, sizeof p99, r->p99);
    s_us(p999, sizeof p999, r->p999);
    if (r->efficiency >= 0.1) {
        snprintf(eff, sizeof eff, "%.2f", r->efficiency);
    } else if (r->efficiency > 0) {
        /* two significant digits: a pipeline against a bare memory ring is
         * 0.0017, not 0.00 */
        snprintf(eff, sizeof eff, "%.2g", r->efficiency);
    } else {
        snprintf(eff, sizeof eff, "-");
    }
    if (r->cpu_total >= 0) {
        snprintf(cpu, sizeof cpu, "%.2fs", r->cpu_total);
    } else {
        snprintf(cpu, sizeof cpu, "-");
    }
    char mode[32];
    if (r->rate_mode && r->peak_pct > 0) {
        char offered[16];
        s_num(offered, sizeof offered, r->offered);
        snprintf(mode, sizeof mode, "%s %.0f%%", offered, r->peak_pct);
    } else if (r->rate_mode) {
        s_num(mode, sizeof mode, r->offered);
    } else {
        snprintf(mode, sizeof mode, "fast");
    }
    fprintf(out, "%-34s %-11s %9s %19s %6s %7s %7s %7s %6s %5s  %s%s%s\n", r->label, mode, med,
            range, eff, p50, p99, p999, cpu,
            r->audit == 1   ? "ok"
            : r->audit == 0 ? "FAIL"
                            : "n/a",
            r->flags, r->note[0] ? "  " : "", r->note);
}

/* "p50 / p99" of one leg or hop. */
static void s_pair(char *buf, size_t cap, double p50, double p99)
{
    char a[16], b[16];
    s_us(a, sizeof a, p50);
    s_us(b, sizeof b, p99);
    snprintf(buf, cap, "%s / %s", a, b);
}

void bench_print_legs(FILE *out, const bench_row_t *rows, unsigned n)
{
    bool any = false;
    for (unsigned i = 0; i < n; i++) {
        const bench_row_t *r = &rows[i];
        if (r->copy || !r->rate_mode || r->leg_p50[0] < 0) {
            continue;
        }
        if (!any) {
            fprintf(out, "\nwhere the time goes at the open-loop points, p50 / p99 of each leg "
                         "(orders answered at their first send):\n"
                         "  late: scheduled -> sent by the customer; out: sent -> applied by a "
                         "worker (transport, wake-up, table step);\n"
                         "  back: applied -> result received (journal, answer, transport, "
                         "wake-up);\n"
                         "  the workers' part of back, per order message (their slots' "
                         "histograms, 1 us buckets below 8 us):\n"
                         "  step: its orders through the table; journal: until its group's "
                         "journal write returned;\n"
                         "  reply: until its answer was handed to the transport; the rest "
                         "of back is the way back and the wake-up\n");
            fprintf(out, "  %-34s %-11s %7s %17s %17s %17s | %15s %15s %15s\n", "cell", "offered",
                    "p50", "late", "out", "back", "step", "journal", "reply");
            any = true;
        }
        char offered[16], p50[16], leg[SP_LEG_COUNT][40], hop[SP_WHOP_COUNT][40];
        s_num(offered, sizeof offered, r->offered);
        s_us(p50, sizeof p50, r->p50);
        for (int j = 0; j < SP_LEG_COUNT; j++) {
            s_pair(leg[j], sizeof leg[j], r->leg_p50[j], r->leg_p99[j]);
        }
        for (int j = 0; j < SP_WHOP_COUNT; j++) {
            s_pair(hop[j], sizeof hop[j], r->hop_p50[j], r->hop_p99[j]);
        }
        fprintf(out, "  %-34s %-11s %7s %17s %17s %17s | %15s %15s %15s\n", r->label, offered, p50,
                leg[0], leg[1], leg[2], hop[0], hop[1], hop[2]);
    }
}

void bench_print_memory(FILE *out, const bench_row_t *rows, unsigned n)
{
    bool any = false;
    for (unsigned i = 0; i < n; i++) {
        const bench_row_t *r = &rows[i];
        if (r->copy || r->rate_mode || r->table_mib < 0 ||
            (strcmp(r->kind, "pipeline") != 0 && strcmp(r->kind, "scaling") != 0)) {
            continue;
        }
        if (!any) {
            fprintf(out, "\nmemory after each cell's closed-loop runs: resident MiB (its own, "
                         "not the shared table's), the table's segment;\n"
                         "throughput per core: orders per CPU-second of every role "
                         "(1,000,000 / cpu/M)\n");
            fprintf(out, "  %-34s %16s %16s %9s %14s %13s\n", "cell", "broker (own)",
                    "workers (own)", "table", "bytes/product", "orders/CPU-s");
            any = true;
        }
        char b[32] = "-", w[32] = "-", core[16] = "-";
        if (r->rss_broker_mib >= 0) {
            snprintf(b, sizeof b, "%.1f (%.1f)", r->rss_broker_mib, r->anon_broker_mib);
        }
        if (r->rss_workers_mib >= 0) {
            snprintf(w, sizeof w, "%.1f (%.1f)", r->rss_workers_mib, r->anon_workers_mib);
        }
        if (r->cpu_total > 0) {
            s_num(core, sizeof core, 1e6 / r->cpu_total);
        }
        fprintf(out, "  %-34s %16s %16s %9.1f %14.0f %13s\n", r->label, b, w, r->table_mib,
                r->bytes_per_product, core);
    }
}

/* ---- CSV ---- */

static void s_csv_num(FILE *f, double v, bool na_if_negative)
{
    if (na_if_negative && v < 0) {
        fputc(',', f);
    } else {
        fprintf(f, ",%.6g", v);
    }
}

int bench_write_csv(const char *path, const bench_row_t *rows, unsigned n)
{
    FILE *f = fopen(path, "we");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f,
            "kind,label,series,transport,sync,producers,workers,procs,batch,products,pick,mode,"
            "offered,peak_pct,repeats,ops_median,ops_min,ops_max,raw_ops,efficiency,p50_us,p90_us,"
            "p99_us,p999_us,max_us,p99_target_us,cpu_prod,cpu_broker,cpu_work,cpu_total,"
            "late_p50_us,late_p99_us,out_p50_us,out_p99_us,back_p50_us,back_p99_us,"
            "step_p50_us,step_p99_us,journal_p50_us,journal_p99_us,reply_p50_us,reply_p99_us,"
            "rss_broker_mib,rss_workers_mib,anon_broker_mib,anon_workers_mib,table_mib,"
            "bytes_per_product,audit,flags\n");
    for (unsigned i = 0; i < n; i++) {
        const bench_row_t *r = &rows[i];
        char pick[24];
        if (r->zipf_s > 0) {
            snprintf(pick, sizeof pick, "zipf%.3g", r->zipf_s);
        } else {
            snprintf(pick, sizeof pick, "uniform");
        }
        fprintf(f, "%s,%s,%s,%s,%s,%u,%u,%u,%u,%u,%s,%s", r->kind, r->label, r->series,
                r->transport, r->sync, r->producers, r->workers, r->procs, r->batch, r->products,
                pick, r->rate_mode ? "rate" : "fast");
        if (r->rate_mode) {
            fprintf(f, ",%.0f", r->offered);
            s_csv_num(f, r->peak_pct > 0 ? r->peak_pct : -1, true);
        } else {
            fputs(",,", f);
        }
        fprintf(f, ",%u,%.0f,%.0f,%.0f", r->repeats, r->ops_med, r->ops_min, r->ops_max);
        s_csv_num(f, r->raw_ops > 0 ? r->raw_ops : -1, true);
        s_csv_num(f, r->efficiency > 0 ? r->efficiency : -1, true);
        s_csv_num(f, r->p50, true);
        s_csv_num(f, r->p90, true);
        s_csv_num(f, r->p99, true);
        s_csv_num(f, r->p999, true);
        s_csv_num(f, r->max, true);
        s_csv_num(f, r->p99_target_us > 0 ? r->p99_target_us : -1, true);
        s_csv_num(f, r->cpu_prod, true);
        s_csv_num(f, r->cpu_broker, true);
        s_csv_num(f, r->cpu_work, true);
        s_csv_num(f, r->cpu_total, true);
        for (int j = 0; j < SP_LEG_COUNT; j++) {
            s_csv_num(f, r->leg_p50[j], true);
            s_csv_num(f, r->leg_p99[j], true);
        }
        for (int j = 0; j < SP_WHOP_COUNT; j++) {
            s_csv_num(f, r->hop_p50[j], true);
            s_csv_num(f, r->hop_p99[j], true);
        }
        s_csv_num(f, r->rss_broker_mib, true);
        s_csv_num(f, r->rss_workers_mib, true);
        s_csv_num(f, r->anon_broker_mib, true);
        s_csv_num(f, r->anon_workers_mib, true);
        s_csv_num(f, r->table_mib, true);
        s_csv_num(f, r->bytes_per_product, true);
        fprintf(f, ",%s,%s\n", r->audit == 1 ? "pass" : r->audit == 0 ? "fail" : "n/a", r->flags);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

/* ---- JSON ---- */

static void s_json_str(FILE *f, const char *key, const char *v, bool comma)
{
    fprintf(f, "\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fprintf(f, "\"%s", comma ? "," : "");
}

static void s_json_num(FILE *f, const char *key, double v, bool comma)
{
    if (v < 0) {
        fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
    } else {
        fprintf(f, "\"%s\":%.6g%s", key, v, comma ? "," : "");
    }
}

/* "key":{"name":{"p50":..,"p99":..},...}, and a comma after it. */
static void s_json_p50_p99(FILE *f, const char *key, const char *const *names, const double *p50,
                           const double *p99, int n)
{
    fprintf(f, "\"%s\":{", key);
    for (int j = 0; j < n; j++) {
        fprintf(f, "\"%s\":{", names[j]);
        s_json_num(f, "p50", p50[j], true);
        s_json_num(f, "p99", p99[j], false);
        fprintf(f, "}%s", j + 1 < n ? "," : "");
    }
    fprintf(f, "},");
}

static void s_json_row(FILE *f, const bench_row_t *r)
{
    fputc('{', f);
    s_json_str(f, "kind", r->kind, true);
    s_json_str(f, "label", r->label, true);
    s_json_str(f, "series", r->series, true);
    s_json_str(f, "transport", r->transport, true);
    s_json_str(f, "sync", r->sync, true);
    fprintf(f, "\"producers\":%u,\"workers\":%u,\"procs\":%u,\"batch\":%u,\"products\":%u,",
            r->producers, r->workers, r->procs, r->batch, r->products);
    s_json_num(f, "zipf_s", r->zipf_s, true);
    s_json_str(f, "mode", r->rate_mode ? "rate" : "fast", true);
    s_json_num(f, "offered", r->rate_mode ? r->offered : -1, true);
    s_json_num(f, "peak_pct", r->rate_mode && r->peak_pct > 0 ? r->peak_pct : -1, true);
    fprintf(f, "\"repeats\":%u,", r->repeats);
    s_json_num(f, "ops_median", r->ops_med, true);
    s_json_num(f, "ops_min", r->ops_min, true);
    s_json_num(f, "ops_max", r->ops_max, true);
    s_json_num(f, "raw_ops", r->raw_ops > 0 ? r->raw_ops : -1, true);
    s_json_str(f, "raw_ref", r->raw_ref, true);
    s_json_num(f, "efficiency", r->efficiency > 0 ? r->efficiency : -1, true);
    fprintf(f, "\"latency_us\":{");
    s_json_num(f, "p50", r->p50, true);
    s_json_num(f, "p90", r->p90, true);
    s_json_num(f, "p99", r->p99, true);
    s_json_num(f, "p999", r->p999, true);
    s_json_num(f, "max", r->max, false);
    fprintf(f, "},");
    s_json_p50_p99(f, "legs_us", sp_leg_names, r->leg_p50, r->leg_p99, SP_LEG_COUNT);
    s_json_p50_p99(f, "worker_hops_us", sp_whop_names, r->hop_p50, r->hop_p99, SP_WHOP_COUNT);
    fprintf(f, "\"memory\":{");
    s_json_num(f, "rss_broker_mib", r->rss_broker_mib, true);
    s_json_num(f, "rss_workers_mib", r->rss_workers_mib, true);
    s_json_num(f, "anon_broker_mib", r->anon_broker_mib, true);
    s_json_num(f, "anon_workers_mib", r->anon_workers_mib, true);
    s_json_num(f, "table_mib", r->table_mib, true);
    s_json_num(f, "bytes_per_product", r->bytes_per_product, false);
    fprintf(f, "},");
    s_json_num(f, "p99_target_us", r->p99_target_us > 0 ? r->p99_target_us : -1, true);
    fprintf(f, "\"cpu_s_per_m\":{");
    s_json_num(f, "producers", r->cpu_prod, true);
    s_json_num(f, "broker", r->cpu_broker, true);
    s_json_num(f, "workers", r->cpu_work, true);
    s_json_num(f, "total", r->cpu_total, false);
    fprintf(f, "},\"wait_per_cpu\":{");
    s_json_num(f, "producers", r->wait_prod, true);
    s_json_num(f, "broker", r->wait_broker, true);
    s_json_num(f, "workers", r->wait_work, false);
    fprintf(f, "},\"orders\":%llu,", (unsigned long long)r->orders);
    s_json_str(f, "audit", r->audit == 1 ? "pass" : r->audit == 0 ? "fail" : "n/a", true);
    s_json_str(f, "flags", r->flags, true);
    s_json_str(f, "note", r->note, true);
    /* the same measurement repeated under another kind, for the plots */
    fprintf(f, "\"copy\":%s}", r->copy ? "true" : "false");
}

static void s_json_load(FILE *f, const char *key, const double load[3])
{
    if (load[0] < 0) {
        fprintf(f, "\"%s\":null,", key);
    } else {
        fprintf(f, "\"%s\":[%.2f,%.2f,%.2f],", key, load[0], load[1], load[2]);
    }
}

int bench_write_json(const char *path, const bench_machine_t *m, const double load_end[3],
                     const char *command, const bench_opts_t *opts, const bench_row_t *rows,
                     unsigned n, const bench_target_t *targets, unsigned ntargets)
{
    FILE *f = fopen(path, "we");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "{\"format\":\"stockpipe-bench-1\",");
    s_json_str(f, "version", sp_version(), true); /* git describe at build */
    s_json_str(f, "command", command, true);
    fprintf(f, "\"machine\":{");
    s_json_str(f, "cpu", m->cpu, true);
    fprintf(f, "\"cores\":%u,", m->cores);
    s_json_str(f, "kernel", m->kernel, true);
    s_json_str(f, "host", m->host, true);
    s_json_str(f, "libzmq", m->libzmq, true);
    s_json_str(f, "czmq", m->czmq, true);
    fprintf(f, "\"mq_msg_max\":%ld,\"mq_msgsize_max\":%ld,\"mq_queues_max\":%ld,", m->mq_msg_max,
            m->mq_msgsize_max, m->mq_queues_max);
    s_json_load(f, "loadavg", m->load);
    s_json_load(f, "loadavg_end", load_end);
    s_json_str(f, "date", m->date, false);
    fprintf(f, "},\"settings\":{");
    s_json_num(f, "warmup_s", opts->warmup_s, true);
    s_json_num(f, "run_s", opts->run_s, true);
    s_json_num(f, "rate_s", opts->rate_s, true);
    fprintf(f, "\"repeats\":%u,\"window\":%u,", opts->repeats, opts->window);
    s_json_num(f, "p99_target_us", opts->p99_target_us, false);
    fprintf(f, "},\n\"rows\":[\n");
    for (unsigned i = 0; i < n; i++) {
        s_json_row(f, &rows[i]);
        fprintf(f, "%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "],\n\"targets\":[\n");
    for (unsigned i = 0; i < ntargets; i++) {
        const bench_target_t *t = &targets[i];
        fputc('{', f);
        s_json_str(f, "name", t->name, true);
        s_json_str(f, "detail", t->detail, true);
        s_json_num(f, "value", t->met < 0 ? -1 : t->value, true);
        s_json_num(f, "goal", t->goal, true);
        s_json_str(f, "met", t->met == 1 ? "yes" : t->met == 0 ? "no" : "not measured", false);
        fprintf(f, "}%s\n", i + 1 < ntargets ? "," : "");
    }
    unsigned failed = 0;
    for (unsigned i = 0; i < n; i++) {
        failed += rows[i].audit == 0;
    }
    fprintf(f, "],\n\"audit\":{\"cells\":%u,\"failed\":%u}}\n", n, failed);
    return fclose(f) == 0 ? 0 : -errno;
}

int bench_exit_status(unsigned failed_audits, const bench_target_t *targets, unsigned ntargets,
                      bool strict, bool interrupted)
{
    if (interrupted) {
        return 130;
    }
    if (failed_audits > 0) {
        return 1;
    }
    for (unsigned i = 0; strict && i < ntargets; i++) {
        if (targets[i].met == 0) {
            return BENCH_EXIT_MISSED;
        }
    }
    return 0;
}
