/**
 * @file resil/resil.h
 * @brief The umbrella header: includes every public libresil header.
 *
 * Include this, or only the component headers you use; each compiles alone.
 * See docs/index.md for where each concept is documented.
 */
#ifndef RESIL_RESIL_H
#define RESIL_RESIL_H

#include "resil/base.h"
#include "resil/breaker.h"
#include "resil/breaker_set.h"
#include "resil/bulkhead.h"
#include "resil/clock.h"
#include "resil/export.h"
#include "resil/limiter.h"
#include "resil/random.h"
#include "resil/ratelimit.h"
#include "resil/retry.h"
#include "resil/status.h"

#endif /* RESIL_RESIL_H */
