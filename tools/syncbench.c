// tools/syncbench.c: what one small durable append costs on this machine's disk, three ways, in
// wall time and in CPU time of the syncing thread. It backs the WAL's preallocated segments and
// the bound on one-event-per-request throughput (docs/BENCHMARKS.md, session 8).
//
//   grow      write() 800 bytes at the end of a growing file, fdatasync (Redis's AOF with
//             appendfsync always: every sync also commits the new size to the journal)
//   prealloc  pwrite() 800 bytes into a zero-filled, synced 64 MiB file, fdatasync (the WAL's
//             preallocated segments: data only, no journal commit)
//   direct    the same file opened O_DIRECT | O_DSYNC, the 4 KiB block holding the new bytes
//             rewritten whole with one pwrite (no page cache; one system call)
//
//   clang -O2 -o /tmp/syncbench tools/syncbench.c
//   /tmp/syncbench DIR [COUNT]        # DIR on the disk to measure (a file is created and removed)
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { GROW, PREALLOC, DIRECT };
static const char *names[] = {"grow", "prealloc", "direct"};
static const size_t segment = 64 << 20, record = 800, block = 4096;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double cpu_us(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(int mode, const char *path, int count) {
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); exit(1); }
    if (mode != GROW) {
        char *zeros = calloc(1, 1 << 20);
        for (size_t offset = 0; offset < segment; offset += 1 << 20)
            if (pwrite(fd, zeros, 1 << 20, offset) != 1 << 20) { perror("pwrite"); exit(1); }
        fsync(fd);
        free(zeros);
    }
    if (mode == DIRECT) {
        close(fd);
        fd = open(path, O_RDWR | O_DIRECT | O_DSYNC);
        if (fd < 0) { perror("open O_DIRECT"); exit(1); }
    }
    char *buffer;
    if (posix_memalign((void **)&buffer, block, 2 * block)) exit(1);
    memset(buffer, 'x', 2 * block);
    double *took = malloc(sizeof(double) * count);
    size_t end = 0;
    double cpu0 = cpu_us();
    for (int i = 0; i < count; i++) {
        double t0 = now_us();
        if (mode == DIRECT) {
            size_t first = end & ~(block - 1), length = ((end + record + block - 1) & ~(block - 1)) - first;
            if (pwrite(fd, buffer, length, first) != (ssize_t)length) { perror("pwrite direct"); exit(1); }
        } else {
            if (pwrite(fd, buffer, record, end) != (ssize_t)record) { perror("pwrite"); exit(1); }
            fdatasync(fd);
        }
        end += record;
        took[i] = now_us() - t0;
    }
    double cpu = (cpu_us() - cpu0) / count;
    qsort(took, count, sizeof(double), by_value);
    double sum = 0;
    for (int i = 0; i < count; i++) sum += took[i];
    printf("%-8s %5d syncs: mean %6.1f  p50 %6.1f  p90 %6.1f  p99 %6.1f µs wall; %5.1f µs CPU each\n",
           names[mode], count, sum / count, took[count / 2], took[count * 9 / 10], took[count * 99 / 100], cpu);
    close(fd);
    unlink(path);
    free(took);
    free(buffer);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR [COUNT]\n", argv[0]); return 64; }
    char path[4096];
    snprintf(path, sizeof path, "%s/syncbench-%d.tmp", argv[1], (int)getpid());
    int count = argc > 2 ? atoi(argv[2]) : 3000;
    for (int mode = GROW; mode <= DIRECT; mode++) run(mode, path, count);
    return 0;
}
