/* Built against the installed package; exits 0 only if the library works. */
#include <resil/resil.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (resil_version() != RESIL_VERSION_NUMBER) {
        fprintf(stderr, "header %d, library %u\n", RESIL_VERSION_NUMBER, resil_version());
        return 1;
    }
    resil_manual_clock_t *m = NULL;
    if (resil_manual_clock_new(RESIL_SEC(1), &m) != RESIL_OK)
        return 1;
    resil_clock_t c = resil_manual_clock_as_clock(m);
    resil_clock_sleep(&c, RESIL_MS(250));
    int ok = resil_clock_now(&c) == RESIL_MS(1250) &&
             strcmp(resil_status_name(RESIL_E_BREAKER_OPEN), "RESIL_E_BREAKER_OPEN") == 0;
    resil_manual_clock_free(m);
    printf("consumer: libresil %s %s\n", resil_version_string(), ok ? "works" : "FAILED");
    return ok ? 0 : 1;
}
