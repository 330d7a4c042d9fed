// tools/wakelat.c: wake-up lateness of a normal thread (1 ms periodic timer) while a SCHED_IDLE
// thread writes 400 MiB to a file in write()s of CHUNK bytes with an fdatasync every 8 MiB, as
// the snapshot thread does (CHUNK 0: no writer). It backs the snapshot store's write size
// (docs/BENCHMARKS.md, session 5): one write() copies its bytes into the page cache in one
// stretch of kernel time, and a thread waking on that core may wait for it.
//
//   clang -O2 -pthread -o /tmp/wakelat tools/wakelat.c
//   for c in 0 8388608 262144; do /tmp/wakelat $c 8 /tmp/wakelat.tmp; done
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static size_t chunk;
static const char *path;
static volatile int stop;

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *writer(void *unused) {
    (void)unused;
    struct sched_param param = {0};
    sched_setscheduler(0, SCHED_IDLE, &param);
    size_t total = (size_t)400 << 20;
    char *buffer = malloc(total);
    memset(buffer, 7, total);
    while (!stop) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { perror(path); exit(1); }
        size_t offset = 0;
        while (offset < total && !stop) {
            size_t end = offset + (8 << 20);
            if (end > total) end = total;
            while (offset < end) {
                size_t n = end - offset < chunk ? end - offset : chunk;
                if (write(fd, buffer + offset, n) < 0) { perror("write"); exit(1); }
                offset += n;
            }
            fdatasync(fd);
        }
        close(fd);
        unlink(path);
    }
    free(buffer);
    return NULL;
}

static int compare(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: wakelat CHUNK_BYTES SECONDS FILE\n");
        return 2;
    }
    chunk = strtoul(argv[1], NULL, 0);
    int seconds = atoi(argv[2]);
    path = argv[3];
    pthread_t thread;
    if (chunk) pthread_create(&thread, NULL, writer, NULL);
    int count = seconds * 1000;
    long long *lateness = malloc(count * sizeof *lateness);
    long long next = now() + 1000000;
    for (int i = 0; i < count; i++) {
        struct timespec due = {next / 1000000000, next % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
        lateness[i] = now() - next;
        next += 1000000;
    }
    stop = 1;
    qsort(lateness, count, sizeof *lateness, compare);
    printf("chunk %zu: wake lateness p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n", chunk,
           lateness[count / 2] / 1e6, lateness[count * 99 / 100] / 1e6, lateness[count * 999 / 1000] / 1e6,
           lateness[count - 1] / 1e6);
    if (chunk) pthread_join(thread, NULL);
    return 0;
}
