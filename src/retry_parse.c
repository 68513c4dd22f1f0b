/*
 * Parsers for server pushback: Retry-After (RFC 9110 section 10.2.3, with
 * the HTTP-date forms of section 5.6.7), grpc-retry-pushback-ms (gRFC A6)
 * and plain millisecond values (x-amz-retry-after).
 *
 * No locale, no strptime, no timegm: an HTTP-date is always GMT, and its
 * civil date is turned into days since 1970-01-01 with the days_from_civil
 * algorithm (Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms"),
 * exact for the proleptic Gregorian calendar.
 */
#include <string.h>

#include "internal/util.h"
#include "resil/retry.h"

static const char *const k_days[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const k_days_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                           "Friday", "Saturday", "Sunday"};
static const char *const k_months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The year of day @p z since 1970-01-01 (the inverse algorithm, year only). */
static int64_t year_from_days(int64_t z)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return (int64_t)yoe + era * 400 + (m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned k[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : k[m - 1];
}

typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

static int lit(cursor *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* Exactly @p n digits. */
static int digits(cursor *c, int n, unsigned *out)
{
    unsigned v = 0;
    if (c->end - c->p < n)
        return 0;
    for (int i = 0; i < n; i++) {
        char ch = c->p[i];
        if (ch < '0' || ch > '9')
            return 0;
        v = v * 10 + (unsigned)(ch - '0');
    }
    c->p += n;
    *out = v;
    return 1;
}

static int name(cursor *c, const char *const *names, int count, unsigned *out)
{
    for (int i = 0; i < count; i++)
        if (lit(c, names[i])) {
            *out = (unsigned)i;
            return 1;
        }
    return 0;
}

/* "HH:MM:SS" */
static int time_of_day(cursor *c, unsigned *h, unsigned *mi, unsigned *s)
{
    return digits(c, 2, h) && lit(c, ":") && digits(c, 2, mi) && lit(c, ":") && digits(c, 2, s);
}

static void trim(const char **s, size_t *len)
{
    const char *p = *s, *e = *s + *len;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *s = p;
    *len = (size_t)(e - p);
}

/* Parses an HTTP-date into seconds since the epoch. */
static resil_status http_date(const char *s, size_t len, int64_t now_unix_s, int64_t *out)
{
    cursor c = {s, s + len};
    unsigned wd, day = 0, mon = 0, y4 = 0, h = 0, mi = 0, sec = 0;
    int64_t year;

    if (name(&c, k_days_long, 7, &wd)) {
        /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
        unsigned yy;
        if (!(lit(&c, ", ") && digits(&c, 2, &day) && lit(&c, "-") &&
              name(&c, k_months, 12, &mon) && lit(&c, "-") && digits(&c, 2, &yy) && lit(&c, " ") &&
              time_of_day(&c, &h, &mi, &sec) && lit(&c, " GMT") && c.p == c.end))
            return resil__fail(RESIL_E_PARSE, "retry_after: malformed rfc850-date");
        int64_t now_year =
            year_from_days((now_unix_s >= 0 ? now_unix_s : now_unix_s - 86399) / 86400);
        int64_t century = now_year - ((now_year % 100) + 100) % 100;
        year = century + yy;
        if (year > now_year + 50)
            year -= 100; /* RFC 9110: more than 50 years ahead means the past century */
        else if (year + 100 <= now_year + 50)
            year += 100;
    } else if (name(&c, k_days, 7, &wd)) {
        if (lit(&c, ", ")) {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            if (!(digits(&c, 2, &day) && lit(&c, " ") && name(&c, k_months, 12, &mon) &&
                  lit(&c, " ") && digits(&c, 4, &y4) && lit(&c, " ") &&
                  time_of_day(&c, &h, &mi, &sec) && lit(&c, " GMT") && c.p == c.end))
                return resil__fail(RESIL_E_PARSE, "retry_after: malformed IMF-fixdate");
        } else {
            /* asctime-date: Sun Nov  6 08:49:37 1994 */
            if (!(lit(&c, " ") && name(&c, k_months, 12, &mon) && lit(&c, " ")))
                return resil__fail(RESIL_E_PARSE, "retry_after: malformed HTTP-date");
            if (!(lit(&c, " ") ? digits(&c, 1, &day) : digits(&c, 2, &day)) ||
                !(lit(&c, " ") && time_of_day(&c, &h, &mi, &sec) && lit(&c, " ") &&
                  digits(&c, 4, &y4) && c.p == c.end))
                return resil__fail(RESIL_E_PARSE, "retry_after: malformed asctime-date");
        }
        year = y4;
    } else {
        return resil__fail(RESIL_E_PARSE,
                           "retry_after: neither delta-seconds nor an HTTP-date (bad day name)");
    }
    mon += 1;
    if (day < 1 || day > days_in_month(year, mon))
        return resil__fail(RESIL_E_PARSE, "retry_after: day %u out of range for month %u", day,
                           mon);
    if (h > 23 || mi > 59 || sec > 60)
        return resil__fail(RESIL_E_PARSE, "retry_after: time %02u:%02u:%02u out of range", h, mi,
                           sec);
    *out = days_from_civil(year, mon, day) * 86400 + h * 3600 + mi * 60 + sec;
    return RESIL_OK;
}

/* Non-negative decimal integer with no sign; E_PARSE on overflow. */
static resil_status decimal(const char *s, size_t len, const char *what, uint64_t *out)
{
    if (len == 0)
        return resil__fail(RESIL_E_PARSE, "%s: empty value", what);
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch < '0' || ch > '9')
            return resil__fail(RESIL_E_PARSE, "%s: unexpected character 0x%02x at offset %zu", what,
                               (unsigned)(unsigned char)ch, i);
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(ch - '0'), &v))
            return resil__fail(RESIL_E_PARSE, "%s: number too large", what);
    }
    *out = v;
    return RESIL_OK;
}

resil_status resil_retry_after_parse(const char *s, size_t len, int64_t now_unix_s,
                                     resil_retry_hint_t *hint)
{
    if (s == NULL || hint == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_after_parse: %s is NULL",
                           s == NULL ? "input" : "hint");
    trim(&s, &len);
    if (len == 0)
        return resil__fail(RESIL_E_PARSE, "retry_after: empty value");
    uint64_t delay_ns;
    if (s[0] >= '0' && s[0] <= '9') {
        uint64_t secs = 0;
        resil_status st = decimal(s, len, "retry_after", &secs);
        if (st != RESIL_OK)
            return st;
        if (secs > UINT64_MAX / UINT64_C(1000000000))
            return resil__fail(RESIL_E_PARSE, "retry_after: %llu seconds do not fit in 64-bit ns",
                               (unsigned long long)secs);
        delay_ns = secs * UINT64_C(1000000000);
    } else {
        /* both within +-2^40 s: no overflow in the date arithmetic */
        if (now_unix_s < -(INT64_C(1) << 40) || now_unix_s > (INT64_C(1) << 40))
            return resil__fail(RESIL_E_INVALID_ARG,
                               "retry_after_parse: now_unix_s %lld out of "
                               "range",
                               (long long)now_unix_s);
        int64_t t = 0;
        resil_status st = http_date(s, len, now_unix_s, &t);
        if (st != RESIL_OK)
            return st;
        int64_t d = t - now_unix_s;
        delay_ns = d <= 0 ? 0 : resil__sat_mul((uint64_t)d, UINT64_C(1000000000));
    }
    hint->kind = RESIL_RETRY_HINT_AFTER;
    hint->delay_ns = delay_ns;
    return RESIL_OK;
}

resil_status resil_retry_grpc_pushback_parse(const char *s, size_t len, resil_retry_hint_t *hint)
{
    if (s == NULL || hint == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_grpc_pushback_parse: %s is NULL",
                           s == NULL ? "input" : "hint");
    trim(&s, &len);
    int neg = len > 0 && s[0] == '-';
    uint64_t v = 0;
    resil_status st = decimal(s + neg, len - (size_t)neg, "grpc-retry-pushback-ms", &v);
    if (st == RESIL_OK && v > (neg ? UINT64_C(2147483648) : UINT64_C(2147483647)))
        st = resil__fail(RESIL_E_PARSE, "grpc-retry-pushback-ms: %s%llu is outside int32",
                         neg ? "-" : "", (unsigned long long)v);
    if (st != RESIL_OK || (neg && v != 0)) {
        /* gRFC A6: negative or unparseable means "do not retry" ("-0" is 0) */
        hint->kind = RESIL_RETRY_HINT_DO_NOT_RETRY;
        hint->delay_ns = 0;
        return st;
    }
    hint->kind = RESIL_RETRY_HINT_AFTER;
    hint->delay_ns = v * UINT64_C(1000000);
    return RESIL_OK;
}

resil_status resil_retry_ms_parse(const char *s, size_t len, resil_retry_hint_t *hint)
{
    if (s == NULL || hint == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_ms_parse: %s is NULL",
                           s == NULL ? "input" : "hint");
    trim(&s, &len);
    uint64_t v = 0;
    resil_status st = decimal(s, len, "retry_ms", &v);
    if (st != RESIL_OK)
        return st;
    if (v > UINT64_MAX / UINT64_C(1000000))
        return resil__fail(RESIL_E_PARSE, "retry_ms: %llu ms do not fit in 64-bit ns",
                           (unsigned long long)v);
    hint->kind = RESIL_RETRY_HINT_AFTER;
    hint->delay_ns = v * UINT64_C(1000000);
    return RESIL_OK;
}
