extension SCL {
    /// A candidate of a gathered listing: its position in the requested order is (k1, k2).
    struct GatherEntry {
        var k1: Int64
        var k2: Int64
        var local: UInt32

        @inline(__always)
        func precedes(_ k1: Int64, _ k2: Int64) -> Bool {
            self.k1 < k1 || (self.k1 == k1 && self.k2 < k2)
        }
    }

    /// How one listing request walks the records.
    enum Plan {
        /// The date index; `bits` (by label id) restricts labels.
        case date(bits: [UInt64]?)
        /// The status groups; `bits` restricts labels.
        case status(bits: [UInt64]?)
        /// Label groups of `order` (sorted by bytes); `bits` (by label id) restricts them.
        case labels(ChunkedIndex, bits: [UInt64]?)
        /// All candidates, already sorted in the requested order (by date or by status).
        case gathered([GatherEntry], byDate: Bool)
    }

    /// The result of a listing, as locals.
    struct LocalPage {
        var locals: [UInt32]
        var next: Bool
        var previous: Bool
    }
}

extension SCL.EventStore {
    func page(objectLabel: String?, query: StatusChangeQuery, floor: Int64,
              gatherThreshold: Int) throws(StatusChangeQueryError) -> SCL.LocalPage {
        let limit = min(max(query.limit, 1), StatusChangeQuery.maximumLimit)
        var probe: UInt32?
        var forwardPage = true
        switch query.cursor {
        case .none:
            break
        case .startAfter(let id):
            probe = try cursorLocal(id, parameter: "start_after_id", floor: floor)
        case .endBefore(let id):
            probe = try cursorLocal(id, parameter: "end_before_id", floor: floor)
            forwardPage = false
        }
        let empty = SCL.LocalPage(locals: [], next: false, previous: false)

        // Which labels take part (ids, ascending): nil for all of them.
        var selected: [UInt32]?
        let filter = query.filter.flatMap { $0.isEmpty ? nil : $0 }
        if let objectLabel {
            guard let label = labels.find(objectLabel), !labelPostings[Int(label)].isEmpty else { return empty }
            if let filter, !labelMatches(label, filter, query.filterType) { return empty }
            selected = [label]
        } else if let filter {
            selected = matchingLabels(filter, query.filterType)
        }
        if let selected, selected.isEmpty { return empty }

        let plan = makePlan(query: query, selected: selected, floor: floor, gatherThreshold: gatherThreshold)
        let ascending = query.ascending
        if forwardPage {
            let found = walk(plan, ascending: ascending, forward: true, probe: probe, limit: limit + 1, floor: floor)
            let locals = Array(found.prefix(limit))
            let next = found.count > limit
            var previous = false
            if probe != nil, let first = locals.first {
                previous = !walk(plan, ascending: ascending, forward: false, probe: first, limit: 1, floor: floor).isEmpty
            }
            return SCL.LocalPage(locals: locals, next: next, previous: previous)
        } else {
            let found = walk(plan, ascending: ascending, forward: false, probe: probe, limit: limit + 1, floor: floor)
            let locals = Array(found.prefix(limit).reversed())
            let previous = found.count > limit
            var next = false
            if let last = locals.last {
                next = !walk(plan, ascending: ascending, forward: true, probe: last, limit: 1, floor: floor).isEmpty
            }
            return SCL.LocalPage(locals: locals, next: next, previous: previous)
        }
    }

    /// The cursor's record: a status change of this event within the retention (an expired
    /// one is treated as unknown whether or not its memory was reclaimed yet).
    private func cursorLocal(_ id: Int64, parameter: String, floor: Int64) throws(StatusChangeQueryError) -> UInt32 {
        guard let local = local(ofID: id), dates[Int(local)] >= floor else {
            throw StatusChangeQueryError(
                parameter: parameter,
                message: "Invalid \(parameter) \(id): no status change with this id in event \(key) (it may have expired)")
        }
        return local
    }

    func makePlan(query: StatusChangeQuery, selected: [UInt32]?, floor: Int64, gatherThreshold: Int) -> SCL.Plan {
        guard let selected else {
            switch query.sortField {
            case .date: return .date(bits: nil)
            case .status: return .status(bits: nil)
            case .objectLabel: return .labels(labelOrder, bits: nil)
            }
        }
        if query.sortField == .objectLabel && selected.count == 1 {
            return .labels(SCL.ChunkedIndex(sorted: selected), bits: nil)
        }
        if query.sortField != .objectLabel && selected.count <= gatherThreshold {
            var candidates = 0
            for label in selected { candidates += labelPostings[Int(label)].count }
            if candidates <= gatherThreshold {
                return .gathered(gather(selected, sortField: query.sortField, ascending: query.ascending,
                                        floor: floor, capacity: candidates),
                                 byDate: query.sortField == .date)
            }
        }
        var bits = [UInt64](repeating: 0, count: (labelPostings.count + 63) / 64)
        for label in selected { bits[Int(label) >> 6] |= 1 << (UInt64(label) & 63) }
        switch query.sortField {
        case .date: return .date(bits: bits)
        case .status: return .status(bits: bits)
        case .objectLabel: return .labels(labelOrder, bits: bits)
        }
    }

    /// Up to `limit` records strictly after (`forward`) or strictly before `probe` in the
    /// requested order, nearest first; without a probe, from the start of the order.
    func walk(_ plan: SCL.Plan, ascending: Bool, forward: Bool, probe: UInt32?, limit: Int,
              floor: Int64) -> [UInt32] {
        switch plan {
        case .date(let bits):
            if let bits {
                let walker = SCL.DateWalker(index: dateIndex, dates: dates, floor: floor, limit: limit,
                                            filter: SCL.AcceptLabels(labelOf: labelOf, bits: bits))
                return walker.run(ascending: ascending, forward: forward, probe: probe)
            }
            let walker = SCL.DateWalker(index: dateIndex, dates: dates, floor: floor, limit: limit, filter: SCL.AcceptAll())
            return walker.run(ascending: ascending, forward: forward, probe: probe)
        case .status(let bits):
            let ranks = statusRank
            let probeGroup = probe.map { statusOf[Int($0)] }
            let probeRank = probeGroup.map { ranks[Int($0)] } ?? 0
            if let bits {
                var walker = SCL.GroupWalker(order: statusOrder, postings: statusPostings, dates: dates, floor: floor,
                                             limit: limit, groups: SCL.AcceptAll(),
                                             filter: SCL.AcceptLabels(labelOf: labelOf, bits: bits))
                return walker.run(ascending: ascending, forward: forward, probe: probe, probeGroup: probeGroup) {
                    ranks[Int($0)] < probeRank
                }
            }
            var walker = SCL.GroupWalker(order: statusOrder, postings: statusPostings, dates: dates, floor: floor,
                                         limit: limit, groups: SCL.AcceptAll(), filter: SCL.AcceptAll())
            return walker.run(ascending: ascending, forward: forward, probe: probe, probeGroup: probeGroup) {
                ranks[Int($0)] < probeRank
            }
        case .labels(let order, let bits):
            let pool = labels
            let probeGroup = probe.map { labelOf[Int($0)] }
            let probeLabel = probeGroup ?? 0
            if let bits {
                var walker = SCL.GroupWalker(order: order, postings: labelPostings, dates: dates, floor: floor,
                                             limit: limit, groups: SCL.AcceptBits(bits: bits), filter: SCL.AcceptAll())
                return walker.run(ascending: ascending, forward: forward, probe: probe, probeGroup: probeGroup) {
                    pool.compare($0, probeLabel) < 0
                }
            }
            var walker = SCL.GroupWalker(order: order, postings: labelPostings, dates: dates, floor: floor,
                                         limit: limit, groups: SCL.AcceptAll(), filter: SCL.AcceptAll())
            return walker.run(ascending: ascending, forward: forward, probe: probe, probeGroup: probeGroup) {
                pool.compare($0, probeLabel) < 0
            }
        case .gathered(let entries, let byDate):
            return walkGathered(entries, byDate: byDate, ascending: ascending, forward: forward, probe: probe,
                                limit: limit)
        }
    }

    // MARK: gathered candidates

    /// The live records of `selected` labels, sorted in the requested order.
    func gather(_ selected: [UInt32], sortField: StatusChangeSortField, ascending: Bool, floor: Int64,
                capacity: Int) -> [SCL.GatherEntry] {
        var entries: [SCL.GatherEntry] = []
        entries.reserveCapacity(capacity)
        let byDate = sortField == .date
        dates.withReader { dates in
            statusOf.withReader { statusOf in
                statusRank.withUnsafeBufferPointer { ranks in
                    for label in selected {
                        for local in labelPostings[Int(label)] {
                            let date = dates[Int(local)]
                            guard date >= floor else { continue }
                            let primary = byDate ? date : Int64(ranks[Int(statusOf[Int(local)])])
                            entries.append(SCL.GatherEntry(k1: ascending ? primary : ~primary,
                                                           k2: ~Int64(local), local: local))
                        }
                    }
                }
            }
        }
        entries.sort { $0.precedes($1.k1, $1.k2) }
        return entries
    }

    func walkGathered(_ entries: [SCL.GatherEntry], byDate: Bool, ascending: Bool, forward: Bool,
                      probe: UInt32?, limit: Int) -> [UInt32] {
        var out: [UInt32] = []
        guard limit > 0 else { return out }
        guard let probe else {
            if forward {
                for entry in entries.prefix(limit) { out.append(entry.local) }
            }
            return out
        }
        let index = Int(probe)
        let primary = byDate ? dates[index] : Int64(statusRank[Int(statusOf[index])])
        let k1 = ascending ? primary : ~primary
        let k2 = ~Int64(probe)
        // The first entry that does not precede the probe's key.
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) >> 1
            if entries[middle].precedes(k1, k2) { low = middle + 1 } else { high = middle }
        }
        if forward {
            var i = low
            if i < entries.count && entries[i].local == probe { i += 1 }
            while i < entries.count && out.count < limit {
                out.append(entries[i].local)
                i += 1
            }
        } else {
            var i = low - 1
            while i >= 0 && out.count < limit {
                out.append(entries[i].local)
                i -= 1
            }
        }
        return out
    }

    // MARK: label filter

    func labelMatches(_ label: UInt32, _ filter: String, _ type: StatusChangeFilterType) -> Bool {
        var filter = filter
        return filter.withUTF8 { needle in
            labels.arena.withUnsafeBytes { arena in
                let range = labels.range(label)
                return SCL.labelMatches(arena, range.lowerBound, range.upperBound, UnsafeRawBufferPointer(needle), type)
            }
        }
    }

    /// The ids (ascending) of the labels that match `filter`. Labels are scanned in id order,
    /// which reads the label arena sequentially (~100k labels: well under a millisecond).
    func matchingLabels(_ filter: String, _ type: StatusChangeFilterType) -> [UInt32] {
        var result: [UInt32] = []
        var filter = filter
        let ends = labels.ends
        filter.withUTF8 { needleBytes in
            let needle = UnsafeRawBufferPointer(needleBytes)
            switch type {
            case .matches:
                if let label = labels.find(bytes: needle) { result.append(label) }
            case .beginsWith:
                // The labels with this prefix are one run of the sorted label order.
                labels.arena.withUnsafeBytes { arena in
                    let order = labelOrder
                    var position = order.partitionPoint { label in
                        SCL.StringPool.compare(arena, ends[Int(label) - 1]..<ends[Int(label)],
                                               needle, 0..<needle.count) < 0
                    }
                    while position != order.endPosition {
                        let label = order[position]
                        if !SCL.labelMatches(arena, ends[Int(label) - 1], ends[Int(label)], needle, .beginsWith) { break }
                        result.append(label)
                        position = order.after(position)
                    }
                }
                result.sort()
            case .contains, .endsWith:
                labels.arena.withUnsafeBytes { arena in
                    ends.withUnsafeBufferPointer { ends in
                        var start = 0
                        for label in 1..<ends.count {
                            let end = ends[label]
                            if SCL.labelMatches(arena, start, end, needle, type) { result.append(UInt32(label)) }
                            start = end
                        }
                    }
                }
            }
        }
        return result
    }
}

extension SCL {
    @inline(__always)
    static func labelMatches(_ arena: UnsafeRawBufferPointer, _ start: Int, _ end: Int,
                             _ needle: UnsafeRawBufferPointer, _ type: StatusChangeFilterType) -> Bool {
        let length = end - start
        let n = needle.count
        if n > length { return false }
        @inline(__always) func equalAt(_ offset: Int) -> Bool {
            var i = 0
            while i < n {
                if arena[offset + i] != needle[i] { return false }
                i += 1
            }
            return true
        }
        switch type {
        case .matches:
            return n == length && equalAt(start)
        case .beginsWith:
            return equalAt(start)
        case .endsWith:
            return equalAt(end - n)
        case .contains:
            if n == 0 { return true }
            let first = needle[0]
            var offset = start
            let last = end - n
            while offset <= last {
                if arena[offset] == first && equalAt(offset) { return true }
                offset += 1
            }
            return false
        }
    }
}
