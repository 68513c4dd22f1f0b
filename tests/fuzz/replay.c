/*
 * Runs a fuzz target without libFuzzer, so every build tests it: first each
 * file named on the command line (the committed corpus and past crashes),
 * then RESIL_FUZZ_RUNS (default 20000) random inputs from a fixed seed.
 * A failing input is written to fuzz-failure.bin when the target aborts.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "resil/random.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[4096];
static const uint8_t *current;
static size_t current_size;

/* On abort, save the input that caused it (async-signal-safe calls only). */
static void save_failure(int sig)
{
    int fd = open("fuzz-failure.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, current, current_size);
        (void)w;
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run(const uint8_t *data, size_t size)
{
    current = data;
    current_size = size;
    LLVMFuzzerTestOneInput(data, size);
}

int main(int argc, char **argv)
{
    signal(SIGABRT, save_failure);
    size_t files = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            return 1;
        }
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        run(buf, n);
        files++;
    }
    const char *e = getenv("RESIL_FUZZ_RUNS");
    long runs = e != NULL ? atol(e) : 20000;
    resil_rng_t r;
    resil_rng_seed(&r, 20261124);
    for (long i = 0; i < runs; i++) {
        size_t n = 8 + (size_t)resil_rng_below(&r, 400);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)resil_rng_next(&r);
        run(buf, n);
    }
    printf("replay: %zu corpus files and %ld random inputs passed\n", files, runs);
    return 0;
}
