/**
 * @file resil/retry.h
 * @brief Retries done safely: jittered capped backoff, deadlines, server
 * pushback and retry budgets.
 *
 * Retries save requests that failed for a passing reason and, done badly,
 * take a whole fleet down: every client retrying in lockstep (no jitter) or
 * without a budget multiplies the load on a dependency exactly when it is
 * weakest (a retry storm). This component gives the safe version by default:
 * exponential backoff with full jitter, a cap, an attempt limit, and an
 * optional retry budget shared by every call to one dependency.
 *
 * Pieces, in the order a user meets them:
 *
 * - resil_retry_policy_t: backoff kind (constant, linear, exponential),
 *   jitter kind (none, full, equal, decorrelated, proportional), limits
 *   (attempts, total time, per-attempt timeout suggestion), the clock, an
 *   optional budget and an optional callback before each retry. Process
 *   local: it may hold pointers.
 * - resil_retry_state_t: the per-operation state, a plain value on the
 *   caller's stack (no allocation): attempt count, current backoff, previous
 *   delay (decorrelated jitter), deadline and its own small random state.
 * - resil_retry_next_delay(): the step for event loops. After each attempt,
 *   tell it the outcome (success, retryable failure, timeout, final failure)
 *   and any server hint; it answers "retry after D ns" or "stop" with a
 *   reason.
 * - resil_retry_execute(): the one-call executor. Runs a callback, sleeps
 *   between attempts on the policy's clock (a manual clock makes tests
 *   instant and exact) and returns the last outcome and the attempt count.
 * - Parsers for server pushback: Retry-After (delta-seconds and HTTP-date),
 *   grpc-retry-pushback-ms and millisecond headers such as x-amz-retry-after.
 * - resil_retry_budget_t: a lock-free retry budget, one pointer-free state
 *   block that may live in MAP_SHARED memory used by several processes, with
 *   three semantics: gRPC retry throttling (token bucket), Envoy/Finagle
 *   ratio budget (retries <= p % of recent requests plus a floor) and the AWS
 *   SDK retry quota.
 *
 * Randomness: each state draws from its own splitmix64 generator seeded from
 * the policy's seed (the same seed gives the same delays) or, with seed 0,
 * from resil_random_u64() when the state is initialized (so a copy of a
 * state draws the same delays as the original, whenever it is made).
 *
 * Thread safety: a policy may be shared by any number of threads once set up
 * (it is only read); a resil_retry_state_t belongs to one operation and must
 * not be used by two threads at once; every budget function is thread-safe
 * and may be called from any process attached to the budget.
 * Progress: resil_retry_next_delay() and every budget function are
 * lock-free (budgets: a decision is one CAS loop on one word, the caller's
 * stripe of the budget or its shared level, plus rarely a lease transfer
 * that any caller can complete; no lock, no allocation, no system call
 * other than reading the clock).
 * resil_retry_execute() blocks while it sleeps between attempts.
 */
#ifndef RESIL_RETRY_H
#define RESIL_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "resil/base.h"
#include "resil/clock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/** @name Kinds and reasons
 * @{ */

/** How the un-jittered delay grows with the retry number n (1 for the first
 * retry). Every value is capped at max_delay_ns with saturating arithmetic.
 * Exponential delays are the exact product rounded down to within 1 ns,
 * however small initial_delay_ns * (multiplier - 1) is and whatever n. */
typedef enum resil_backoff_kind {
    RESIL_BACKOFF_CONSTANT = 0,   /**< d(n) = initial_delay_ns */
    RESIL_BACKOFF_LINEAR = 1,     /**< d(n) = initial_delay_ns + (n - 1) * increment_ns */
    RESIL_BACKOFF_EXPONENTIAL = 2 /**< d(n) = initial_delay_ns * multiplier^(n - 1) */
} resil_backoff_kind;

/**
 * How the delay actually slept is drawn around d = min(cap, d(n)). The
 * formulas are those of the AWS Architecture Blog article "Exponential
 * Backoff And Jitter" (Brooker, 2015) and of gRPC (gRFC A6). Every kind
 * keeps the delay within [0, max_delay_ns], and none piles delays onto
 * exactly the cap (see docs/retry.md for which to choose).
 */
typedef enum resil_jitter_kind {
    RESIL_JITTER_NONE = 0,         /**< delay = d (synchronized clients: avoid in fleets) */
    RESIL_JITTER_FULL = 1,         /**< delay uniform in [0, d); the default */
    RESIL_JITTER_EQUAL = 2,        /**< delay = d/2 + uniform in [0, d/2) */
    RESIL_JITTER_DECORRELATED = 3, /**< delay uniform in [base, min(cap, 3 * previous)),
                                        previous starting at base = initial_delay_ns; the
                                        backoff kind is not used. AWS writes min(cap,
                                        U(base, 3 * prev)), which sends 2/3 of the draws to
                                        exactly the cap once prev reaches it; drawing below
                                        the capped bound keeps them spread. */
    RESIL_JITTER_PROPORTIONAL = 4  /**< delay uniform in [d - p% d, min(cap, d + p% d))
                                        with p = jitter_percent (gRPC: 20) */
} resil_jitter_kind;

/** What the caller says about the attempt that just ended. */
typedef enum resil_retry_outcome {
    RESIL_RETRY_SUCCESS = 0, /**< done: no retry */
    RESIL_RETRY_FAILURE = 1, /**< failed for a reason a retry may cure */
    RESIL_RETRY_TIMEOUT = 2, /**< timed out: retryable, costs more in an AWS quota budget */
    RESIL_RETRY_FINAL = 3    /**< failed for good (e.g. bad request): no retry */
} resil_retry_outcome;

/**
 * The answer of resil_retry_next_delay(): RESIL_RETRY_GO (0) means "retry
 * after the delay"; every other value is why the operation stops.
 */
typedef enum resil_retry_reason {
    RESIL_RETRY_GO = 0,                /**< retry after the delay given */
    RESIL_RETRY_STOP_SUCCEEDED = 1,    /**< the attempt succeeded */
    RESIL_RETRY_STOP_FINAL = 2,        /**< the attempt failed with a final failure */
    RESIL_RETRY_STOP_ATTEMPTS = 3,     /**< max_attempts attempts were made */
    RESIL_RETRY_STOP_DEADLINE = 4,     /**< the next attempt would start at or past the deadline */
    RESIL_RETRY_STOP_DO_NOT_RETRY = 5, /**< the server said not to retry */
    RESIL_RETRY_STOP_BUDGET = 6,       /**< the retry budget refused the retry */
    RESIL_RETRY_STOP_INVALID_ARG = 7   /**< NULL or uninitialized state, or unknown outcome */
} resil_retry_reason;

/**
 * The name of @p r, e.g. "deadline".
 * @return a static string; "unknown" for a value not in the enum.
 */
RESIL_API const char *resil_retry_reason_name(resil_retry_reason r);

/**
 * The status that best reports a stop: RESIL_OK for SUCCEEDED and GO,
 * RESIL_E_DEADLINE_EXCEEDED for DEADLINE, RESIL_E_BUDGET_EXHAUSTED for
 * BUDGET, RESIL_E_INVALID_ARG for INVALID_ARG, RESIL_E_CALL_FAILED for the
 * other stops (the last attempt failed).
 * @return the status; RESIL_E_INVALID_ARG for a value not in the enum.
 */
RESIL_API resil_status resil_retry_reason_status(resil_retry_reason r);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Server hints
 * @{ */

/** Kinds of server hint. */
typedef enum resil_retry_hint_kind {
    RESIL_RETRY_HINT_NONE = 0,        /**< no hint: use the backoff */
    RESIL_RETRY_HINT_AFTER = 1,       /**< retry after exactly delay_ns (capped) */
    RESIL_RETRY_HINT_DO_NOT_RETRY = 2 /**< do not retry this operation */
} resil_retry_hint_kind;

/**
 * What the failed attempt's response said about retrying (Retry-After,
 * grpc-retry-pushback-ms, x-amz-retry-after). All-zero is "no hint".
 * A RESIL_RETRY_HINT_AFTER delay is used instead of the backoff (gRPC
 * semantics), clamped to the policy's max_pushback_ns, and resets the
 * backoff to its initial value for later retries; the deadline still holds.
 */
typedef struct resil_retry_hint {
    resil_retry_hint_kind kind;
    uint64_t delay_ns; /**< for RESIL_RETRY_HINT_AFTER */
} resil_retry_hint_t;

/**
 * Parses an HTTP Retry-After field value (RFC 9110 section 10.2.3): either
 * delta-seconds ("120") or an HTTP-date in IMF-fixdate form ("Sun, 06 Nov
 * 1994 08:49:37 GMT") or one of the two obsolete forms recipients must
 * accept (RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6
 * 08:49:37 1994"). Surrounding spaces and tabs are ignored. A date is turned
 * into a delay relative to @p now_unix_s (seconds since 1970-01-01 UTC, the
 * caller's wall clock); a date in the past gives a delay of 0. No locale,
 * time zone or libc date function is involved. The weekday name must be a
 * valid one but is not checked against the date. A two-digit RFC 850 year
 * more than 50 years in the future is taken as the most recent past year
 * with those digits, as RFC 9110 requires.
 * @param s the field value, need not be NUL-terminated; @p len its length.
 * A date so far ahead that the delay overflows 64-bit ns gives UINT64_MAX.
 * @return RESIL_OK and `*hint` = {RESIL_RETRY_HINT_AFTER, delay};
 *         RESIL_E_INVALID_ARG if @p s or @p hint is NULL, or if the value is
 *         a date and |@p now_unix_s| > 2^40;
 *         RESIL_E_PARSE (detail says why: empty, bad character, number too
 *         large, bad date field) for anything else, `*hint` untouched.
 */
RESIL_API resil_status resil_retry_after_parse(const char *s, size_t len, int64_t now_unix_s,
                                               resil_retry_hint_t *hint);

/**
 * Parses a grpc-retry-pushback-ms value (gRFC A6): a decimal int32 of
 * milliseconds. A non-negative value means "retry after exactly that long";
 * a negative one means "do not retry". Per gRFC A6 an unparseable value also
 * means "do not retry", so on RESIL_E_PARSE `*hint` is set to
 * RESIL_RETRY_HINT_DO_NOT_RETRY as well: a caller that ignores the status
 * still follows the protocol. Surrounding spaces and tabs are ignored; a
 * '+' sign is malformed.
 * @return RESIL_OK and `*hint`; RESIL_E_INVALID_ARG if @p s or @p hint is
 *         NULL; RESIL_E_PARSE (empty, non-digit, outside int32) with
 *         `*hint` = do-not-retry.
 */
RESIL_API resil_status resil_retry_grpc_pushback_parse(const char *s, size_t len,
                                                       resil_retry_hint_t *hint);

/**
 * Parses a non-negative decimal count of milliseconds, such as the AWS
 * x-amz-retry-after header, into a RESIL_RETRY_HINT_AFTER hint. Surrounding
 * spaces and tabs are ignored.
 * @return RESIL_OK and `*hint`; RESIL_E_INVALID_ARG if @p s or @p hint is
 *         NULL; RESIL_E_PARSE (empty, sign, non-digit, larger than
 *         UINT64_MAX ns) with `*hint` untouched.
 */
RESIL_API resil_status resil_retry_ms_parse(const char *s, size_t len, resil_retry_hint_t *hint);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Retry budgets
 *
 * A retry budget is shared by every call to one dependency and caps how
 * much retrying all of them together may add to its load. Without one, a
 * dependency that fails every call receives max_attempts times its normal
 * load from every client at once; with one, a few percent more.
 *
 * Memory: the budget is one pointer-free state block (kind RETRY_BUDGET).
 * resil_retry_budget_init() writes it into caller memory: aligned to
 * RESIL_BLOCK_ALIGN (64) bytes, at least resil_retry_budget_size() bytes,
 * alive while anyone uses it; the library never allocates inside it and
 * keeps no pointer to it. resil_retry_budget_attach() validates a block
 * another process (or this one) initialized, including in MAP_SHARED
 * memory, and needs no allocation: the returned pointer is @p mem itself.
 * resil_retry_budget_new() allocates one for a single process. All
 * processes using one ratio budget must read time from the same clock domain
 * (CLOCK_MONOTONIC is system-wide).
 *
 * Every decision keeps its semantics exactly, whatever the interleaving of
 * threads and processes. Token buckets and quotas lend part of their tokens
 * to 4 per-thread stripes when threads contend, so that contending threads
 * decide on their own cache line; a decision the lent part cannot prove
 * (near half, near empty, near full) takes the loans back first. Ratio
 * budgets count requests per stripe in a ring of time buckets and charge
 * retries to the current bucket, a lease of up to 256 at a time while the
 * window has room to spare; a decision that finds no room takes the leases
 * back first. Each thread sums the buckets older than the previous slot
 * once per slot.
 * @{ */

/** Budget semantics. */
typedef enum resil_retry_budget_kind {
    /** gRPC retry throttling (gRFC A6): tokens start at max_tokens; every
     * failure takes 1, every success gives token_ratio back (never above
     * max); a retry is allowed only while tokens > max_tokens / 2. */
    RESIL_RETRY_BUDGET_TOKEN_BUCKET = 0,
    /** Envoy / Finagle retry budget: retries in the last ttl_ns may not
     * exceed retry_percent % of the requests (first attempts) in the same
     * window plus min_retries_per_sec * ttl seconds, checked when each retry
     * is granted (as old requests leave the sliding window, retries granted
     * earlier may exceed the shrunken allowance until they leave too). The
     * window is ttl_ns cut into `buckets` slots. Exact with any number of
     * threads for calls stamped in the current slot; a call stamped in an
     * older slot may exceed the bound by its one retry. */
    RESIL_RETRY_BUDGET_RATIO = 1,
    /** AWS SDK retry quota (standard mode): quota starts at quota_capacity;
     * a retry takes retry_cost (timeout_cost after a timeout) and is refused
     * when the quota is short; a success refunds what its retry took, or
     * no_retry_increment if it was a first attempt; never above capacity. */
    RESIL_RETRY_BUDGET_QUOTA = 2
} resil_retry_budget_kind;

/** Most time buckets of a ratio budget. */
#define RESIL_RETRY_BUDGET_MAX_BUCKETS 64

/**
 * Budget configuration, stored inside the block. Fields of kinds other than
 * the selected one are ignored (but must be in range). Out-of-range values
 * are rejected with RESIL_E_INVALID_CONFIG naming the field.
 */
typedef struct resil_retry_budget_config {
    resil_retry_budget_kind kind; /**< default RESIL_RETRY_BUDGET_TOKEN_BUCKET */
    /* token bucket */
    uint32_t max_tokens;        /**< 1..1000 (gRPC's range); default 10 */
    uint32_t token_ratio_milli; /**< tokens a success gives back, in thousandths:
                                     1..1000000; default 100 (0.1) */
    /* ratio */
    uint32_t retry_percent;       /**< 0..1000 percent of requests; default 20 */
    uint32_t min_retries_per_sec; /**< floor, 0..1000000; default 10 */
    uint64_t ttl_ns;              /**< window, 1 ms..1 hour; default 10 s */
    uint32_t buckets;             /**< window slots, 1..64; default 10 */
    /* quota */
    uint32_t quota_capacity;     /**< 1..1000000; default 500 */
    uint32_t retry_cost;         /**< 1..capacity; default 5 */
    uint32_t timeout_cost;       /**< 1..capacity; default 10 */
    uint32_t no_retry_increment; /**< 0..capacity; default 1 */
} resil_retry_budget_config_t;

/** @return a gRPC-style token bucket with max_tokens 10, ratio 0.1, and the
 * documented defaults of the other kinds. Never fails. */
RESIL_API resil_retry_budget_config_t resil_retry_budget_config_default(void);

/**
 * Validates @p cfg.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p cfg is NULL;
 *         RESIL_E_INVALID_CONFIG with a detail naming the field.
 */
RESIL_API resil_status resil_retry_budget_config_check(const resil_retry_budget_config_t *cfg);

/**
 * Bytes a budget with @p cfg needs (a multiple of 64).
 * @return the size; 0 if @p cfg is NULL or invalid.
 */
RESIL_API size_t resil_retry_budget_size(const resil_retry_budget_config_t *cfg);

/** Compile-time upper bound of resil_retry_budget_size() for a budget with
 * @p buckets buckets (pass 1 for the token-bucket and quota kinds). */
#define RESIL_RETRY_BUDGET_SIZE(buckets) ((size_t)(448 + 320 * (((size_t)(buckets) + 7) / 8)))

/** A retry budget: the state block itself. Opaque. */
typedef struct resil_retry_budget resil_retry_budget_t;

/**
 * Writes a fresh budget (full tokens, full quota, empty window) into @p mem.
 * @return RESIL_OK and `*out` (= @p mem; @p out may be NULL);
 *         RESIL_E_INVALID_ARG if @p mem is NULL, misaligned or shorter than
 *         resil_retry_budget_size(); RESIL_E_INVALID_CONFIG. On error the
 *         memory is untouched.
 */
RESIL_API resil_status resil_retry_budget_init(void *mem, size_t len,
                                               const resil_retry_budget_config_t *cfg,
                                               resil_retry_budget_t **out);

/**
 * Validates a budget someone initialized in @p mem (magic, kind, layout
 * version, size, configuration checksum, and that the counters are within
 * their bounds). Allocates nothing.
 * @return RESIL_OK and `*out` = @p mem; RESIL_E_INVALID_ARG (NULL,
 *         misaligned, too short); RESIL_E_NOT_INITIALIZED; RESIL_E_CORRUPT;
 *         RESIL_E_WRONG_KIND; RESIL_E_VERSION. On error `*out` is NULL.
 */
RESIL_API resil_status resil_retry_budget_attach(void *mem, size_t len, resil_retry_budget_t **out);

/**
 * Allocates and initializes a budget for this process.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG if @p cfg or @p out is
 *         NULL; RESIL_E_INVALID_CONFIG; RESIL_E_NO_MEMORY. On error `*out`
 *         is NULL.
 */
RESIL_API resil_status resil_retry_budget_new(const resil_retry_budget_config_t *cfg,
                                              resil_retry_budget_t **out);

/** Frees a budget made by resil_retry_budget_new(). Accepts NULL; does
 * nothing to a budget in caller memory (init/attach), which stays the
 * caller's. */
RESIL_API void resil_retry_budget_free(resil_retry_budget_t *b);

/**
 * Records that a new operation (first attempt) starts. Only the ratio kind
 * counts it (it is what retries are a percentage of); the others do nothing.
 * resil_retry_state_init() calls it for a policy with a budget.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p b is NULL.
 */
RESIL_API resil_status resil_retry_budget_on_request(resil_retry_budget_t *b, uint64_t now_ns);

/**
 * Records a failed attempt (@p timeout: it timed out) and, if @p want_retry,
 * asks for a retry, in one atomic step. Token bucket: takes a token and
 * allows the retry if more than max_tokens / 2 remain. Ratio: allows and
 * counts the retry if the window has room. Quota: takes the retry's cost if
 * the quota has it (`*cost_out` tells how much, for the refund on success).
 * A refusal is counted in the stats.
 * @return RESIL_OK (retry allowed, or failure recorded when !want_retry);
 *         RESIL_E_BUDGET_EXHAUSTED (retry refused); RESIL_E_INVALID_ARG if
 *         @p b is NULL. @p cost_out may be NULL; it gets 0 unless a quota
 *         was taken.
 */
RESIL_API resil_status resil_retry_budget_on_failure(resil_retry_budget_t *b, uint64_t now_ns,
                                                     int timeout, int want_retry,
                                                     uint32_t *cost_out);

/**
 * Records a success. Token bucket: gives token_ratio back. Quota: refunds
 * @p cost (what the retry that succeeded took; 0 for a first attempt, which
 * gives no_retry_increment). Ratio: nothing.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p b is NULL.
 */
RESIL_API resil_status resil_retry_budget_on_success(resil_retry_budget_t *b, uint64_t now_ns,
                                                     uint32_t cost);

/**
 * Whether a retry would be allowed now, without recording anything (a
 * token bucket that would still be above half after the failure's token;
 * a ratio window with room; a quota holding a retry's cost).
 * @return 1 if allowed, 0 if not or if @p b is NULL.
 */
RESIL_API int resil_retry_budget_can_retry(const resil_retry_budget_t *b, uint64_t now_ns);

/** A snapshot of a budget. */
typedef struct resil_retry_budget_stats {
    resil_retry_budget_kind kind;
    uint64_t level_milli;     /**< tokens (bucket) or quota left, in thousandths */
    uint64_t max_milli;       /**< max_tokens or quota_capacity, in thousandths */
    uint64_t window_requests; /**< ratio: first attempts in the window */
    uint64_t window_retries;  /**< ratio: retries in the window */
    uint64_t granted;         /**< retries allowed since init */
    uint64_t refused;         /**< retries refused since init */
} resil_retry_budget_stats_t;

/**
 * Reads a snapshot (each field atomically, not all together).
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p b or @p out is NULL.
 */
RESIL_API resil_status resil_retry_budget_stats(const resil_retry_budget_t *b, uint64_t now_ns,
                                                resil_retry_budget_stats_t *out);

/**
 * Checks the invariants of a budget (a pure read, callable from any process,
 * also after a crash): header valid, level within [0, max]; token bucket and
 * quota: the tokens lent to stripes add up to what the level counts as lent
 * (a transfer left half done by a crash included), and a bucket never lends
 * what would leave its level at half or below; ratio: no lending words set.
 * Sums are compared on a snapshot no transfer crossed (each word alone
 * otherwise).
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p b is NULL; RESIL_E_CORRUPT
 *         (detail says which invariant) or the attach statuses.
 */
RESIL_API resil_status resil_retry_budget_check(const resil_retry_budget_t *b);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Policy
 * @{ */

/** What the callback before each retry is told. */
typedef struct resil_retry_event {
    uint32_t attempt;            /**< number of the attempt about to be made (2 = first retry) */
    uint64_t delay_ns;           /**< the delay before it */
    resil_retry_outcome outcome; /**< why: FAILURE or TIMEOUT of the previous attempt */
    int pushback;                /**< 1 if the delay came from a server hint */
} resil_retry_event_t;

/** Called before each retry is scheduled, in the calling thread. It must not
 * use the state it is told about. */
typedef void (*resil_retry_listener_fn)(void *user, const resil_retry_event_t *event);

/** Largest max_attempts. */
#define RESIL_RETRY_MAX_ATTEMPTS 100000u

/**
 * A retry policy. Process local (not a state block): it may point to a
 * clock, a budget and a listener, which must outlive every state using the
 * policy. Get one from resil_retry_policy_default() and change what you
 * need; resil_retry_policy_check() says what is wrong with one, naming the
 * field; nothing is silently clamped.
 */
typedef struct resil_retry_policy {
    resil_backoff_kind backoff;   /**< default RESIL_BACKOFF_EXPONENTIAL */
    resil_jitter_kind jitter;     /**< default RESIL_JITTER_FULL */
    uint64_t initial_delay_ns;    /**< d(1), and the base of decorrelated jitter; default 100 ms;
                                       any value (0 gives no delay) */
    uint64_t increment_ns;        /**< linear step; default 100 ms; any value */
    double multiplier;            /**< exponential factor: finite, 0 < m <= 1e6; default 2.0 */
    uint64_t max_delay_ns;        /**< cap on every backoff delay: >= initial_delay_ns; default
                                       10 s */
    uint32_t jitter_percent;      /**< proportional jitter: 0..100; default 20 */
    uint32_t max_attempts;        /**< attempts including the first: 1..RESIL_RETRY_MAX_ATTEMPTS
                                       (1 = never retry); default 3 */
    uint64_t max_total_ns;        /**< deadline across attempts, from resil_retry_state_init();
                                       0 = none (default). No retry starts at or past it. */
    uint64_t attempt_timeout_ns;  /**< per-attempt timeout suggestion (resil_retry_attempt_timeout);
                                       0 = none (default) */
    uint64_t max_pushback_ns;     /**< longest server hint honoured: longer ones are clamped to it;
                                       0 = no clamp (default; the deadline still holds) */
    uint64_t seed;                /**< jitter seed; 0 (default) = a random one per state */
    resil_clock_t clock;          /**< all-zero (default): CLOCK_MONOTONIC */
    resil_retry_budget_t *budget; /**< shared budget; NULL (default) = none */
    resil_retry_listener_fn on_retry; /**< called before each retry; NULL (default) = none */
    void *on_retry_user;              /**< passed to on_retry */
} resil_retry_policy_t;

/** @return the default policy (exponential 100 ms x2 capped at 10 s, full
 * jitter, 3 attempts, no deadline, monotonic clock). Never fails. */
RESIL_API resil_retry_policy_t resil_retry_policy_default(void);

/**
 * Validates @p p.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p p is NULL;
 *         RESIL_E_INVALID_CONFIG with a detail naming the field, e.g.
 *         "retry.max_attempts: must be in 1..100000, got 0".
 */
RESIL_API resil_status resil_retry_policy_check(const resil_retry_policy_t *p);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Per-operation state and the event-loop step
 * @{ */

/**
 * The state of one operation: a plain value, usually on the stack. Fields
 * are private. Copying it copies the operation (same future delays).
 */
typedef struct resil_retry_state {
    const resil_retry_policy_t *policy;
    uint64_t rng;        /* splitmix64 state */
    uint64_t backoff_ns; /* un-jittered delay of the next retry, whole ns ... */
    union {
        uint64_t frac;    /* ... and its fraction in 2^-64 ns (not decorrelated) */
        uint64_t prev_ns; /* previous delay, for decorrelated jitter */
    } u;
    uint64_t start_ns;    /* when the operation started (if a clock was read) */
    uint64_t deadline_ns; /* start_ns + max_total_ns, modulo 2^64 (see flags) */
    uint32_t attempt;     /* attempts made so far (1 after init) */
    uint32_t budget_cost; /* quota taken by the retry in flight */
    uint32_t flags;       /* initialized, has a deadline, deadline past 2^64 */
    uint32_t last_reason; /* the last answer of next_delay */
} resil_retry_state_t;

/**
 * Starts an operation: its first attempt is about to be made. Reads the
 * policy's clock once if the policy has a deadline; records a request in the
 * policy's budget, if any; with seed 0, draws the state's seed from
 * resil_random_u64().
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p st or @p p is NULL;
 *         RESIL_E_INVALID_CONFIG if @p p is invalid (detail names the
 *         field). On error `*st` is marked uninitialized, so
 *         resil_retry_next_delay() on it stops with INVALID_ARG.
 */
RESIL_API resil_status resil_retry_state_init(resil_retry_state_t *st,
                                              const resil_retry_policy_t *p);

/** As resil_retry_state_init(), with the time given by the caller (an event
 * loop's cached time) instead of read from the policy's clock.
 * @return as resil_retry_state_init(). */
RESIL_API resil_status resil_retry_state_init_at(resil_retry_state_t *st,
                                                 const resil_retry_policy_t *p, uint64_t now_ns);

/**
 * Reseeds the jitter of one operation (e.g. one per simulated client, so
 * clients sharing a seeded policy still draw different delays).
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p st is NULL.
 */
RESIL_API resil_status resil_retry_state_seed(resil_retry_state_t *st, uint64_t seed);

/**
 * Decides what follows the attempt that just ended. Checks, in this order:
 * the outcome (success and final failure stop), the hint (do-not-retry
 * stops), the attempt limit, the delay (hint or jittered backoff), the
 * deadline (stops if now + delay >= deadline), then the budget (the failure
 * is recorded in it in every case; a refusal stops). On RESIL_RETRY_GO the
 * listener, if any, is called and the attempt count advances. Reads the
 * policy's clock only if the policy has a deadline or a budget.
 *
 * @param hint may be NULL (no hint); ignored for SUCCESS and FINAL.
 * @param delay_ns gets the delay on RESIL_RETRY_GO and 0 otherwise; may be
 *        NULL.
 * @return RESIL_RETRY_GO, or the reason to stop;
 *         RESIL_RETRY_STOP_INVALID_ARG if @p st is NULL or uninitialized or
 *         @p outcome is not in the enum (nothing is recorded).
 */
RESIL_API resil_retry_reason resil_retry_next_delay(resil_retry_state_t *st,
                                                    resil_retry_outcome outcome,
                                                    const resil_retry_hint_t *hint,
                                                    uint64_t *delay_ns);

/** As resil_retry_next_delay(), with the time given by the caller.
 * @return as resil_retry_next_delay(). */
RESIL_API resil_retry_reason resil_retry_next_delay_at(resil_retry_state_t *st, uint64_t now_ns,
                                                       resil_retry_outcome outcome,
                                                       const resil_retry_hint_t *hint,
                                                       uint64_t *delay_ns);

/**
 * The timeout to apply to the next attempt: the policy's
 * attempt_timeout_ns, shortened to the time left before the deadline.
 * @return the suggestion in ns; UINT64_MAX when neither limit is set; 0 if
 *         the deadline has passed or @p st is NULL or uninitialized.
 */
RESIL_API uint64_t resil_retry_attempt_timeout(const resil_retry_state_t *st, uint64_t now_ns);

/** @return attempts made so far (1 after init, 2 after the first GO); 0 if
 * @p st is NULL or uninitialized. */
RESIL_API uint32_t resil_retry_attempts(const resil_retry_state_t *st);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name One-call executor
 * @{ */

/**
 * The operation: makes attempt number @p attempt (1 for the first) and
 * returns a result of the caller's choosing (an errno, an HTTP status, a
 * resil_status ...). It may fill @p hint_out (zeroed before each call) with
 * a server hint.
 */
typedef int (*resil_retry_call_fn)(void *ctx, uint32_t attempt, resil_retry_hint_t *hint_out);

/** Classifies a result. NULL classifier: 0 is success, anything else a
 * retryable failure. */
typedef resil_retry_outcome (*resil_retry_classify_fn)(void *ctx, int result);

/** What resil_retry_execute() reports. */
typedef struct resil_retry_result {
    int last_result;             /**< the last attempt's result */
    resil_retry_outcome outcome; /**< its classification */
    uint32_t attempts;           /**< attempts made */
    resil_retry_reason reason;   /**< why it stopped */
} resil_retry_result_t;

/**
 * Runs @p fn until it succeeds or the policy stops, sleeping between
 * attempts on the policy's clock (with a manual clock the sleeps advance it,
 * so tests are instant). A sleep never passes the deadline: no retry is
 * scheduled whose start would.
 * @param classify may be NULL; @p out may be NULL.
 * @return RESIL_OK if the last attempt succeeded;
 *         RESIL_E_CALL_FAILED (final failure, attempts exhausted, or
 *         do-not-retry); RESIL_E_DEADLINE_EXCEEDED; RESIL_E_BUDGET_EXHAUSTED;
 *         RESIL_E_INVALID_ARG if @p p or @p fn is NULL (fn never called);
 *         RESIL_E_INVALID_CONFIG if @p p is invalid (fn never called).
 */
RESIL_API resil_status resil_retry_execute(const resil_retry_policy_t *p, resil_retry_call_fn fn,
                                           resil_retry_classify_fn classify, void *ctx,
                                           resil_retry_result_t *out);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* RESIL_RETRY_H */
