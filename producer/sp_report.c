/*
 * sp_report — the producer's reports (sp_report.h).
 */
#include "sp_report.h"

#include "sp_commit.h"
#include "sp_hist.h"

#include <math.h>
#include <stdio.h>

#define SP_REPORT_LEGS_JSON 256 /* the legs_ns member */

/* A latency as people read it: "850 ns", "12.3 us", "143.7 ms", "2.05 s". */
static const char *s_dur(uint64_t ns, char *buf, size_t cap)
{
    if (ns < 1000) {
        snprintf(buf, cap, "%llu ns", (unsigned long long)ns);
    } else if (ns < 1000000) {
        snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
    } else if (ns < 1000000000) {
        snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
    } else {
        snprintf(buf, cap, "%.2f s", (double)ns / 1e9);
    }
    return buf;
}

/* Answered orders a second over the run (0 for a run that took no time). */
static double s_rate(const sp_load_stats_t *st)
{
    double secs = st->end_ns > st->start_ns ? (double)(st->end_ns - st->start_ns) / 1e9 : 0;
    return secs > 0 ? (double)sp_load_answered(st) / secs : 0;
}

void sp_report_text(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st)
{
    double secs = st->end_ns > st->start_ns ? (double)(st->end_ns - st->start_ns) / 1e9 : 0;
    double answered = (double)sp_load_answered(st); /* only divided by seconds */
    fprintf(out,
            "orders      sent %llu  accepted %llu  out of stock %llu  unknown product %llu  "
            "invalid %llu  duplicate %llu  conflict %llu  no hold %llu  no room %llu\n",
            (unsigned long long)st->sent, (unsigned long long)st->status[SP_STATUS_ACCEPTED],
            (unsigned long long)st->status[SP_STATUS_OUT_OF_STOCK],
            (unsigned long long)st->status[SP_STATUS_UNKNOWN_PRODUCT],
            (unsigned long long)st->status[SP_STATUS_INVALID],
            (unsigned long long)st->status[SP_STATUS_DUPLICATE],
            (unsigned long long)st->status[SP_STATUS_CONFLICT],
            (unsigned long long)st->status[SP_STATUS_NO_HOLD],
            (unsigned long long)st->status[SP_STATUS_NO_ROOM]);
    fprintf(out,
            "failures    timed out %llu  send failed %llu  unexpected results %llu\n"
            "retries     resent %llu  answered from the dedup record %llu  late answers %llu\n",
            (unsigned long long)st->timed_out, (unsigned long long)st->send_failed,
            (unsigned long long)st->unexpected, (unsigned long long)st->retried,
            (unsigned long long)st->duplicates, (unsigned long long)st->late);
    fprintf(out, "units       sold %llu  restocked %llu\n", (unsigned long long)st->units_sold,
            (unsigned long long)st->units_restocked);
    if (cfg->malformed_every > 0) {
        fprintf(out,
                "malformed   injected %llu messages (to be dead-lettered) and %llu orders "
                "(%llu answered as refused)\n",
                (unsigned long long)st->malformed_msgs, (unsigned long long)st->malformed_orders,
                (unsigned long long)st->malformed_refused);
    }
    fprintf(out, "throughput  %.1f orders/s answered over %.2f s", secs > 0 ? answered / secs : 0,
            secs);
    if (cfg->rate > 0 && cfg->arrival != SP_ARRIVAL_FAST) {
        fprintf(out, " (offered %.1f/s, %s)", cfg->rate,
                cfg->arrival == SP_ARRIVAL_POISSON ? "poisson" : "constant");
    } else {
        fprintf(out, " (as fast as possible)");
    }
    char d[5][32];
    fprintf(out,
            "\nlatency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (from scheduled send time)\n",
            s_dur(sp_hist_percentile(&st->latency, 50), d[0], sizeof d[0]),
            s_dur(sp_hist_percentile(&st->latency, 90), d[1], sizeof d[1]),
            s_dur(sp_hist_percentile(&st->latency, 99), d[2], sizeof d[2]),
            s_dur(sp_hist_percentile(&st->latency, 99.9), d[3], sizeof d[3]),
            s_dur(st->latency.count ? st->latency.max : 0, d[4], sizeof d[4]));
    if (st->leg[SP_LEG_LATE].count > 0) {
        fprintf(out, "where       ");
        for (int i = 0; i < SP_LEG_COUNT; i++) {
            fprintf(out, "%s%s p50 %s p99 %s", i > 0 ? "  " : "", sp_leg_names[i],
                    s_dur(sp_hist_percentile(&st->leg[i], 50), d[0], sizeof d[0]),
                    s_dur(sp_hist_percentile(&st->leg[i], 99), d[1], sizeof d[1]));
        }
        fprintf(out, "  (%llu orders answered at their first send)\n",
                (unsigned long long)st->leg[SP_LEG_LATE].count);
    }
}

/* The legs as a JSON member, "legs_ns":{...} (empty when none was
 * recorded: a remote broker's clock is not ours). */
static void s_json_legs(char *buf, size_t cap, const sp_load_stats_t *st)
{
    buf[0] = '\0';
    if (st->leg[SP_LEG_LATE].count == 0) {
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, ",\"legs_ns\":{\"orders\":%llu",
                                (unsigned long long)st->leg[SP_LEG_LATE].count);
    for (int i = 0; i < SP_LEG_COUNT && n < cap; i++) {
        n += (size_t)snprintf(buf + n, cap - n, ",\"%s\":{\"p50\":%llu,\"p99\":%llu}",
                              sp_leg_names[i],
                              (unsigned long long)sp_hist_percentile(&st->leg[i], 50),
                              (unsigned long long)sp_hist_percentile(&st->leg[i], 99));
    }
    if (n < cap) {
        (void)snprintf(buf + n, cap - n, "}");
    }
}

void sp_report_json(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st,
                    const char *extra)
{
    double secs = st->end_ns > st->start_ns ? (double)(st->end_ns - st->start_ns) / 1e9 : 0;
    double answered = (double)sp_load_answered(st); /* only divided by seconds */
    char legs[SP_REPORT_LEGS_JSON];
    s_json_legs(legs, sizeof legs, st);
    fprintf(out,
            "{\"instance\":\"%s\",\"customers\":%u,\"rate\":%.3f,\"arrival\":\"%s\","
            "\"batch\":%u,\"sent\":%llu,\"accepted\":%llu,\"out_of_stock\":%llu,"
            "\"unknown_product\":%llu,\"invalid\":%llu,\"duplicate\":%llu,\"timed_out\":%llu,"
            "\"send_failed\":%llu,\"retried\":%llu,\"duplicates\":%llu,\"late\":%llu,"
            "\"conflict\":%llu,\"no_hold\":%llu,\"no_room\":%llu,\"unexpected\":%llu,\"units_"
            "sold\":%llu,"
            "\"units_restocked\":%llu,\"malformed_msgs\":%llu,\"malformed_orders\":%llu,"
            "\"malformed_refused\":%llu,\"seconds\":%.6f,\"throughput\":%.3f,"
            "\"latency_ns\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,"
            "\"mean\":%.1f}%s%s%s}\n",
            cfg->instance, cfg->customers, cfg->rate,
            cfg->arrival == SP_ARRIVAL_FAST
                ? "fast"
                : (cfg->arrival == SP_ARRIVAL_POISSON ? "poisson" : "constant"),
            cfg->batch, (unsigned long long)st->sent,
            (unsigned long long)st->status[SP_STATUS_ACCEPTED],
            (unsigned long long)st->status[SP_STATUS_OUT_OF_STOCK],
            (unsigned long long)st->status[SP_STATUS_UNKNOWN_PRODUCT],
            (unsigned long long)st->status[SP_STATUS_INVALID],
            (unsigned long long)st->status[SP_STATUS_DUPLICATE], (unsigned long long)st->timed_out,
            (unsigned long long)st->send_failed, (unsigned long long)st->retried,
            (unsigned long long)st->duplicates, (unsigned long long)st->late,
            (unsigned long long)st->status[SP_STATUS_CONFLICT],
            (unsigned long long)st->status[SP_STATUS_NO_HOLD],
            (unsigned long long)st->status[SP_STATUS_NO_ROOM], (unsigned long long)st->unexpected,
            (unsigned long long)st->units_sold, (unsigned long long)st->units_restocked,
            (unsigned long long)st->malformed_msgs, (unsigned long long)st->malformed_orders,
            (unsigned long long)st->malformed_refused, secs, secs > 0 ? answered / secs : 0,
            (unsigned long long)sp_hist_percentile(&st->latency, 50),
            (unsigned long long)sp_hist_percentile(&st->latency, 90),
            (unsigned long long)sp_hist_percentile(&st->latency, 99),
            (unsigned long long)sp_hist_percentile(&st->latency, 99.9),
            (unsigned long long)(st->latency.count ? st->latency.max : 0),
            sp_hist_mean(&st->latency), legs, extra != NULL ? "," : "", extra != NULL ? extra : "");
}

bool sp_report_once(FILE *out, const sp_once_t *req, const sp_result_t *res, uint32_t producer)
{
    /* a resent copy answered from the dedup record: the first outcome counts */
    unsigned status = res->status;
    if (status == SP_STATUS_DUPLICATE && res->original < SP_STATUS_COUNT) {
        status = res->original;
    }
    uint32_t id = req->product, qty = req->qty;
    unsigned hold_s = req->hold_s ? req->hold_s : SP_HOLD_DEFAULT_S;
    if (status == SP_STATUS_ACCEPTED) {
        switch (req->type) {
        case SP_ORDER_RESERVE:
            fprintf(out,
                    "held: product %u, quantity %u for %u s as producer %u, stock left %u\n"
                    "  buy it:     producer buy-held %u %u %u\n"
                    "  give it up: producer release %u %u %u\n",
                    id, qty, hold_s, producer, res->stock_after, id, qty, producer, id, qty,
                    producer);
            break;
        case SP_ORDER_BUY_HELD:
            fprintf(out, "bought the held units: product %u, quantity %u\n", id, qty);
            break;
        case SP_ORDER_RELEASE:
            fprintf(out, "released: product %u, quantity %u back in stock, now %u\n", id, qty,
                    res->stock_after);
            break;
        default:
            fprintf(out, "%s: product %u, quantity %u: accepted, stock left %u\n",
                    req->type == SP_ORDER_PURCHASE ? "bought" : "restocked", id, qty,
                    res->stock_after);
        }
        return true;
    }
    if (status == SP_STATUS_OUT_OF_STOCK) {
        fprintf(out, "not enough stock: product %u has %u, wanted %u\n", id, res->stock_after, qty);
    } else if (status == SP_STATUS_NO_HOLD) {
        fprintf(out,
                "refused: no live hold of product %u, quantity %u%s (expired, bought, released or "
                "never made; or one already)\n",
                id, qty, req->as_producer ? " for that producer" : "");
    } else if (status == SP_STATUS_NO_ROOM) {
        fprintf(out,
                "refused: no room for another producer (all %d de-duplication slots are held); "
                "try again later\n",
                SP_DEDUP_SLOTS);
    } else {
        fprintf(out, "refused: product %u, quantity %u: %s\n", id, qty,
                sp_wire_status_name(status));
    }
    return false;
}

void sp_thresholds_none(sp_thresholds_t *t)
{
    *t = (sp_thresholds_t){.max_timeouts = -1};
}

bool sp_thresholds_any(const sp_thresholds_t *t)
{
    return t->max_p99_ns > 0 || t->min_rate > 0 || t->max_timeouts >= 0;
}

bool sp_report_thresholds(FILE *out, const sp_thresholds_t *t, const sp_load_stats_t *st, bool json)
{
    if (!sp_thresholds_any(t)) {
        return true;
    }
    uint64_t p99 = sp_hist_percentile(&st->latency, 99);
    double rate = s_rate(st);
    /* an empty run has no p99 to hold against a limit: that fails it */
    bool p99_ok = t->max_p99_ns == 0 || (st->latency.count > 0 && p99 <= t->max_p99_ns);
    bool rate_ok = t->min_rate <= 0 || rate >= t->min_rate;
    bool to_ok = t->max_timeouts < 0 || st->timed_out <= (uint64_t)t->max_timeouts;
    bool ok = p99_ok && rate_ok && to_ok;
    const char *sep = "";
    if (json) {
        fprintf(out, "\"thresholds\":{\"ok\":%s", ok ? "true" : "false");
        if (t->max_p99_ns > 0) {
            fprintf(out, ",\"max_p99_ns\":{\"limit\":%llu,\"value\":%llu,\"ok\":%s}",
                    (unsigned long long)t->max_p99_ns, (unsigned long long)p99,
                    p99_ok ? "true" : "false");
        }
        if (t->min_rate > 0) {
            fprintf(out, ",\"min_rate\":{\"limit\":%.3f,\"value\":%.3f,\"ok\":%s}", t->min_rate,
                    rate, rate_ok ? "true" : "false");
        }
        if (t->max_timeouts >= 0) {
            fprintf(out, ",\"max_timeouts\":{\"limit\":%lld,\"value\":%llu,\"ok\":%s}",
                    (long long)t->max_timeouts, (unsigned long long)st->timed_out,
                    to_ok ? "true" : "false");
        }
        fputc('}', out);
        return ok;
    }
    fprintf(out, "thresholds ");
    if (t->max_p99_ns > 0) {
        char v[32], l[32];
        fprintf(out, " p99 %s <= %s %s", s_dur(p99, v, sizeof v), s_dur(t->max_p99_ns, l, sizeof l),
                p99_ok ? "held" : "FAILED");
        sep = ",";
    }
    if (t->min_rate > 0) {
        fprintf(out, "%s rate %.1f/s >= %.1f/s %s", sep, rate, t->min_rate,
                rate_ok ? "held" : "FAILED");
        sep = ",";
    }
    if (t->max_timeouts >= 0) {
        fprintf(out, "%s timed out %llu <= %lld %s", sep, (unsigned long long)st->timed_out,
                (long long)t->max_timeouts, to_ok ? "held" : "FAILED");
    }
    fprintf(out, "%s\n", ok ? "" : "  (exit 4)");
    return ok;
}

/* The value HdrHistogram reports for bucket b: its highest value, clamped to
 * what was recorded (as sp_hist_percentile does), in milliseconds. */
static double s_hgrm_value(const sp_hist_t *h, unsigned b)
{
    uint64_t v = sp_hist_bucket_high(b);
    v = v > h->max ? h->max : (v < h->min ? h->min : v);
    return (double)v / 1e6;
}

void sp_report_hgrm(FILE *out, const sp_hist_t *h)
{
    fprintf(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    uint64_t total = h->count, cum = 0;
    double level = 0, var = 0, mean = sp_hist_mean(h) / 1e6;
    long b = -1;
    /* HdrHistogram's percentile iteration: a line each time the running
     * count reaches the next level; the step halves with each halving of
     * the distance to 100 %, five lines per half; the last line is 100 %.
     * (The bound on b only guards against counts that do not add up.) */
    while (cum < total && b + 1 < (long)SP_HIST_BUCKETS) {
        while (b + 1 < (long)SP_HIST_BUCKETS) {
            if (b >= 0 && h->buckets[b] > 0 && 100.0 * (double)cum / (double)total >= level) {
                double inv = 1.0 / (1.0 - level / 100.0);
                fprintf(out, "%12.3f %2.12f %10llu %14.2f\n", s_hgrm_value(h, (unsigned)b),
                        level / 100.0, (unsigned long long)cum, inv);
                double ticks = 5.0 * pow(2.0, floor(log2(100.0 / (100.0 - level))) + 1);
                level += 100.0 / ticks;
                break;
            }
            b++;
            cum += h->buckets[b];
            if (h->buckets[b] > 0) {
                /* the deviation from each bucket's middle, as HdrHistogram does */
                double mid = ((double)sp_hist_bucket_low((unsigned)b) +
                              (double)sp_hist_bucket_high((unsigned)b)) /
                             2e6;
                var += (double)h->buckets[b] * (mid - mean) * (mid - mean);
            }
        }
    }
    if (total > 0) {
        fprintf(out, "%12.3f %2.12f %10llu\n", (double)h->max / 1e6, 1.0,
                (unsigned long long)total);
    }
    double max = total > 0 ? (double)h->max / 1e6 : 0;
    fprintf(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean,
            total > 0 ? sqrt(var / (double)total) : 0);
    fprintf(out, "#[Max     = %12.3f, Total count    = %12llu]\n", max, (unsigned long long)total);
    fprintf(out, "#[Buckets = %12d, SubBuckets     = %12u]\n", 64 - SP_HIST_SUB_BITS + 1,
            SP_HIST_SUB_COUNT);
}

void sp_report_tick_header(FILE *out, sp_tick_format_t format)
{
    if (format == SP_TICK_CSV) {
        fprintf(out, "elapsed_s,sent,answered,accepted,timed_out,in_flight,rate,p50_ns,p99_ns\n");
    }
}

void sp_report_tick(FILE *out, const sp_load_tick_t *t, sp_tick_format_t format, bool in_place)
{
    if (format == SP_TICK_JSON) {
        fprintf(out,
                "{\"elapsed_s\":%.3f,\"sent\":%llu,\"answered\":%llu,\"accepted\":%llu,"
                "\"timed_out\":%llu,\"in_flight\":%llu,\"rate\":%.1f,\"p50_ns\":%llu,"
                "\"p99_ns\":%llu}\n",
                t->elapsed_s, (unsigned long long)t->sent, (unsigned long long)t->answered,
                (unsigned long long)t->accepted, (unsigned long long)t->timed_out,
                (unsigned long long)t->in_flight, t->rate, (unsigned long long)t->p50_ns,
                (unsigned long long)t->p99_ns);
    } else if (format == SP_TICK_CSV) {
        fprintf(out, "%.3f,%llu,%llu,%llu,%llu,%llu,%.1f,%llu,%llu\n", t->elapsed_s,
                (unsigned long long)t->sent, (unsigned long long)t->answered,
                (unsigned long long)t->accepted, (unsigned long long)t->timed_out,
                (unsigned long long)t->in_flight, t->rate, (unsigned long long)t->p50_ns,
                (unsigned long long)t->p99_ns);
    } else {
        char p50[32], p99[32];
        fprintf(out,
                "%s[%6.1fs] %9.0f orders/s  answered %llu (accepted %llu)  timed out %llu  "
                "in flight %llu  p50 %s  p99 %s%s",
                in_place ? "\r\033[K" : "", t->elapsed_s, t->rate, (unsigned long long)t->answered,
                (unsigned long long)t->accepted, (unsigned long long)t->timed_out,
                (unsigned long long)t->in_flight,
                t->p50_ns ? s_dur(t->p50_ns, p50, sizeof p50) : "-",
                t->p99_ns ? s_dur(t->p99_ns, p99, sizeof p99) : "-", in_place ? "" : "\n");
    }
    (void)fflush(out); /* a progress line: the stream's errors are the caller's */
}
