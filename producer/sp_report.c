/*
 * sp_report — the producer's reports (sp_report.h).
 */
#include "sp_report.h"

#include "sp_commit.h"
#include "sp_hist.h"

#include <stdio.h>

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

void sp_report_text(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st)
{
    double secs = st->end_ns > st->start_ns ? (double)(st->end_ns - st->start_ns) / 1e9 : 0;
    double answered = (double)sp_load_answered(st); /* only divided by seconds */
    fprintf(out,
            "orders      sent %llu  accepted %llu  out of stock %llu  unknown product %llu  "
            "invalid %llu  duplicate %llu  conflict %llu  no hold %llu\n",
            (unsigned long long)st->sent, (unsigned long long)st->status[SP_STATUS_ACCEPTED],
            (unsigned long long)st->status[SP_STATUS_OUT_OF_STOCK],
            (unsigned long long)st->status[SP_STATUS_UNKNOWN_PRODUCT],
            (unsigned long long)st->status[SP_STATUS_INVALID],
            (unsigned long long)st->status[SP_STATUS_DUPLICATE],
            (unsigned long long)st->status[SP_STATUS_CONFLICT],
            (unsigned long long)st->status[SP_STATUS_NO_HOLD]);
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
}

void sp_report_json(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st,
                    const char *extra)
{
    double secs = st->end_ns > st->start_ns ? (double)(st->end_ns - st->start_ns) / 1e9 : 0;
    double answered = (double)sp_load_answered(st); /* only divided by seconds */
    fprintf(out,
            "{\"instance\":\"%s\",\"customers\":%u,\"rate\":%.3f,\"arrival\":\"%s\","
            "\"batch\":%u,\"sent\":%llu,\"accepted\":%llu,\"out_of_stock\":%llu,"
            "\"unknown_product\":%llu,\"invalid\":%llu,\"duplicate\":%llu,\"timed_out\":%llu,"
            "\"send_failed\":%llu,\"retried\":%llu,\"duplicates\":%llu,\"late\":%llu,"
            "\"conflict\":%llu,\"no_hold\":%llu,\"unexpected\":%llu,\"units_sold\":%llu,"
            "\"units_restocked\":%llu,\"malformed_msgs\":%llu,\"malformed_orders\":%llu,"
            "\"malformed_refused\":%llu,\"seconds\":%.6f,\"throughput\":%.3f,"
            "\"latency_ns\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,"
            "\"mean\":%.1f}%s%s}\n",
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
            (unsigned long long)st->status[SP_STATUS_NO_HOLD], (unsigned long long)st->unexpected,
            (unsigned long long)st->units_sold, (unsigned long long)st->units_restocked,
            (unsigned long long)st->malformed_msgs, (unsigned long long)st->malformed_orders,
            (unsigned long long)st->malformed_refused, secs, secs > 0 ? answered / secs : 0,
            (unsigned long long)sp_hist_percentile(&st->latency, 50),
            (unsigned long long)sp_hist_percentile(&st->latency, 90),
            (unsigned long long)sp_hist_percentile(&st->latency, 99),
            (unsigned long long)sp_hist_percentile(&st->latency, 99.9),
            (unsigned long long)(st->latency.count ? st->latency.max : 0),
            sp_hist_mean(&st->latency), extra != NULL ? "," : "", extra != NULL ? extra : "");
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
    } else {
        fprintf(out, "refused: product %u, quantity %u: %s\n", id, qty,
                sp_wire_status_name(status));
    }
    return false;
}
