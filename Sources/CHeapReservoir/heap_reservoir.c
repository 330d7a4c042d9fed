#include "heap_reservoir.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int hc_jemalloc_serves_malloc(void) {
    uint64_t before = 0, after = 0;
    size_t size = sizeof(before);
    if (mallctl("thread.allocated", &before, &size, NULL, 0) != 0) return 0;
    /* Through a volatile pointer, so that the compiler cannot pair the malloc and free away. */
    void *volatile block = malloc(1 << 16);
    size = sizeof(after);
    int result = mallctl("thread.allocated", &after, &size, NULL, 0);
    free(block);
    return result == 0 && block != NULL && after - before >= (1 << 16);
}

const char *hc_jemalloc_version(void) {
    const char *version = "";
    size_t size = sizeof(version);
    if (mallctl("version", &version, &size, NULL, 0) != 0) return "";
    return version;
}

static unsigned arena_count(void) {
    unsigned count = 0;
    size_t size = sizeof(count);
    if (mallctl("arenas.narenas", &count, &size, NULL, 0) != 0) return 0;
    return count;
}

/* Writes `value` to "arena.<i>.<name>" for each initialized arena (an arena not yet created
   answers EFAULT and is skipped: it starts from the "arenas.<name>" default). */
static int set_each_arena(const char *name, void *value, size_t length, int *detail) {
    unsigned count = arena_count();
    char key[64];
    for (unsigned i = 0; i < count; i++) {
        snprintf(key, sizeof(key), "arena.%u.%s", i, name);
        int result = mallctl(key, NULL, NULL, value, length);
        if (result != 0 && result != EFAULT) {
            if (detail) *detail = result;
            return -1;
        }
    }
    return 0;
}

int hc_jemalloc_huge_arena(void) {
    size_t oversize = 0, size = sizeof(oversize);
    if (mallctl("opt.oversize_threshold", &oversize, &size, NULL, 0) != 0 || oversize == 0) return -1;
    void *volatile block = malloc(oversize);
    free(block);
    unsigned automatic = 0;
    size = sizeof(automatic);
    if (mallctl("opt.narenas", &automatic, &size, NULL, 0) != 0) return -1;
    return arena_count() > automatic ? (int)automatic : -1;
}

int hc_jemalloc_retain_freed_memory(int *detail) {
    int huge = hc_jemalloc_huge_arena();
    ssize_t never = -1, at_once = 0;
    const char *names[] = {"dirty_decay_ms", "muzzy_decay_ms"};
    for (int n = 0; n < 2; n++) {
        char key[64];
        /* Arenas created later (a thread's first allocation) start from this. */
        snprintf(key, sizeof(key), "arenas.%s", names[n]);
        int result = mallctl(key, NULL, NULL, &never, sizeof(never));
        unsigned count = arena_count();
        for (unsigned i = 0; result == 0 && i < count; i++) {
            /* Blocks of 8 MiB and more (whole WAL segments, recovery's sort buffers, a large
               table's storage) are purged when freed, as glibc unmaps its large chunks: kept,
               one peak's worth would stay resident for good (a restart from a 25 M-event WAL
               ended at 7.6 GB instead of 4.0). */
            ssize_t *value = (int)i == huge ? &at_once : &never;
            snprintf(key, sizeof(key), "arena.%u.%s", i, names[n]);
            result = mallctl(key, NULL, NULL, value, sizeof(*value));
            if (result == EFAULT) result = 0;  /* not created yet: starts from the default */
        }
        if (result != 0) {
            if (detail) *detail = result;
            return -1;
        }
    }
    return 0;
}

int hc_jemalloc_purge_in_background(void) {
    bool enable = true;
    return mallctl("background_thread", NULL, NULL, &enable, sizeof(enable)) == 0 ? 0 : -1;
}

int hc_jemalloc_purges_in_background(void) {
    bool enabled = false;
    size_t size = sizeof(enabled);
    if (mallctl("background_thread", &enabled, &size, NULL, 0) != 0) return 0;
    return enabled ? 1 : 0;
}

int hc_jemalloc_purge_all(void) {
    char key[64];
    snprintf(key, sizeof(key), "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
    return mallctl(key, NULL, NULL, NULL, 0) == 0 ? 0 : -1;
}

long hc_jemalloc_arena_dirty_decay_ms(unsigned arena) {
    char key[64];
    snprintf(key, sizeof(key), "arena.%u.dirty_decay_ms", arena);
    ssize_t value = 0;
    size_t size = sizeof(value);
    if (mallctl(key, &value, &size, NULL, 0) != 0) return -2;
    return (long)value;
}

/* MARK: - The reservoir */

static char *reservoir_base;
static size_t reservoir_length;
static _Atomic size_t reservoir_used;
/* jemalloc's own hooks, for memory outside the reservoir (extents that existed before the
   reservoir, and everything once it is used up). */
static extent_hooks_t *default_hooks;
static atomic_flag installed = ATOMIC_FLAG_INIT;

static inline bool in_reservoir(const void *address) {
    return (const char *)address >= reservoir_base && (const char *)address < reservoir_base + reservoir_length;
}

static void *reservoir_alloc(extent_hooks_t *hooks, void *new_address, size_t size, size_t alignment,
                             bool *zero, bool *commit, unsigned arena) {
    (void)hooks;
    if (new_address == NULL) {
        size_t used = atomic_load_explicit(&reservoir_used, memory_order_relaxed);
        for (;;) {
            uintptr_t base = (uintptr_t)reservoir_base;
            size_t start = (size_t)(((base + used + alignment - 1) & ~(uintptr_t)(alignment - 1)) - base);
            if (start < used || start > reservoir_length || size > reservoir_length - start) break;
            if (atomic_compare_exchange_weak_explicit(&reservoir_used, &used, start + size,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                /* Never handed out before: anonymous pages, zero whether or not the
                   prefaulter has touched them yet (MADV_POPULATE_WRITE keeps contents). */
                *zero = true;
                *commit = true;
                return reservoir_base + start;
            }
        }
    } else if (in_reservoir(new_address)) {
        return NULL;  /* a fixed address inside the reservoir: not offered */
    }
    return default_hooks->alloc(default_hooks, new_address, size, alignment, zero, commit, arena);
}

/* Reservoir memory is never unmapped: refusing makes jemalloc keep the extent for reuse. */
static bool reservoir_dalloc(extent_hooks_t *hooks, void *address, size_t size, bool committed, unsigned arena) {
    (void)hooks;
    if (in_reservoir(address)) return true;
    return default_hooks->dalloc(default_hooks, address, size, committed, arena);
}

static void reservoir_destroy(extent_hooks_t *hooks, void *address, size_t size, bool committed, unsigned arena) {
    (void)hooks;
    if (in_reservoir(address)) {
        madvise(address, size, MADV_DONTNEED);
        return;
    }
    default_hooks->destroy(default_hooks, address, size, committed, arena);
}

static bool reservoir_commit(extent_hooks_t *hooks, void *address, size_t size, size_t offset, size_t length,
                             unsigned arena) {
    (void)hooks;
    if (in_reservoir(address)) return false;  /* always committed (read-write, overcommitted) */
    return default_hooks->commit(default_hooks, address, size, offset, length, arena);
}

static bool reservoir_decommit(extent_hooks_t *hooks, void *address, size_t size, size_t offset, size_t length,
                               unsigned arena) {
    (void)hooks;
    if (in_reservoir(address)) return true;  /* refused: the pages stay mapped */
    return default_hooks->decommit(default_hooks, address, size, offset, length, arena);
}

/* Purging is madvise on the pages, wherever they were mapped: jemalloc's own calls do it. */
static bool reservoir_purge_lazy(extent_hooks_t *hooks, void *address, size_t size, size_t offset, size_t length,
                                 unsigned arena) {
    (void)hooks;
    if (default_hooks->purge_lazy == NULL) return true;
    return default_hooks->purge_lazy(default_hooks, address, size, offset, length, arena);
}

static bool reservoir_purge_forced(extent_hooks_t *hooks, void *address, size_t size, size_t offset, size_t length,
                                   unsigned arena) {
    (void)hooks;
    if (default_hooks->purge_forced == NULL) return true;
    return default_hooks->purge_forced(default_hooks, address, size, offset, length, arena);
}

static bool reservoir_split(extent_hooks_t *hooks, void *address, size_t size, size_t size_a, size_t size_b,
                            bool committed, unsigned arena) {
    (void)hooks;
    if (in_reservoir(address)) return false;  /* one mapping: any split is fine */
    return default_hooks->split(default_hooks, address, size, size_a, size_b, committed, arena);
}

static bool reservoir_merge(extent_hooks_t *hooks, void *address_a, size_t size_a, void *address_b, size_t size_b,
                            bool committed, unsigned arena) {
    (void)hooks;
    bool a = in_reservoir(address_a), b = in_reservoir(address_b);
    if (a && b) return false;
    if (a || b) return true;  /* never across the reservoir's edge */
    return default_hooks->merge(default_hooks, address_a, size_a, address_b, size_b, committed, arena);
}

static extent_hooks_t reservoir_hooks = {
    reservoir_alloc, reservoir_dalloc, reservoir_destroy, reservoir_commit, reservoir_decommit,
    reservoir_purge_lazy, reservoir_purge_forced, reservoir_split, reservoir_merge,
};

int hc_heap_reservoir_install(size_t length, size_t grow_limit, int *detail) {
    if (atomic_flag_test_and_set(&installed)) return 0;
    size_t size = sizeof(default_hooks);
    int result = mallctl("arena.0.extent_hooks", &default_hooks, &size, NULL, 0);
    if (result != 0 || default_hooks == NULL) {
        if (detail) *detail = result;
        atomic_flag_clear(&installed);
        return -1;
    }
    void *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        if (detail) *detail = errno;
        atomic_flag_clear(&installed);
        return -1;
    }
    reservoir_base = base;
    reservoir_length = length;
    atomic_store(&reservoir_used, 0);

    hc_jemalloc_huge_arena();  /* creates the huge-allocation arena, so that it gets the hooks too */
    /* Writing an automatic arena's hooks creates the arena when it does not exist yet. */
    unsigned automatic = 0;
    size = sizeof(automatic);
    mallctl("opt.narenas", &automatic, &size, NULL, 0);
    unsigned count = arena_count();
    char key[64];
    extent_hooks_t *hooks = &reservoir_hooks;
    for (unsigned i = 0; i < count; i++) {
        snprintf(key, sizeof(key), "arena.%u.extent_hooks", i);
        result = mallctl(key, NULL, NULL, &hooks, sizeof(hooks));
        if (result != 0 && !(result == EFAULT && i >= automatic)) {
            if (detail) *detail = result;
            return -1;  /* some arenas have the hooks: the reservoir stays, partly used */
        }
    }
    if (grow_limit > 0) {
        set_each_arena("retain_grow_limit", &grow_limit, sizeof(grow_limit), NULL);
    }
    return 0;
}

size_t hc_heap_reservoir_frontier(void) {
    if (reservoir_base == NULL) return 0;
    return (size_t)reservoir_base + atomic_load_explicit(&reservoir_used, memory_order_relaxed);
}

size_t hc_heap_reservoir_end(void) {
    if (reservoir_base == NULL) return 0;
    return (size_t)reservoir_base + reservoir_length;
}
