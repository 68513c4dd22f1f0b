/*
 * Fuzz target: the server-pushback parsers, which read bytes a remote
 * server chose. Every input must get a status, never a crash or a read past
 * its end (the replay driver and libFuzzer pass exact-size buffers; ASan
 * sees overreads). Where the answer is easy to compute independently, it is
 * checked:
 *   mode 0  Retry-After, raw bytes: all-digit values must give exactly
 *           value * 1e9 ns, or RESIL_E_PARSE when that does not fit;
 *   mode 1  grpc-retry-pushback-ms, raw bytes: -?digits within int32 give
 *           "after value ms" or "do not retry"; anything else RESIL_E_PARSE
 *           with a do-not-retry hint (gRFC A6);
 *   mode 2  x-amz-retry-after (ms), raw bytes: digits give value * 1e6 ns;
 *   mode 3  an IMF-fixdate built from the input, checked against a date
 *           computed by counting days year by year (not the library's
 *           days-from-civil formula).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/retry.h"

#define MUST(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_retry_parse: " __VA_ARGS__);                                     \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

__extension__ typedef unsigned __int128 u128;

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* Parses [-]digits; @return 1 and the value (saturated far beyond any
 * bound we test) if the whole span is that shape. */
static int decimal(const char *s, size_t n, int allow_minus, int *neg, u128 *v)
{
    *neg = 0;
    *v = 0;
    if (allow_minus && n > 0 && s[0] == '-')
        *neg = 1, s++, n--;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (*v < ((u128)1 << 100))
            *v = *v * 10 + (u128)(s[i] - '0');
    }
    return 1;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d[m - 1] + (m == 2 && leap(y));
}

/* Seconds since 1970 by counting, for years >= 1970. */
static int64_t seconds_since_epoch(int y, int mo, int d, int h, int mi, int s)
{
    int64_t days = 0;
    for (int yy = 1970; yy < y; yy++)
        days += leap(yy) ? 366 : 365;
    for (int mm = 1; mm < mo; mm++)
        days += month_days(y, mm);
    days += d - 1;
    return days * 86400 + h * 3600 + mi * 60 + s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 4;
    const char *raw = (const char *)data + 1;
    size_t len = size - 1;
    resil_retry_hint_t hint = {RESIL_RETRY_HINT_NONE, 12345};
    const char *s = raw;
    size_t n = len;
    trim(&s, &n);
    int neg;
    u128 v;

    if (mode == 0) {
        resil_status st = resil_retry_after_parse(raw, len, 1700000000, &hint);
        MUST(st == RESIL_OK || st == RESIL_E_PARSE, "retry-after: status %s",
             resil_status_name(st));
        if (st == RESIL_OK)
            MUST(hint.kind == RESIL_RETRY_HINT_AFTER, "retry-after: kind %d", (int)hint.kind);
        if (decimal(s, n, 0, &neg, &v)) {
            u128 ns = v * 1000000000u;
            if (ns <= UINT64_MAX && v < ((u128)1 << 100))
                MUST(st == RESIL_OK && hint.delay_ns == (uint64_t)ns,
                     "retry-after: digits gave %s, delay %llu", resil_status_name(st),
                     (unsigned long long)hint.delay_ns);
            else
                MUST(st == RESIL_E_PARSE, "retry-after: too large accepted");
        }
    } else if (mode == 1) {
        resil_status st = resil_retry_grpc_pushback_parse(raw, len, &hint);
        if (decimal(s, n, 1, &neg, &v) && v <= (neg ? (u128)1 << 31 : ((u128)1 << 31) - 1)) {
            MUST(st == RESIL_OK, "pushback: int32 refused (%s)", resil_status_name(st));
            if (neg && v != 0)
                MUST(hint.kind == RESIL_RETRY_HINT_DO_NOT_RETRY, "pushback: negative retried");
            else
                MUST(hint.kind == RESIL_RETRY_HINT_AFTER && hint.delay_ns == (uint64_t)v * 1000000u,
                     "pushback: %llu ms gave kind %d delay %llu", (unsigned long long)v,
                     (int)hint.kind, (unsigned long long)hint.delay_ns);
        } else {
            MUST(st == RESIL_E_PARSE && hint.kind == RESIL_RETRY_HINT_DO_NOT_RETRY,
                 "pushback: malformed gave %s kind %d", resil_status_name(st), (int)hint.kind);
        }
    } else if (mode == 2) {
        resil_status st = resil_retry_ms_parse(raw, len, &hint);
        if (decimal(s, n, 0, &neg, &v) && v * 1000000u <= UINT64_MAX && v < ((u128)1 << 100))
            MUST(st == RESIL_OK && hint.kind == RESIL_RETRY_HINT_AFTER &&
                     hint.delay_ns == (uint64_t)(v * 1000000u),
                 "ms: digits gave %s", resil_status_name(st));
        else
            MUST(st == RESIL_E_PARSE, "ms: malformed gave %s", resil_status_name(st));
    } else {
        if (size < 12)
            return 0;
        static const char *const wd[7] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
        static const char *const mn[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        int y = 1970 + (data[1] | data[2] << 8) % 400, mo = 1 + data[3] % 12;
        int d = 1 + data[4] % month_days(y, mo), h = data[5] % 24, mi = data[6] % 60,
            sec = data[7] % 60;
        int64_t t = seconds_since_epoch(y, mo, d, h, mi, sec);
        int64_t now = (int64_t)((uint64_t)(data[8] | data[9] << 8 | (uint32_t)data[10] << 16 |
                                           (uint32_t)data[11] << 24) *
                                4);
        char buf[64];
        int k = snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                         wd[(t / 86400) % 7], d, mn[mo - 1], y, h, mi, sec);
        resil_status st = resil_retry_after_parse(buf, (size_t)k, now, &hint);
        uint64_t want = t <= now ? 0 : (uint64_t)(t - now) * UINT64_C(1000000000);
        MUST(st == RESIL_OK && hint.delay_ns == want,
             "date '%s' at now %lld: %s, delay %llu, want %llu", buf, (long long)now,
             resil_status_name(st), (unsigned long long)hint.delay_ns, (unsigned long long)want);
    }
    return 0;
}
