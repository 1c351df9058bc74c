/* Native baseline for the refcount workload (seed 000): the same chain of
 * get -> migrate through a per-CPU mailbox -> put, and a tallier summing the
 * per-CPU slots back to back, as pthreads pinned round-robin to the cores.
 *   usage: refcount VARIANT(count|incsdecs) WORKERS SECONDS
 * prints: tallies handoffs false_zeros seconds */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXCPU 64
struct slot { volatile long v; char pad[56]; } __attribute__((aligned(64)));
static struct slot count[MAXCPU], incs[MAXCPU], decs[MAXCPU], mailbox[MAXCPU];
static volatile int stop;
static volatile long state_live = 1;
static int workers, incsdecs, ncores;
static long handoffs[MAXCPU];

static void pin(int i) {
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(i % ncores, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void get(int cpu) {
    if (state_live) { if (incsdecs) incs[cpu].v++; else count[cpu].v++; }
}
static void put(int cpu) {
    if (incsdecs) { atomic_thread_fence(memory_order_release); decs[cpu].v++; }
    else count[cpu].v--;
}

static void *worker(void *arg) {
    int cpu = (int)(long)arg; pin(cpu);
    int gives = cpu + 1 < workers || workers == 1, receives = cpu > 0 || workers == 1;
    int nxt = (cpu + 1) % workers;
    while (!stop) {
        if (receives && mailbox[cpu].v) {
            atomic_thread_fence(memory_order_seq_cst);
            put(cpu); mailbox[cpu].v = 0;
        }
        if (gives && mailbox[nxt].v == 0) {
            get(cpu); atomic_thread_fence(memory_order_seq_cst);
            mailbox[nxt].v = 1; handoffs[cpu]++;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: refcount count|incsdecs WORKERS SECONDS\n"); return 2; }
    incsdecs = strcmp(argv[1], "incsdecs") == 0;
    workers = atoi(argv[2]);
    double secs = atof(argv[3]);
    ncores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1 || workers >= MAXCPU) return 2;
    int tallier = workers, nslots = workers + 1;
    if (incsdecs) incs[tallier].v = 1; else count[tallier].v = 1; /* the base reference */
    pthread_t th[MAXCPU];
    for (int i = 0; i < workers; i++) pthread_create(&th[i], NULL, worker, (void *)(long)i);
    pin(tallier);
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    long tallies = 0, fz = 0; double el = 0;
    while (el < secs) {
        for (int k = 0; k < 1024; k++) {
            long t;
            if (incsdecs) {
                long i = 0, d = 0;
                for (int c = 0; c < nslots; c++) d += decs[c].v;
                atomic_thread_fence(memory_order_acquire);
                for (int c = 0; c < nslots; c++) i += incs[c].v;
                t = i - d;
            } else {
                t = 0;
                for (int c = 0; c < nslots; c++) t += count[c].v;
            }
            tallies++;
            if (t < 1) fz++;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        el = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    stop = 1;
    long h = 0;
    for (int i = 0; i < workers; i++) { pthread_join(th[i], NULL); h += handoffs[i]; }
    printf("%ld %ld %ld %.4f\n", tallies, h, fz, el);
    return 0;
}
