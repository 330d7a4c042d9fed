// CRC-32C (Castagnoli) with the CPU's instruction (SSE 4.2 `crc32`), for HeadcountStorage's
// CRC32C: the raw register update, without the initial and final inversion.
#ifndef CCRC32C_H
#define CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 if this CPU has the CRC-32C instruction (x86-64 with SSE 4.2), else 0.
int hc_crc32c_hardware_available(void);

/// Runs the CRC register `crc` over `count` bytes. Only call when
/// `hc_crc32c_hardware_available()` returned 1.
uint32_t hc_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count);

#endif
