import Atomics
import CLibUV
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Faults in the heap's next bytes before the loop gets there, on a thread of its own
/// (`hc-prefault`), so that the loop's allocations find their pages present.
///
/// Why: a page the process touches for the first time is allocated and zeroed inside the
/// page fault, on the thread that touches it. Under a saturating feed the state grows by tens
/// of MB a second, and on this kind of virtual machine each fresh page costs ~15 µs (the guest
/// zeroes it and the host backs it on that first write): `clear_page_erms` was 20% of the
/// loop's samples, ~13 k faults a second on the loop (docs/BENCHMARKS.md, sessions 11 and 13).
/// On a kernel that does not preempt kernel code, those are also stretches in which nothing
/// else runs on that core.
///
/// How: every arena takes its fresh memory from one reservoir, in address order
/// (`CHeapReservoir`); `top` is the reservoir's frontier plus `bytes`. Every 10 ms this thread
/// asks the kernel to populate the last `bytes` below `top` (`madvise(MADV_POPULATE_WRITE)`,
/// Linux 5.14+), 256 KiB per call: each call holds the address-space lock for reading, so an
/// mmap elsewhere waits at most that long. Pages already present are skipped (a page-table
/// walk); contents never change. Where the call is refused (an older kernel), the thread
/// stops and the loop faults its pages in itself.
final class HeapPrefaulter {
    private let bytes: Int
    private let intervalMicroseconds: UInt32
    private let isStopping = ManagedAtomic<Bool>(false)
    private var thread: Thread?
    /// Bytes the thread has asked the kernel to populate (pages already present count too).
    let populatedBytes = ManagedAtomic<Int>(0)

    /// Where the region to keep populated ends (0: nothing to populate yet).
    private let top: () -> Int

    init(bytes: Int, intervalMicroseconds: UInt32 = 10_000, top: @escaping () -> Int) {
        self.bytes = bytes
        self.intervalMicroseconds = intervalMicroseconds
        self.top = top
    }

    func start() {
        guard bytes > 0, thread == nil else { return }
        let thread = Thread { [self] in run() }
        self.thread = thread
        thread.start()
    }

    /// Lets the thread end at its next wake-up.
    func stop() {
        isStopping.store(true, ordering: .relaxed)
    }

    /// Whether the thread has ended (stopped, or the kernel refused the call).
    var isFinished: Bool { thread?.isFinished ?? true }

    private func run() {
        _ = hc_set_thread_name("hc-prefault")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let step = 256 << 10
        let populateWrite: Int32 = 23  // MADV_POPULATE_WRITE
        var populatedTo = 0
        while !isStopping.load(ordering: .relaxed) {
            let top = self.top()
            if top > 0 {
                if top < populatedTo { populatedTo = top }  // the region moved down
                var start = max(top - bytes, populatedTo) & ~(page - 1)
                while start < top && !isStopping.load(ordering: .relaxed) {
                    let count = min(step, top - start)
                    if madvise(UnsafeMutableRawPointer(bitPattern: start), count, populateWrite) != 0 && errno == EINVAL {
                        return  // not supported by this kernel
                    }
                    populatedBytes.wrappingIncrement(by: count, ordering: .relaxed)
                    start += count
                }
                populatedTo = top
            }
            usleep(intervalMicroseconds)
        }
    }
}
