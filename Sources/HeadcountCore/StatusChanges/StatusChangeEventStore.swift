extension SCL {
    /// The per-record fields that only output needs (strings as ids into `EventStore.strings`).
    struct Payload: Equatable {
        /// 1…0xFFFF_FFFE as is; 0xFFFF_FFFF: the value is in `quantityOverflow`.
        var quantity: UInt32
        var orderId: UInt32         // 0: null
        var extraData: UInt32       // 0: null
        var holdToken: UInt32       // 0: null
        var displayedLabel: UInt32  // 0: same as the object label
        var ip: UInt32              // 0: none
        var origin: UInt8           // SeatOriginType raw value

        static let quantityEscape: UInt32 = 0xFFFF_FFFF
    }

    /// The latest chart.objectRemoved / chart.objectRestored of a label, by (occurredAt, sequence).
    struct Presence: Equatable {
        var time: Int64 = 0
        var sequence: UInt64 = 0
        /// 0: present; otherwise the `ChartRemovalReason` raw value.
        var removal: UInt8 = 0
    }

    /// The status changes of one event.
    ///
    /// Records are kept in acceptance (id) order in parallel arrays and addressed by their
    /// index ("local"). Three orders index them:
    /// - `dateIndex`: locals sorted by (date, local);
    /// - labels: `labelOrder` (label ids sorted by UTF-8 bytes) × `labelPostings` (each
    ///   label's locals, ascending);
    /// - statuses: `statusOrder` × `statusPostings`, likewise.
    /// Every listing order is "primary key ascending or descending, then id descending", so a
    /// group of equal keys is always walked from its newest record.
    final class EventStore {
        let key: String
        let number: Int64

        var ids = Column<Int64>()
        var dates = Column<Int64>()
        var labelOf = Column<UInt32>()
        var statusOf = Column<UInt32>()
        var payloads = Column<Payload>()
        var quantityOverflow: [UInt32: Int64] = [:]

        var labels = StringPool()
        var labelPostings: [[UInt32]] = [[]]
        /// Only labels that had a chart event (most never do).
        var presence: [UInt32: Presence] = [:]
        var labelOrder = ChunkedIndex()

        var statuses = StringPool()
        var statusPostings: [[UInt32]] = [[]]
        var statusOrder = ChunkedIndex()
        var statusRank: [UInt32] = [0]

        /// orderId, extraData, holdToken, displayedLabel (when it differs) and ip.
        var strings = StringPool()
        var dateIndex = ChunkedIndex()
        /// Records dated before the log's expiry floor: a prefix of `dateIndex`, not yet
        /// physically dropped (see `compact`).
        var deadCount = 0

        init(key: String, number: Int64) {
            self.key = key
            self.number = number
        }

        var recordCount: Int { ids.count }
        var liveCount: Int { ids.count - deadCount }

        // MARK: applying

        func labelID(_ label: String) -> UInt32 {
            let id = labels.intern(label)
            if Int(id) == labelPostings.count {
                labelPostings.append([])
                let pool = labels
                labelOrder.insert(id) { pool.compare($0, id) < 0 }
            }
            return id
        }

        func statusID(_ status: String) -> UInt32 {
            let id = statuses.intern(status)
            if Int(id) == statusPostings.count {
                statusPostings.append([])
                statusRank.append(0)
                let pool = statuses
                statusOrder.insert(id) { pool.compare($0, id) < 0 }
                rankStatuses()
            }
            return id
        }

        func rankStatuses() {
            var rank: UInt32 = 0
            statusOrder.forEach { id in
                statusRank[Int(id)] = rank
                rank += 1
            }
        }

        func append(id: Int64, date: Int64, change: SeatStatusChange) {
            let local = UInt32(truncatingIfNeeded: ids.count)
            let label = labelID(change.objectLabel)
            let status = statusID(change.status)
            var quantity = Payload.quantityEscape
            if change.quantity >= 1 && change.quantity < Int64(Payload.quantityEscape) {
                quantity = UInt32(change.quantity)
            } else {
                quantityOverflow[local] = change.quantity
            }
            let payload = Payload(
                quantity: quantity,
                orderId: change.orderId.map { strings.intern($0) } ?? 0,
                extraData: change.extraDataJSON.map { strings.intern($0) } ?? 0,
                holdToken: change.holdToken.map { strings.intern($0) } ?? 0,
                displayedLabel: change.displayedLabel == change.objectLabel ? 0 : strings.intern(change.displayedLabel),
                ip: change.originIP.map { strings.intern($0) } ?? 0,
                origin: change.originType.rawValue)
            ids.append(id)
            dates.append(date)
            labelOf.append(label)
            statusOf.append(status)
            payloads.append(payload)
            labelPostings[Int(label)].append(local)
            statusPostings[Int(status)].append(local)
            let allDates = dates
            dateIndex.insert(local) { element in
                let elementDate = allDates[Int(element)]
                return elementDate < date || (elementDate == date && element < local)
            }
        }

        func setPresence(label: String, time: Int64, sequence: UInt64, removal: UInt8) {
            let id = labelID(label)
            if let current = presence[id], (time, sequence) <= (current.time, current.sequence) { return }
            presence[id] = Presence(time: time, sequence: sequence, removal: removal)
        }

        // MARK: reading

        /// The local of the record with this id, by binary search.
        func local(ofID id: Int64) -> UInt32? {
            var low = 0
            var high = ids.count
            while low < high {
                let middle = (low + high) >> 1
                if ids[middle] < id { low = middle + 1 } else { high = middle }
            }
            return low < ids.count && ids[low] == id ? UInt32(low) : nil
        }

        func quantity(_ local: UInt32) -> Int64 {
            let stored = payloads[Int(local)].quantity
            if stored == Payload.quantityEscape { return quantityOverflow[local] ?? 1 }
            return Int64(stored)
        }

        func item(_ local: UInt32) -> StatusChangeItem {
            let index = Int(local)
            let payload = payloads[index]
            let label = labelOf[index]
            let objectLabel = labels.string(label)
            let removal = presence[label]?.removal ?? 0
            func optional(_ id: UInt32) -> String? { id == 0 ? nil : strings.string(id) }
            return StatusChangeItem(
                id: ids[index],
                eventNumber: number,
                status: statuses.string(statusOf[index]),
                quantity: quantity(local),
                objectLabel: objectLabel,
                displayedLabel: payload.displayedLabel == 0 ? objectLabel : strings.string(payload.displayedLabel),
                date: dates[index],
                orderId: optional(payload.orderId),
                extraDataJSON: optional(payload.extraData),
                holdToken: optional(payload.holdToken),
                originType: SeatOriginType(rawValue: payload.origin) ?? .apiCall,
                originIP: optional(payload.ip),
                isPresentOnChart: removal == 0,
                notPresentOnChartReason: removal == 0 ? nil : ChartRemovalReason(rawValue: removal))
        }

        // MARK: expiry

        /// Counts the records that `newFloor` kills beyond those `oldFloor` had (records dated
        /// before `oldFloor` were never added or are already counted).
        func countDead(oldFloor: Int64, newFloor: Int64) -> Int {
            guard newFloor > oldFloor else { return 0 }
            let index = dateIndex
            var killed = 0
            let dates = self.dates
            var position = index.partitionPoint { dates[Int($0)] < oldFloor }
            while position != index.endPosition && dates[Int(index[position])] < newFloor {
                killed += 1
                position = index.after(position)
            }
            deadCount += killed
            return killed
        }

        /// Drops the records dated before `floor`, renumbering locals (order preserved) and
        /// rebuilding the payload string pool. Labels and statuses stay (presence lives on).
        func compact(floor: Int64) {
            let count = ids.count
            var newLocal = [UInt32](repeating: .max, count: count)
            var kept = 0
            for local in 0..<count where dates[local] >= floor {
                newLocal[local] = UInt32(kept)
                kept += 1
            }
            var newIDs = Column<Int64>()
            var newDates = Column<Int64>()
            var newLabelOf = Column<UInt32>()
            var newStatusOf = Column<UInt32>()
            var newPayloads = Column<Payload>()
            var newOverflow: [UInt32: Int64] = [:]
            var newStrings = StringPool()
            var stringMap = [UInt32](repeating: 0, count: strings.count + 1)
            func remap(_ id: UInt32) -> UInt32 {
                if id == 0 { return 0 }
                if stringMap[Int(id)] == 0 {
                    stringMap[Int(id)] = strings.withBytes(id) { newStrings.intern(bytes: $0) }
                }
                return stringMap[Int(id)]
            }
            for local in 0..<count where newLocal[local] != .max {
                newIDs.append(ids[local])
                newDates.append(dates[local])
                newLabelOf.append(labelOf[local])
                newStatusOf.append(statusOf[local])
                var payload = payloads[local]
                payload.orderId = remap(payload.orderId)
                payload.extraData = remap(payload.extraData)
                payload.holdToken = remap(payload.holdToken)
                payload.displayedLabel = remap(payload.displayedLabel)
                payload.ip = remap(payload.ip)
                newPayloads.append(payload)
                if payload.quantity == Payload.quantityEscape {
                    newOverflow[newLocal[local]] = quantityOverflow[UInt32(local)]
                }
            }
            func remapPostings(_ postings: inout [[UInt32]]) {
                for group in postings.indices where !postings[group].isEmpty {
                    var list: [UInt32] = []
                    for local in postings[group] where newLocal[Int(local)] != .max {
                        list.append(newLocal[Int(local)])
                    }
                    postings[group] = list
                }
            }
            remapPostings(&labelPostings)
            remapPostings(&statusPostings)
            var newOrder: [UInt32] = []
            newOrder.reserveCapacity(kept)
            dateIndex.forEach { local in
                if newLocal[Int(local)] != .max { newOrder.append(newLocal[Int(local)]) }
            }
            dateIndex = ChunkedIndex(sorted: newOrder)
            ids = newIDs
            dates = newDates
            labelOf = newLabelOf
            statusOf = newStatusOf
            payloads = newPayloads
            quantityOverflow = newOverflow
            strings = newStrings
            deadCount = 0
        }

        /// Approximate heap bytes of this event.
        var footprint: Int {
            var total = ids.allocatedBytes + dates.allocatedBytes + labelOf.allocatedBytes + statusOf.allocatedBytes
            total += payloads.allocatedBytes + quantityOverflow.capacity * 24
            total += labels.footprint + statuses.footprint + strings.footprint
            total += presence.capacity * (4 + MemoryLayout<Presence>.stride + 1) + statusRank.capacity * 4
            total += labelOrder.footprint + statusOrder.footprint + dateIndex.footprint
            for list in labelPostings { total += list.capacity * 4 + 32 + 16 }
            for list in statusPostings { total += list.capacity * 4 + 32 + 16 }
            total += (labelPostings.capacity + statusPostings.capacity) * 8
            return total + 12 * 32
        }
    }
}
