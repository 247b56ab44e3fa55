#!/usr/bin/env bash
#
# gen-catalogue.sh — writes a synthetic, valid stockpipe catalogue to stdout.
#
#   data/gen-catalogue.sh N [STOCK] [SEED] > catalogue.csv
#
# N products with ids 1..N in order, in the exact format sp_catalogue reads
# (header SP_CSV_HEADER, LF line ends).  Names mix a product and a variant,
# some with UTF-8 letters and about one in eight with a comma, so the file
# also exercises quoted cells.  Weights, prices and expiry dates vary with
# SEED; stock is STOCK for every product when given, otherwise 0..100.
#
# The numbers come from a Park-Miller generator written out in awk rather
# than awk's rand(), because mawk and gawk seed rand() differently and the
# same SEED must give the same file everywhere.  Every product of the
# generator stays below 2^53, so plain awk (double) arithmetic is exact.
# One awk process writes everything: a million lines take a second or two.

set -euo pipefail

readonly ID_MAX=16777216        # SP_PRODUCT_ID_MAX
readonly STOCK_MAX=1000000000   # SP_STOCK_MAX
readonly SEED_DEFAULT=1
readonly MAX_DIGITS=10          # longest number we accept; fits bash arithmetic

usage() {
    cat >&2 <<EOF
usage: ${0##*/} N [STOCK] [SEED] > catalogue.csv
  N      number of products, 1 to ${ID_MAX} (ids 1..N)
  STOCK  stock of every product, 0 to ${STOCK_MAX} (default: varied 0..100)
  SEED   non-negative whole number that picks the variation (default: ${SEED_DEFAULT})
EOF
    exit 2
}

# True when $1 is a whole number no longer than MAX_DIGITS digits, within $2..$3.
in_range() {
    [[ $1 =~ ^[0-9]{1,${MAX_DIGITS}}$ ]] && (( 10#$1 >= $2 && 10#$1 <= $3 ))
}

(( $# >= 1 && $# <= 3 )) || usage
in_range "$1" 1 "$ID_MAX" || usage
count=$((10#$1))
stock=-1
if (( $# >= 2 )); then
    in_range "$2" 0 "$STOCK_MAX" || usage
    stock=$((10#$2))
fi
seed=$SEED_DEFAULT
if (( $# >= 3 )); then
    [[ $3 =~ ^[0-9]{1,${MAX_DIGITS}}$ ]] || usage
    seed=$((10#$3))
fi

LC_ALL=C exec awk -v count="$count" -v stock="$stock" -v seed="$seed" '
# Park-Miller "minimal standard" generator: state in 1 .. MODULUS - 1.
function next_random() {
    state = (state * MULTIPLIER) % MODULUS
    return state
}

# A whole number in 0 .. k - 1.
function pick(k) {
    return next_random() % k
}

# g grams as kilograms with the fewest decimals that keep it exact.
function kilograms(g,    frac) {
    if (g % GRAMS_PER_KG == 0) {
        return sprintf("%d", g / GRAMS_PER_KG)
    }
    frac = sprintf("%03d", g % GRAMS_PER_KG)
    sub(/0+$/, "", frac)
    return sprintf("%d.%s", int(g / GRAMS_PER_KG), frac)
}

# c cents as money: no decimals when whole, otherwise exactly two.
function money(c) {
    if (c % CENTS_PER_UNIT == 0) {
        return sprintf("%d", c / CENTS_PER_UNIT)
    }
    return sprintf("%d.%02d", int(c / CENTS_PER_UNIT), c % CENTS_PER_UNIT)
}

function days_in_month(y, m) {
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29
    }
    return month_days[m]
}

BEGIN {
    MODULUS = 2147483647
    MULTIPLIER = 16807
    GRAMS_PER_KG = 1000
    CENTS_PER_UNIT = 100
    WEIGHT_MIN_G = 50
    WEIGHT_SPAN_G = 24951       # weights 0.05 .. 25 kg
    PRICE_MIN_CENTS = 50
    PRICE_SPAN_CENTS = 49951    # prices 0.50 .. 500
    YEAR_FIRST = 2024
    YEARS = 4
    MONTHS = 12
    STOCK_SPAN = 101            # 0 .. 100 when STOCK is not given
    COMMA_ONE_IN = 8            # about one name in eight holds a comma
    PACK_SIZES = 12

    state = seed % (MODULUS - 1) + 1

    bases = split("Nuggets de pollo|Pan de ajo|Yogurt natural|Filete de res|" \
                  "Helado de vainilla|Bolsa de vegetales|Galletas de nuez|Camarones jumbo|" \
                  "Salsa de tomate|Queso manchego|Piña colada|Crème brûlée|Café molido|" \
                  "Jamón serrano|Aceite de oliva|Arroz integral|Leche entera|Jugo de naranja",
                  base, "|")
    variants = split("grande|chico|familiar|light|orgánico|premium|clásico|extra", variant, "|")
    categories = split("Aves|Panaderia|Lacteos|Carne|Helados|Vegetales|Galletas|Mariscos|" \
                       "Salsas|Bebidas|Despensa|Postres", category, "|")
    split("31 28 31 30 31 30 31 31 30 31 30 31", month_days, " ")

    print "id_reg,name,category,weight,price,expiry,stock"
    for (id = 1; id <= count; id++) {
        name = base[1 + pick(bases)] " " variant[1 + pick(variants)]
        if (pick(COMMA_ONE_IN) == 0) {
            name = "\"" name ", pack de " (2 + pick(PACK_SIZES)) "\""
        }
        year = YEAR_FIRST + pick(YEARS)
        month = 1 + pick(MONTHS)
        day = 1 + pick(days_in_month(year, month))
        units = stock >= 0 ? stock : pick(STOCK_SPAN)
        printf "%d,%s,%s,%s,%s,%04d-%02d-%02d,%d\n", id, name, category[1 + pick(categories)],
               kilograms(WEIGHT_MIN_G + pick(WEIGHT_SPAN_G)),
               money(PRICE_MIN_CENTS + pick(PRICE_SPAN_CENTS)), year, month, day, units
    }
}'
