extension SCL {
    /// Which records (or groups) a walk keeps. Concrete types, so walks specialise and inline.
    protocol RecordFilter {
        func accepts(_ id: UInt32) -> Bool
    }

    struct AcceptAll: RecordFilter {
        @inline(__always) func accepts(_ id: UInt32) -> Bool { true }
    }

    /// Ids whose bit is set.
    struct AcceptBits: RecordFilter {
        let bits: [UInt64]
        @inline(__always) func accepts(_ id: UInt32) -> Bool {
            bits[Int(id) >> 6] & (1 << (UInt64(id) & 63)) != 0
        }
    }

    /// Records whose label's bit is set.
    struct AcceptLabels: RecordFilter {
        let labelOf: Column<UInt32>
        let bits: [UInt64]
        @inline(__always) func accepts(_ local: UInt32) -> Bool {
            let label = labelOf[Int(local)]
            return bits[Int(label) >> 6] & (1 << (UInt64(label) & 63)) != 0
        }
    }

    /// Walks the date index, which holds (date, local) ascending. The requested descending
    /// order is that reversed; the ascending order visits runs of equal dates in ascending
    /// order, each from its highest local down (equal keys: newest first, both ways), which a
    /// plain scan produces by reversing each run's accepted records when the run ends.
    struct DateWalker<Filter: RecordFilter> {
        let index: ChunkedIndex
        let dates: Column<Int64>
        let floor: Int64
        let limit: Int
        let filter: Filter

        init(index: ChunkedIndex, dates: Column<Int64>, floor: Int64, limit: Int, filter: Filter) {
            self.index = index
            self.dates = dates
            self.floor = floor
            self.limit = limit
            self.filter = filter
        }

        /// The first position whose (date, local) is above the probe's (`inclusive`: at or
        /// above it).
        func firstAbove(_ probe: UInt32, inclusive: Bool) -> Position {
            let dates = self.dates
            let probeDate = dates[Int(probe)]
            return index.partitionPoint { element in
                let d = dates[Int(element)]
                return d < probeDate || (d == probeDate && (inclusive ? element < probe : element <= probe))
            }
        }

        /// The first position with a date ≥ `date` (`strictly`: > `date`).
        func firstDate(from date: Int64, strictly: Bool) -> Position {
            let dates = self.dates
            return index.partitionPoint { strictly ? dates[Int($0)] <= date : dates[Int($0)] < date }
        }

        func run(ascending: Bool, forward: Bool, probe: UInt32?) -> [UInt32] {
            var out: [UInt32] = []
            guard limit > 0 else { return out }
            let index = self.index
            let floor = self.floor
            let limit = self.limit
            let filter = self.filter
            // Positions, computed before taking the unsafe view of `dates`.
            let probeDate = probe.map { dates[Int($0)] } ?? 0
            let probeLive = probe != nil && probeDate >= floor
            switch (ascending, forward) {
            case (false, true):
                // Down from just below the probe; stop at the first expired date.
                let start = probe.map { index.before(firstAbove($0, inclusive: true)) } ?? index.lastPosition
                dates.withReader { dates in
                    index.scan(from: start, up: false) { local in
                        if dates[Int(local)] < floor { return true }
                        if filter.accepts(local) {
                            out.append(local)
                            if out.count >= limit { return true }
                        }
                        return false
                    }
                }

            case (false, false):
                // Up from just above the probe.
                guard probe != nil else { break }
                let start = probeLive ? firstAbove(probe!, inclusive: false) : firstDate(from: floor, strictly: false)
                dates.withReader { dates in
                    index.scan(from: start, up: true) { local in
                        if dates[Int(local)] >= floor && filter.accepts(local) {
                            out.append(local)
                            if out.count >= limit { return true }
                        }
                        return false
                    }
                }

            case (true, true):
                // The rest of the probe's run (same date, lower locals) downwards, then runs
                // upwards from the next date, each emitted from its highest local.
                let probeRunStart = probeLive ? index.before(firstAbove(probe!, inclusive: true)) : nil
                let start = probeLive ? firstDate(from: probeDate, strictly: true) : firstDate(from: floor, strictly: false)
                dates.withReader { dates in
                    index.scan(from: probeRunStart, up: false) { local in
                        if dates[Int(local)] != probeDate { return true }
                        if filter.accepts(local) {
                            out.append(local)
                            if out.count >= limit { return true }
                        }
                        return false
                    }
                    guard out.count < limit else { return }
                    // Accepted records of the current run go to `out` in scan order; when the
                    // run ends they are reversed in place (runs are usually one record).
                    var runStart = out.count
                    var runDate = Int64.min
                    index.scan(from: start, up: true) { local in
                        let date = dates[Int(local)]
                        if date != runDate {
                            if out.count - runStart > 1 { out[runStart...].reverse() }
                            runStart = out.count
                            runDate = date
                            if out.count >= limit { return true }
                        }
                        if filter.accepts(local) { out.append(local) }
                        return false
                    }
                    if out.count - runStart > 1 { out[runStart...].reverse() }
                }

            case (true, false):
                // Against ascending order: the probe's run upwards from above the probe, then
                // earlier runs downwards by date, each emitted from its lowest local.
                guard probeLive else { break }
                let probeRunRest = firstAbove(probe!, inclusive: false)
                let start = index.before(firstDate(from: probeDate, strictly: false))
                dates.withReader { dates in
                    index.scan(from: probeRunRest, up: true) { local in
                        if dates[Int(local)] != probeDate { return true }
                        if filter.accepts(local) {
                            out.append(local)
                            if out.count >= limit { return true }
                        }
                        return false
                    }
                    guard out.count < limit else { return }
                    var runStart = out.count
                    var runDate = Int64.min
                    index.scan(from: start, up: false) { local in
                        let date = dates[Int(local)]
                        if date != runDate {
                            if out.count - runStart > 1 { out[runStart...].reverse() }
                            runStart = out.count
                            runDate = date
                            if out.count >= limit || date < floor { return true }
                        }
                        if filter.accepts(local) { out.append(local) }
                        return false
                    }
                    if out.count - runStart > 1 { out[runStart...].reverse() }
                }
            }
            if out.count > limit { out.removeLast(out.count - limit) }
            return out
        }
    }

    /// Walks groups (labels or statuses) in `order` (ascending by key); within a group, its
    /// records from the highest local down (along the requested order) or from the lowest
    /// up (against it).
    struct GroupWalker<Groups: RecordFilter, Filter: RecordFilter> {
        let order: ChunkedIndex
        let postings: [[UInt32]]
        let dates: Column<Int64>
        let floor: Int64
        let limit: Int
        let groups: Groups
        let filter: Filter
        var out: [UInt32] = []

        init(order: ChunkedIndex, postings: [[UInt32]], dates: Column<Int64>, floor: Int64, limit: Int, groups: Groups,
             filter: Filter) {
            self.order = order
            self.postings = postings
            self.dates = dates
            self.floor = floor
            self.limit = limit
            self.groups = groups
            self.filter = filter
        }

        /// Walks `list` from `start` (downwards when `down`); true when the page is full.
        mutating func walkList(_ list: [UInt32], from start: Int, down: Bool) -> Bool {
            var index = start
            if down {
                while index >= 0 {
                    let local = list[index]
                    if dates[Int(local)] >= floor && filter.accepts(local) {
                        out.append(local)
                        if out.count >= limit { return true }
                    }
                    index -= 1
                }
            } else {
                while index < list.count {
                    let local = list[index]
                    if dates[Int(local)] >= floor && filter.accepts(local) {
                        out.append(local)
                        if out.count >= limit { return true }
                    }
                    index += 1
                }
            }
            return false
        }

        /// `groupIsBefore`: the group sorts before the probe's group.
        mutating func run(ascending: Bool, forward: Bool, probe: UInt32?, probeGroup: UInt32?,
                          groupIsBefore: (UInt32) -> Bool) -> [UInt32] {
            guard limit > 0 else { return out }
            let groupsUp = ascending == forward
            let end = order.endPosition
            var next: Position?
            if let probe, let probeGroup {
                let position = order.partitionPoint(groupIsBefore)
                if position != end && order[position] == probeGroup {
                    if groups.accepts(probeGroup) {
                        let list = postings[Int(probeGroup)]
                        // The first index with list[i] >= probe.
                        var low = 0
                        var high = list.count
                        while low < high {
                            let middle = (low + high) >> 1
                            if list[middle] < probe { low = middle + 1 } else { high = middle }
                        }
                        let start = forward ? low - 1 : (low < list.count && list[low] == probe ? low + 1 : low)
                        if walkList(list, from: start, down: forward) { return out }
                    }
                    next = groupsUp ? order.after(position) : order.before(position)
                } else {
                    next = groupsUp ? position : order.before(position)
                }
            } else {
                next = groupsUp ? order.startPosition : order.lastPosition
            }
            while let position = next, position != end {
                let group = order[position]
                if groups.accepts(group) {
                    let list = postings[Int(group)]
                    if !list.isEmpty && walkList(list, from: forward ? list.count - 1 : 0, down: forward) { return out }
                }
                next = groupsUp ? order.after(position) : order.before(position)
            }
            return out
        }
    }
}
