/**
 * @file resil/status.h
 * @brief Status codes: every public function that can fail returns one.
 *
 * Errors are values. Bad arguments and bad configuration are reported, never
 * asserted. Rejections (an open breaker, a full bulkhead, an exhausted budget)
 * are ordinary outcomes with codes of their own, so a caller can tell "the
 * dependency is protected right now" from "I called the library wrongly".
 *
 * The numeric values are part of the ABI: once published they never change.
 * New codes are appended with new numbers.
 *
 * Thread safety: every function here is thread-safe.
 * Progress: wait-free.
 */
#ifndef RESIL_STATUS_H
#define RESIL_STATUS_H

#include "resil/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The one list of status codes: X(NAME, value, message). It generates the
 * enum, resil_status_name() and resil_strerror(). Groups: 0 success,
 * -1..-9 caller errors, -10..-19 rejections, -20..-29 time, -30..-39
 * ownership, -40..-49 state blocks, -50..-59 tables, -60..-69 input,
 * -70..-79 guarded calls.
 */
#define RESIL_STATUS_LIST(X)                                                                       \
    X(OK, 0, "success")                                                                            \
    X(E_INVALID_ARG, -1, "invalid argument")                                                       \
    X(E_INVALID_CONFIG, -2, "invalid configuration")                                               \
    X(E_NO_MEMORY, -3, "out of memory")                                                            \
    X(E_NOT_SUPPORTED, -4, "not supported by this build or platform")                              \
    X(E_STATE, -5, "operation not allowed in the current state")                                   \
    X(E_BREAKER_OPEN, -10, "rejected: circuit breaker is open")                                    \
    X(E_BREAKER_FORCED_OPEN, -11, "rejected: circuit breaker is forced open")                      \
    X(E_HALF_OPEN_FULL, -12, "rejected: circuit breaker is half-open and every probe is taken")    \
    X(E_BULKHEAD_FULL, -13, "rejected: bulkhead is full")                                          \
    X(E_RATE_LIMITED, -14, "rejected: rate limit reached")                                         \
    X(E_BUDGET_EXHAUSTED, -15, "rejected: retry budget exhausted")                                 \
    X(E_LIMIT_REACHED, -16, "rejected: concurrency limit reached")                                 \
    X(E_TIMEOUT, -20, "timed out")                                                                 \
    X(E_DEADLINE_EXCEEDED, -21, "deadline exceeded")                                               \
    X(E_IN_PROGRESS, -22, "busy: the operation is in progress elsewhere")                          \
    X(E_NOT_OWNER, -30, "not owner: the lease was reclaimed or belongs to another holder")         \
    X(E_STALE, -31, "stale: the permit belongs to an earlier generation")                          \
    X(E_CORRUPT, -40, "state block is corrupt")                                                    \
    X(E_VERSION, -41, "state block has another layout version")                                    \
    X(E_NOT_INITIALIZED, -42, "state block is not initialized")                                    \
    X(E_WRONG_KIND, -43, "state block belongs to another component")                               \
    X(E_FULL, -50, "table is full")                                                                \
    X(E_NOT_FOUND, -51, "not found")                                                               \
    X(E_PARSE, -60, "malformed input")                                                             \
    X(E_CALL_FAILED, -70, "the guarded call failed")

/** A status code. RESIL_OK is 0; every error is negative. */
typedef enum resil_status {
#define RESIL_STATUS_ENUM_(name, value, msg) RESIL_##name = value,
    RESIL_STATUS_LIST(RESIL_STATUS_ENUM_)
#undef RESIL_STATUS_ENUM_
} resil_status;

/**
 * A one-line English message for @p s.
 * @return a static string; "unknown status" for a value not in the list.
 */
RESIL_API const char *resil_strerror(resil_status s);

/**
 * The code's name as spelled in C, e.g. "RESIL_E_BREAKER_OPEN".
 * @return a static string; "RESIL_E_UNKNOWN" for a value not in the list.
 */
RESIL_API const char *resil_status_name(resil_status s);

/**
 * Whether @p s is a rejection by a policy (codes -10 to -19): the call was
 * not made because a breaker, bulkhead, limiter or budget refused it.
 * @return 1 for a rejection, 0 otherwise (also for unknown values).
 */
RESIL_API int resil_status_is_rejection(resil_status s);

/**
 * Detail of the last error this thread got from the library, naming the
 * field and rule for RESIL_E_INVALID_CONFIG (e.g.
 * "breaker.failure_rate_threshold: must be in 1..100, got 0") and the check
 * that failed for block errors. Functions that succeed do not clear it.
 * @return a thread-local string, valid until the next failing call on this
 *         thread; "" when no error was recorded. Never NULL.
 */
RESIL_API const char *resil_status_detail(void);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_STATUS_H */
