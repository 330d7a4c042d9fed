#ifndef HEADCOUNT_HEAP_RESERVOIR_H
#define HEADCOUNT_HEAP_RESERVOIR_H

/* The server's memory allocator is jemalloc (Debian's libjemalloc, linked into the process).
   These calls tune it for an event loop that must not stall (docs/ARCHITECTURE.md, "Memory"):

   - hc_jemalloc_serves_malloc: whether malloc in this process really is jemalloc's (an
     LD_PRELOAD of another allocator would take over; then nothing here is applied).
   - hc_jemalloc_retain_freed_memory: freed pages stay with the process (no decay purging),
     so the loop does not fault them in again, nor do madvise calls on its behalf.
   - hc_heap_reservoir_install: every arena takes its fresh memory from one reservoir, a
     single address range reserved up front and handed out from its low end, so that a
     thread (HeapPrefaulter) can fault in the next bytes before anyone allocates them.

   All return 0 on success, -1 when the allocator refused (errno-style detail in *detail). */

#include <stddef.h>

/* 1 when malloc and free in this process are jemalloc's. */
int hc_jemalloc_serves_malloc(void);

/* jemalloc's version string ("5.3.0-0-g..."), or "" when unavailable. */
const char *hc_jemalloc_version(void);

/* Sets every arena's (and future arenas') dirty and muzzy decay to -1: never purge; except
   the huge-allocation arena's (blocks of opt.oversize_threshold, 8 MiB, and more), which
   purges at once, as glibc unmaps its large chunks. */
int hc_jemalloc_retain_freed_memory(int *detail);

/* Reserves `length` bytes of address space (MAP_NORESERVE: no memory until touched) and makes
   every automatic arena (and the huge-allocation arena) take its new extents from it, at most
   `grow_limit` bytes at a time, in address order. Past its end, arenas map memory as jemalloc
   does by default. Once per process: later calls return 0 and change nothing. */
int hc_heap_reservoir_install(size_t length, size_t grow_limit, int *detail);

/* Makes jemalloc's own background threads do the decay purging (freed pages given back
   after ~10 s), so that no allocating thread (the event loop) purges inline. 0 on success. */
int hc_jemalloc_purge_in_background(void);

/* 1 when jemalloc's background purging threads are on. */
int hc_jemalloc_purges_in_background(void);

/* Gives every arena's freed pages back to the system now (once, after recovery: its
   temporary buffers would otherwise stay resident with freed memory retained). */
int hc_jemalloc_purge_all(void);

/* The index of the huge-allocation arena (allocations from opt.oversize_threshold up), which
   exists only once something that large was allocated: this call allocates such a block once
   to create it. -1 when there is none. */
int hc_jemalloc_huge_arena(void);

/* Arena `arena`'s dirty-page decay in milliseconds (-1: never purged), or -2 when unreadable. */
long hc_jemalloc_arena_dirty_decay_ms(unsigned arena);

/* The end of what has been handed out so far (base + used), or 0 when not installed. */
size_t hc_heap_reservoir_frontier(void);

/* The reservoir's last address + 1, or 0 when not installed. */
size_t hc_heap_reservoir_end(void);

#endif
