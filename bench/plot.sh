#!/usr/bin/env bash
# Plots the benchmark's results with gnuplot.
#
#   bash bench/plot.sh RESULTS.csv OUTDIR
#
# Writes each plot as OUTDIR/NAME.png and OUTDIR/NAME.svg (about 1000x600):
#   throughput  orders/s (median, min-max bars) of kind=pipeline mode=fast,
#               grouped by transport, on a linear axis
#   baselines   orders/s of the kind=raw baselines (the bare transports), apart:
#               they run 10 to 1000 times faster than any pipeline cell, so on
#               one axis with the cells they would flatten them (log axis when
#               they span more than 100x)
#   latency     p50 / p99 / p99.9 latency (us) of kind=pipeline mode=rate
#   scaling     orders/s against processes (producers+workers, else procs),
#               kind=scaling, one line per series
#   sweep       p99 latency against achieved orders/s, kind=sweep, one line
#               per series, the p99 target dashed, knees (flag knee) circled
#   shop        orders/s against products, kind=shop, one line per procs
# A plot whose rows are absent is skipped with a note on stderr.
#
# The CSV is the benchmark's: a header line naming the columns (found by name,
# so extra or reordered columns are harmless), then one row per cell; numbers
# are decimals (awk and gnuplot also take 1.5e+06), an empty field means "not
# applicable" (0 does too for producers, workers, procs and products; an
# ops_* of 0 is a cell that delivered nothing).  Groups, bars and lines keep
# the order in which transports, strategies and series first appear in the
# file; points within a line are sorted by x, so row order there is free.
# Labels, series and flags never contain commas or quotes, so plain `awk -F,`
# splitting is enough (no CSV quoting is handled).  Rows whose field count
# differs from the header's (a truncated last line) are skipped with a warning.
# bench/sample.csv is a synthetic fixture (made-up numbers, every kind) for
# testing this script: bash bench/plot.sh bench/sample.csv /tmp/plots
#
# Exit status: 0 done, 1 bad input or gnuplot failed, 2 usage, 3 no gnuplot.
# Nothing is written outside OUTDIR; the scratch directory lives in OUTDIR and
# is removed on exit.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 RESULTS.csv OUTDIR" >&2
    exit 2
fi
csv=$1
outdir=$2

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot: gnuplot not found; install it with:" >&2
    echo "apt-get install -y gnuplot-nox" >&2
    exit 3
fi
if [ ! -r "$csv" ]; then
    echo "plot: cannot read $csv" >&2
    exit 1
fi

# Terminals: Debian 12's gnuplot-nox has pngcairo and svg; plain png (libgd)
# is the fallback for builds without cairo.
W=1000
H=600
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
    png_term='pngcairo size %d,%d noenhanced font "Sans,10" background "white"'
elif gnuplot -e 'set terminal png' >/dev/null 2>&1; then
    png_term='png size %d,%d noenhanced background "white"'
else
    png_term=
    echo "plot: gnuplot has neither pngcairo nor png; no PNG files" >&2
fi
if gnuplot -e 'set terminal svg' >/dev/null 2>&1; then
    svg_term='svg size %d,%d dynamic noenhanced font "Sans,10" background "white"'
else
    svg_term=
    echo "plot: gnuplot has no svg terminal; no SVG files" >&2
fi

mkdir -p "$outdir"
tmp=$(mktemp -d "$outdir/.plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# --- input: check the header, drop malformed rows, strip CRs ---------------
need_cols="kind label series transport sync producers workers procs products mode offered ops_median ops_min ops_max p50_us p99_us p999_us p99_target_us audit flags"
awk -F, -v need="$need_cols" -v src="$csv" '
    { sub(/\r$/, "") }
    NR == 1 {
        nf = NF
        for (i = 1; i <= NF; i++) seen[$i] = 1
        n = split(need, want, " ")
        for (i = 1; i <= n; i++)
            if (!(want[i] in seen)) missing = missing " " want[i]
        if (missing != "") {
            printf "plot: %s: header lacks column(s):%s\n", src, missing > "/dev/stderr"
            exit 1
        }
        print; next
    }
    /^[[:space:]]*$/ { next }
    NF != nf {
        printf "plot: %s:%d: %d fields, header has %d; row skipped\n", src, NR, NF, nf > "/dev/stderr"
        next
    }
    { print }
' "$csv" >"$tmp/in.csv" || {
    echo "plot: $csv: unusable input" >&2
    exit 1
}
if [ ! -s "$tmp/in.csv" ]; then
    echo "plot: $csv is empty" >&2
    exit 1
fi

# select_rows FILTER FIELD...  prints the named fields of the rows matching
# FILTER, tab-separated, in file order.  FILTER is "col=value col=value"
# (all must hold); alternatives are separated by "|".
select_rows() {
    local filter=$1
    shift
    awk -F, -v OFS='\t' -v filter="$filter" -v fields="$*" '
        NR == 1 {
            for (i = 1; i <= NF; i++) col[$i] = i
            nalt = split(filter, alt, "|")
            for (a = 1; a <= nalt; a++) {
                n[a] = split(alt[a], fl, " ")
                for (i = 1; i <= n[a]; i++) {
                    eq = index(fl[i], "=")
                    fcol[a, i] = col[substr(fl[i], 1, eq - 1)]
                    fval[a, i] = substr(fl[i], eq + 1)
                }
            }
            nf = split(fields, f, " ")
            next
        }
        {
            for (a = 1; a <= nalt; a++) {
                ok = 1
                for (i = 1; i <= n[a]; i++) if ($(fcol[a, i]) != fval[a, i]) { ok = 0; break }
                if (ok) break
            }
            if (!ok) next
            line = ""
            for (j = 1; j <= nf; j++) line = line (j > 1 ? OFS : "") $(col[f[j]])
            print line
        }
    ' "$tmp/in.csv"
}

# gnuplot single-quoted string (only '' needs escaping)
gq() { printf "'%s'" "${1//\'/\'\'}"; }

# render NAME WIDTH HEIGHT: runs $tmp/NAME.gp (settings, then one `plot`) for
# the PNG terminal and replots for the SVG one: OUTDIR/NAME.png, NAME.svg.
render() {
    local name=$1 w=$2 h=$3 gp="$tmp/$1.run.gp" term ext
    {
        echo 'set encoding utf8'
        printf '%s' "$common"
        local first=1
        for term in "$png_term" "$svg_term"; do
            [ -n "$term" ] || continue
            # shellcheck disable=SC2059
            printf "set terminal $term\n" "$w" "$h"
            if [ "$term" = "$png_term" ]; then ext=png; else ext=svg; fi
            echo "set output $(gq "$outdir/$name.$ext")"
            if [ $first -eq 1 ]; then cat "$tmp/$name.gp"; else echo 'replot'; fi
            echo 'set output'
            first=0
        done
    } >"$gp"
    if ! gnuplot "$gp" 2>"$tmp/$name.err"; then
        cat "$tmp/$name.err" >&2
        echo "plot: gnuplot failed on $name" >&2
        exit 1
    fi
    # gnuplot warns (e.g. about empty series) without failing; pass them on
    if [ -s "$tmp/$name.err" ]; then sed "s/^/plot: $name: /" "$tmp/$name.err" >&2; fi
    echo "plot: wrote $name"
    plotted=$((plotted + 1))
}
plotted=0

skip() { echo "plot: no $2 rows; $1 plot skipped" >&2; }

# Common look: light grid, colour-blind-safe palette (Paul Tol), key in the
# right margin so it never covers data, labels as written (noenhanced).
common='set grid xtics ytics mytics lc rgb "#dddddd" lt 1, lc rgb "#eeeeee" lt 1
set border 3
set tics nomirror
set key outside right top vertical Left reverse noautotitle spacing 1.2
set style fill solid 0.9 border -1
set style textbox opaque noborder
set linetype 1 lc rgb "#4477aa" lw 2 pt 7 ps 1.2
set linetype 2 lc rgb "#ee6677" lw 2 pt 5 ps 1.1
set linetype 3 lc rgb "#228833" lw 2 pt 9 ps 1.4
set linetype 4 lc rgb "#ccbb44" lw 2 pt 11 ps 1.4
set linetype 5 lc rgb "#66ccee" lw 2 pt 13 ps 1.3
set linetype 6 lc rgb "#aa3377" lw 2 pt 7 ps 1.2
set linetype 7 lc rgb "#bbbbbb" lw 2 pt 5 ps 1.1
set linetype 8 lc rgb "#222222" lw 2 pt 9 ps 1.4
set linetype cycle 8
si(v) = v >= 1e6 ? sprintf("%.3gM", v / 1e6) : v >= 1e3 ? sprintf("%.3gk", v / 1e3) : sprintf("%.3g", v)
'

# Orders of groups and lines follow first appearance in the CSV, so the
# benchmark decides them (e.g. mq, zmq-ipc, zmq-tcp, zmq-inproc, shm, direct).

# --- 1. throughput and 2. baselines ------------------------------------------
# bars NAME FILTER TITLE XLABEL LOG: bars per row (median, capped min-max
# bars), grouped by transport in first-appearance order and by strategy
# within one; a gap and a dotted line separate transports.  Rows whose audit
# failed (or flagged failed) get a red cross and " [FAIL]" in their label.
# LOG "auto": a log axis when the bars span more than 100x; "no": linear from 0.
bars() {
    local name=$1 filter=$2 title=$3 xlabel=$4 log=$5
    select_rows "$filter" kind transport sync label ops_median ops_min ops_max audit flags |
        awk -F'\t' -v OFS='\t' '
            !($2 in tr) { tr[$2] = ++ntr }
            !($3 in sy) { sy[$3] = ++nsy }
            { print tr[$2], sy[$3], NR, $0 }' |
        sort -t$'\t' -k1,1n -k2,2n -k3,3n | cut -f4- >"$tmp/$name.tsv"
    if [ ! -s "$tmp/$name.tsv" ]; then
        skip "$name" "$filter"
        return
    fi
    awk -F'\t' -v out="$tmp/$name.gp" -v nfile="$tmp/$name.n" -v title="$title" \
        -v xlabel="$xlabel" -v logy="$log" '
        function num(v) { return v == "" ? "NaN" : v }
        {
            tr = $2; lab = $4; med = $5; lo = $6; hi = $7
            if (NR > 1 && tr != prev) { sep[++nsep] = x + 0.75; x += 1.5 } else if (NR > 1) x += 1
            prev = tr
            if (lo == "") lo = med
            if (hi == "") hi = med
            bad = ($8 == "fail" || (" " $9 " ") ~ / failed /)
            if (bad) lab = lab " [FAIL]"
            if (NR == 1) firstlen = length(lab)
            line = sprintf("%g %s %s %s \"%s\"", x, num(med), num(lo), num(hi), lab)
            d = d line "\n"
            if (bad) fail = fail line "\n"
            for (v = 5; v <= 7; v++) if ($v != "" && $v + 0 > 0) {
                if (min == "" || $v + 0 < min) min = $v + 0
                if (max == "" || $v + 0 > max) max = $v + 0
            }
        }
        END {
            f = out
            printf "$d << EOD\n%sEOD\n", d > f
            if (fail != "") printf "$fail << EOD\n%sEOD\n", fail > f
            print "set title \"" title "\"" > f
            print "set ylabel \"orders/s (median of repeats)\"" > f
            print "set xlabel \"" xlabel "\"" > f
            print "set xtics rotate by 40 right scale 0 font \",9\"" > f
            print "set grid noxtics" > f
            print "set xrange [-0.8:" x + 0.8 "]" > f
            print "set format y \"%.1s%c\"" > f
            lm = int(firstlen * 0.62) + 1
            if (lm > 10) print "set lmargin " lm > f
            if (logy == "auto" && min > 0 && max / min > 100) {
                print "set logscale y\nset yrange [" min / 2 ":" max * 2 "]" > f
                print "set label \"log scale\" at graph 0.01, graph 1.03 font \",9\"" > f
            } else if (max > 0) print "set yrange [0:" max * 1.08 "]" > f
            for (i = 1; i <= nsep; i++)
                printf "set arrow from %g, graph 0 to %g, graph 1 nohead dt 3 lc rgb \"#999999\"\n", sep[i], sep[i] > f
            # error bars as capped vectors: yerrorbars leaves a gap at the median
            eb = "with vectors heads size screen 0.006,90 lw 1.5 lc rgb \"#222222\""
            colour = (logy == "auto" ? "#ee7733" : "#4477aa")
            pl[++np] = "$d using 1:2:(0.7):xtic(5) with boxes lw 1 lc rgb \"" colour "\" notitle"
            pl[++np] = "$d using 1:3:(0):($4-$3) " eb " title \"min-max\""
            if (fail != "")
                pl[++np] = "$fail using 1:2 with points pt 2 ps 2.5 lw 3 lc rgb \"#cc0000\" title \"failed\""
            for (i = 1; i <= np; i++) printf "%s%s", (i == 1 ? "plot " : ", \\\n     "), pl[i] > f
            print "" > f
            print int(x + 1) > nfile
        }
    ' "$tmp/$name.tsv"
    local n w=$W
    n=$(cat "$tmp/$name.n")
    if [ "$n" -gt 36 ]; then w=$((n * 28)); fi
    render "$name" "$w" "$H"
}

# The x caption spells out the labels (bench_cell_label in bench/cell.c).
bars throughput "kind=pipeline mode=fast" \
    "Pipeline throughput, as fast as possible (kind=pipeline mode=fast; linear axis)" \
    "cell: transport/strategy/producers x workers/b orders per message/products\\\\n(direct: Np = N processes, no workers; /zipf: Zipf popularity; /unguarded: broker --no-dedup)" \
    no
bars baselines "kind=raw" \
    "Raw baselines: the bare transports alone, one sender and one receiver (kind=raw)" \
    "raw-TRANSPORT/message bytes/b orders per message, or raw-atomic/Np/rows (N processes)" \
    auto

# --- 2. latency -----------------------------------------------------------
# One cluster per cell, grouped like the throughput plot; a cell measured at
# several offered rates appears once per rate, labelled label@rate.
select_rows "kind=pipeline mode=rate" transport sync label offered p50_us p99_us p999_us flags |
    awk -F'\t' -v OFS='\t' '
        !($1 in tr) { tr[$1] = ++ntr }
        !($2 in sy) { sy[$2] = ++nsy }
        !($3 in lb) { lb[$3] = ++nlb }
        { print tr[$1], sy[$2], lb[$3], ($4 == "" ? 0 : $4), $0 }' |
    sort -t$'\t' -k1,1n -k2,2n -k3,3n -k4,4g | cut -f5- >"$tmp/lat.tsv"
if [ ! -s "$tmp/lat.tsv" ]; then
    skip latency "kind=pipeline mode=rate"
else
    awk -F'\t' -v out="$tmp/latency.gp" -v nfile="$tmp/latency.n" '
        function num(v) { return v == "" ? "NaN" : v }
        function si(v) {
            if (v >= 1e6) return sprintf("%gM", v / 1e6)
            if (v >= 1e3) return sprintf("%gk", v / 1e3)
            return v
        }
        NR == FNR { count[$3]++; next }
        {
            lab = $3
            if (count[$3] > 1) lab = lab "@" si($4) "/s"
            if ((" " $8 " ") ~ / rate-not-reached /) { lab = lab " *"; star = 1 }
            x++
            if (x == 1) firstlen = length(lab)
            d = d sprintf("%d %s %s %s \"%s\"\n", x, num($5), num($6), num($7), lab)
        }
        END {
            f = out
            printf "$d << EOD\n%sEOD\n", d > f
            t = "Latency, open loop at a fixed offered rate (kind=pipeline mode=rate)"
            if (star) t = t "\\n* offered rate not reached"
            print "set title \"" t "\"" > f
            print "set ylabel \"latency (µs)\"" > f
            print "set xlabel \"cell (transport/strategy/producers x workers/batch)\"" > f
            print "set logscale y" > f
            print "set format y \"%g\"" > f
            print "set xtics rotate by 40 right scale 0 font \",9\"" > f
            print "set grid noxtics" > f
            print "set xrange [0.4:" x + 0.6 "]" > f
            lm = int(firstlen * 0.62) + 1
            if (lm > 10) print "set lmargin " lm > f
            print "bw = 0.27" > f
            print "plot $d using ($1-bw):2:(bw):xtic(5) with boxes lw 1 lc rgb \"#88ccee\" title \"p50\", \\" > f
            print "     $d using 1:3:(bw) with boxes lw 1 lc rgb \"#4477aa\" title \"p99\", \\" > f
            print "     $d using ($1+bw):4:(bw) with boxes lw 1 lc rgb \"#332288\" title \"p99.9\"" > f
            print x > nfile
        }
    ' "$tmp/lat.tsv" "$tmp/lat.tsv"
    n=$(cat "$tmp/latency.n")
    w=$W
    if [ "$n" -gt 30 ]; then w=$((n * 33)); fi
    render latency "$w" "$H"
fi

# lines_plot NAME LOGX LOGY [EXTRA]: $tmp/NAME.tsv holds lines of
# "series<TAB>x<TAB>y<TAB>ymin<TAB>ymax", grouped by series (in the order
# wanted) and sorted by x within one; appends to $tmp/NAME.gp (which holds the
# plot's own settings) a datablock with one index per series and the plot.
# LOGX / LOGY: "auto" (log when max/min > 100), "yes", "no"; LOGX also
# "auto2" (log base 2 when max/min >= 8).  EXTRA: more plot elements.
# A linear axis starts at 0.
lines_plot() {
    local name=$1 logx=$2 logy=$3 extra=${4:-}
    awk -F'\t' -v out="$tmp/$name.gp" -v logx="$logx" -v logy="$logy" -v extra="$extra" '
        function num(v) { return v == "" ? "NaN" : v }
        function range(v, a) {
            if (v == "" || v + 0 <= 0) return
            v += 0
            if (!(a in mn) || v < mn[a]) mn[a] = v
            if (!(a in mx) || v > mx[a]) mx[a] = v
        }
        {
            if (NR == 1 || $1 != prev) {
                if (NR > 1) d = d "\n\n"
                ser[++ns] = $1
                prev = $1
            }
            lo = ($4 == "" ? $3 : $4); hi = ($5 == "" ? $3 : $5)
            d = d sprintf("%s %s %s %s\n", num($2), num($3), num(lo), num(hi))
            range($2, "x"); range(lo, "y"); range(hi, "y"); range($3, "y")
        }
        END {
            f = out
            printf "$d << EOD\n%sEOD\n", d >> f
            rx = mn["x"] > 0 ? mx["x"] / mn["x"] : 0
            ry = mn["y"] > 0 ? mx["y"] / mn["y"] : 0
            if (logx == "yes" || (logx == "auto" && rx > 100)) print "set logscale x" >> f
            else if (logx == "auto2" && rx >= 8) print "set logscale x 2" >> f
            else print "set xrange [0:*]" >> f
            if (logy == "yes" || (logy == "auto" && ry > 100)) print "set logscale y" >> f
            else print "set yrange [0:*]" >> f
            printf "plot " >> f
            for (i = 1; i <= ns; i++)
                printf "%s$d index %d using 1:2:3:4 with yerrorlines lt %d title \"%s\"", \
                    (i > 1 ? ", \\\n     " : ""), i - 1, i, ser[i] >> f
            if (extra != "") printf ", \\\n     %s", extra >> f
            print "" >> f
        }
    ' "$tmp/$name.tsv"
}

# --- 3. scaling -----------------------------------------------------------
# x = producers + workers when that is above 0, else procs (a writer may put
# 0 or leave the field empty for "not applicable").
select_rows "kind=scaling" series producers workers procs ops_median ops_min ops_max |
    awk -F'\t' -v OFS='\t' '
        {
            if ($2 + $3 > 0) n = $2 + $3
            else if ($4 + 0 > 0) n = $4 + 0
            else { printf "plot: scaling row of series %s has neither producers+workers nor procs; skipped\n", $1 > "/dev/stderr"; next }
            if (!($1 in rank)) rank[$1] = ++nr
            print rank[$1], n, $1, n, $5, $6, $7
        }' | sort -t$'\t' -k1,1n -k2,2g | cut -f3- >"$tmp/scaling.tsv"
if [ ! -s "$tmp/scaling.tsv" ]; then
    skip scaling kind=scaling
else
    cat >"$tmp/scaling.gp" <<'EOF'
set title "Scaling: throughput against process count (kind=scaling; median, bars min-max)"
set xlabel "processes (producers + workers; procs for table loops)"
set ylabel "orders/s"
set format y "%.1s%c"
set offsets graph 0.03, graph 0.03, 0, 0
EOF
    lines_plot scaling auto2 auto
    render scaling "$W" "$H"
fi

# --- 4. sweep -------------------------------------------------------------
# Points joined in order of offered rate; x is the achieved rate.  Every
# distinct p99_target_us is drawn as a dashed line; rows flagged knee circled.
select_rows "kind=sweep" series offered ops_median p99_us p99_target_us flags |
    awk -F'\t' -v OFS='\t' '
        !($1 in rank) { rank[$1] = ++nr }
        { print rank[$1], ($2 == "" ? 0 : $2), $0 }' |
    sort -t$'\t' -k1,1n -k2,2g | cut -f3- >"$tmp/sweep.all"
if [ ! -s "$tmp/sweep.all" ]; then
    skip sweep kind=sweep
else
    awk -F'\t' -v OFS='\t' '{ print $1, $3, $4, "", "" }' "$tmp/sweep.all" >"$tmp/sweep.tsv"
    awk -F'\t' -v extrafile="$tmp/sweep.extra" '
        (" " $6 " ") ~ / knee / && $3 != "" && $4 != "" { knee = knee $3 " " $4 "\n" }
        $5 != "" && !($5 in seen) { seen[$5] = 1; tg[++nt] = $5 }
        $3 != "" && $3 + 0 > 0 { if (x0 == "" || $3 + 0 < x0) x0 = $3 + 0; if (x1 == "" || $3 + 0 > x1) x1 = $3 + 0 }
        END {
            print "set title \"Load sweep: p99 latency against achieved throughput (kind=sweep)\""
            print "set xlabel \"achieved orders/s\""
            print "set ylabel \"p99 latency (µs)\""
            print "set format x \"%.1s%c\""
            print "set format y \"%g\""
            print "set offsets 0, graph 0.03, 0, 0"
            if (knee != "") printf "$knee << EOD\n%sEOD\n", knee
            for (i = 1; i <= nt; i++) {
                printf "set arrow from graph 0, first %s to graph 1, first %s nohead dt 2 lw 2 lc rgb \"#cc3311\" front\n", tg[i], tg[i]
                # the arrow spans the plot; this line across the data gives
                # the key entry and keeps the target inside the y range
                tgt = tgt sprintf("%s%s %s\n%s %s\n", (i > 1 ? "\n\n" : ""), x0, tg[i], x1, tg[i])
                extra = extra sprintf("%s$tgt index %d using 1:2 with lines dt 2 lw 2 lc rgb \"#cc3311\" title \"p99 target %s µs\"", (extra == "" ? "" : ", "), i - 1, tg[i])
            }
            if (nt > 0) printf "$tgt << EOD\n%sEOD\n", tgt
            if (knee != "") {
                extra = extra (extra == "" ? "" : ", ") "$knee using 1:2 with points pt 6 ps 3 lw 2 lc rgb \"#000000\" title \"knee\""
                extra = extra ", $knee using 1:2:(\"knee \".si($1).\"/s\") with labels left offset 1.4,-0.9 boxed notitle"
            }
            print extra > extrafile
        }' "$tmp/sweep.all" >"$tmp/sweep.gp"
    lines_plot sweep auto yes "$(cat "$tmp/sweep.extra")"
    render sweep "$W" "$H"
fi

# --- 5. shop --------------------------------------------------------------
select_rows "kind=shop" procs products ops_median ops_min ops_max |
    awk -F'\t' -v OFS='\t' '$1 + 0 > 0 && $2 + 0 > 0 { print $1, $2, "procs=" $1, $2, $3, $4, $5 }' |
    sort -t$'\t' -k1,1g -k2,2g | cut -f3- >"$tmp/shop.tsv"
if [ ! -s "$tmp/shop.tsv" ]; then
    skip shop kind=shop
else
    cat >"$tmp/shop.gp" <<'EOF'
set title "Original shop algorithm: throughput against catalogue size (kind=shop; median, bars min-max)"
set xlabel "products"
set ylabel "orders/s"
set format x "%g"
set format y "%.1s%c"
set offsets graph 0.03, graph 0.03, 0, 0
EOF
    lines_plot shop yes yes
    render shop "$W" "$H"
fi

if [ "$plotted" -eq 0 ]; then
    echo "plot: $csv has no rows of any plotted kind; nothing written" >&2
fi
