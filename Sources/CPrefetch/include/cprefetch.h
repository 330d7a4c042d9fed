// Cache prefetch hints for HeadcountCore (Swift has no prefetch intrinsic). A prefetch never
// faults and has no visible effect: an address that is not mapped is simply ignored.
#ifndef CPREFETCH_H
#define CPREFETCH_H

/// Starts loading the cache line of `p` (for writing, kept in all cache levels), without
/// waiting for it: later instructions run while the line comes from memory.
static inline void hc_prefetch(const void *p) { __builtin_prefetch(p, 1, 3); }

#endif
