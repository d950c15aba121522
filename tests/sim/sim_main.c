/*
 * sim_main.c - the simulation campaign runner.
 *
 *   sim [--scenario NAME|all] [--seeds N] [--first SEED] [--seconds S]
 *
 * Runs N seeds (default 200) of each scenario, starting at SEED (default 1,
 * so a CI run is the same every time; `make sim` passes a fresh one), and
 * stops early after S seconds of wall time if given. SLUICE_SEED=<seed>
 * runs just that seed (SIM_VERBOSE=1 traces it). A failure prints the
 * scenario, the seed, the violated invariant and the command that replays
 * it; the exit status is 1 if any run failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static const sim_scenario *const scenarios[] = {&sim_scenario_groups,      &sim_scenario_controller,
                                                &sim_scenario_replica,     &sim_scenario_raft,
                                                &sim_scenario_replication, &sim_scenario_txn};
#define N_SCENARIOS (sizeof scenarios / sizeof scenarios[0])

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define FAILURES_SHOWN 10

static bool run_one(const sim_scenario *sc, uint64_t seed, int64_t *sim_ms, uint64_t *steps, long *shown) {
    sim s;
    sim_init(&s, seed);
    bool ok = sc->run(&s);
    *sim_ms += s.now < INT64_MAX / 2 ? s.now : 0;
    *steps += s.steps;
    if (!ok && (*shown)++ < FAILURES_SHOWN)
        fprintf(stderr,
                "FAIL scenario=%s seed=%" PRIu64 ": %s\n  replay: SLUICE_SEED=%" PRIu64
                " SIM_VERBOSE=1 build/release/sim --scenario %s\n",
                sc->name, seed, s.failure, seed, sc->name);
    sim_free(&s);
    return ok;
}

int main(int argc, char **argv) {
    const char *only = "all";
    long seeds = 200;
    uint64_t first = 1;
    double seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            seeds = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else {
            fprintf(stderr, "usage: sim [--scenario NAME|all] [--seeds N] [--first SEED] [--seconds S]\n");
            for (size_t k = 0; k < N_SCENARIOS; k++)
                fprintf(stderr, "  %-10s %s\n", scenarios[k]->name, scenarios[k]->about);
            return 2;
        }
    }
    const char *one = getenv("SLUICE_SEED");
    int failures = 0, matched = 0;
    for (size_t k = 0; k < N_SCENARIOS; k++) {
        const sim_scenario *sc = scenarios[k];
        if (strcmp(only, "all") != 0 && strcmp(only, sc->name) != 0)
            continue;
        matched++;
        int64_t sim_ms = 0;
        uint64_t steps = 0;
        double t0 = wall_s();
        long runs = 0, failed = 0, shown = 0;
        if (one && *one) {
            runs = 1;
            failed = !run_one(sc, strtoull(one, NULL, 0), &sim_ms, &steps, &shown);
        } else {
            for (long i = 0; i < seeds; i++) {
                if (seconds > 0 && wall_s() - t0 > seconds)
                    break;
                runs++;
                failed += !run_one(sc, first + (uint64_t)i, &sim_ms, &steps, &shown);
            }
        }
        printf("sim %s: %ld runs, %ld failed, %.1f simulated hours, %" PRIu64 " steps, %.1f s\n", sc->name,
               runs, failed, (double)sim_ms / 3.6e6, steps, wall_s() - t0);
        failures += (int)failed;
    }
    if (matched == 0) {
        fprintf(stderr, "sim: no scenario named '%s'\n", only);
        return 2;
    }
    return failures ? 1 : 0;
}
