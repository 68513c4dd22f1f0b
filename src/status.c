#include "resil/status.h"

#include <stdarg.h>
#include <stdio.h>

#include "internal/util.h"

const char *resil_strerror(resil_status s)
{
    switch (s) {
#define RESIL_STATUS_MSG_(name, value, msg)                                                        \
    case RESIL_##name:                                                                             \
        return msg;
        RESIL_STATUS_LIST(RESIL_STATUS_MSG_)
#undef RESIL_STATUS_MSG_
    }
    return "unknown status";
}

const char *resil_status_name(resil_status s)
{
    switch (s) {
#define RESIL_STATUS_NAME_(name, value, msg)                                                       \
    case RESIL_##name:                                                                             \
        return "RESIL_" #name;
        RESIL_STATUS_LIST(RESIL_STATUS_NAME_)
#undef RESIL_STATUS_NAME_
    }
    return "RESIL_E_UNKNOWN";
}

int resil_status_is_rejection(resil_status s) { return s <= -10 && s >= -19; }

static _Thread_local char detail[160];

const char *resil_status_detail(void) { return detail; }

resil_status resil__fail(resil_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return s;
}
