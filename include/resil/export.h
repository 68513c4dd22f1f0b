/**
 * @file resil/export.h
 * @brief RESIL_API, the export macro on every public function.
 *
 * The library is built with -fvisibility=hidden, so only RESIL_API functions
 * are exported from libresil.so. Define RESIL_STATIC_DEFINE when embedding the
 * static library in another shared object (an nginx module, a Python
 * extension) to keep its symbols local to that object; linking with
 * -Wl,--exclude-libs,ALL does the same without recompiling.
 */
#ifndef RESIL_EXPORT_H
#define RESIL_EXPORT_H

#if defined(RESIL_STATIC_DEFINE)
#define RESIL_API
#elif defined(__GNUC__) || defined(__clang__)
#define RESIL_API __attribute__((visibility("default")))
#else
#define RESIL_API
#endif

#endif /* RESIL_EXPORT_H */
