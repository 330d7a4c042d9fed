import HeadcountCore

extension SplitMix64 {
    /// Uniform in `range` (the modulo bias is irrelevant here).
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        let width = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next() % width)
    }

    mutating func int64(_ range: ClosedRange<Int64>) -> Int64 {
        let width = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int64(next() % width)
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool {
        Double(next() >> 11) / Double(1 << 53) < p
    }

    mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }

    /// Picks by weight.
    mutating func weighted<T>(_ items: [(T, Int)]) -> T {
        let total = items.reduce(0) { $0 + $1.1 }
        var roll = int(0...(total - 1))
        for (item, weight) in items {
            if roll < weight { return item }
            roll -= weight
        }
        return items[items.count - 1].0
    }
}

/// A seeded random feed for the differential oracle: a few eventIds, tens to hundreds of
/// tickets each, every ticket and pass kind in realistic lifecycles plus noise (some dated weeks
/// away), ties (identical `occurredAt`), late events (hours behind), out-of-order and
/// future-dated delivery, exact duplicates, re-sent ids with other content, and seat events
/// (one eventId may have only those).
struct FeedGenerator {
    struct Delivery {
        enum Origin: Equatable {
            /// The first delivery of its id.
            case original
            /// An exact copy of an earlier delivery.
            case exactDuplicate
            /// Other content under an earlier delivery's id.
            case resentId
        }

        var event: FeedEvent
        var arrivalMilliseconds: Int64
        var origin: Origin
    }

    struct Feed {
        let seed: UInt64
        let scale: Int
        /// In arrival order; arrival milliseconds strictly increase.
        let deliveries: [Delivery]
        /// Every eventId the feed uses (including a seat-only one, if any).
        let eventIds: [String]
    }

    /// `scale` multiplies the number of tickets.
    static func generate(seed: UInt64, scale: Int = 1) -> Feed {
        var generator = FeedGenerator(seed: seed, scale: scale)
        return generator.run()
    }

    private var rng: SplitMix64
    private let seed: UInt64
    private let scale: Int
    private var nextId = 0
    /// Generated events with the key that orders their delivery.
    private var pending: [(event: FeedEvent, arrivalKey: Int64)] = []

    private init(seed: UInt64, scale: Int) {
        self.seed = seed
        self.scale = max(1, scale)
        rng = SplitMix64(seed: seed)
    }

    private mutating func newId() -> String {
        nextId += 1
        return "f-\(nextId)"
    }

    private mutating func run() -> Feed {
        let ticketEventCount = rng.int(2...3)
        var eventIds: [String] = []
        for index in 0..<ticketEventCount {
            let eventId = "EV-\(index + 1)"
            eventIds.append(eventId)
            generateEvent(eventId, origin: T0 - 2 * 86_400_000 + Int64(index) * rng.int64(0...3_600_000))
        }
        if rng.chance(0.6) {
            let eventId = "EV-seats"
            eventIds.append(eventId)
            let origin = T0 - 86_400_000
            for _ in 0..<rng.int(1...6) { addSeatEvent(eventId, at: origin + rng.int64(0...86_400_000)) }
        }
        return deliver(eventIds: eventIds)
    }

    // MARK: Events of one eventId

    private mutating func generateEvent(_ eventId: String, origin: Int64) {
        let ticketCount = rng.int(10...120) * scale
        let salesEnd = origin + 24 * 3_600_000
        let showTime = origin + 30 * 3_600_000
        var lifecycles: [[FeedEvent]] = []
        for k in 0..<ticketCount {
            lifecycles.append(ticketLifecycle(eventId, ticketId: "T\(k)", from: rng.int64(origin...salesEnd), show: showTime))
        }
        var events = lifecycles.flatMap { $0 }

        // Noise: any kind, any time (a few weeks early or late), known and unknown tickets
        // (pass-only tickets among them).
        for _ in 0..<(ticketCount / 5 + 1) {
            let ticketId = rng.chance(0.7) ? "T\(rng.int(0...(ticketCount - 1)))" : "N\(rng.int(0...(ticketCount / 3 + 1)))"
            let when = rng.weighted([("window", 95), ("weeksEarly", 3), ("weeksLate", 2)])
            let at: Int64
            switch when {
            case "weeksEarly": at = origin - rng.int64(86_400_000...60 * 86_400_000)
            case "weeksLate": at = showTime + rng.int64(86_400_000...30 * 86_400_000)
            default: at = rng.int64(origin...(showTime + 3_600_000))
            }
            events.append(randomEvent(eventId, ticketId: ticketId, at: at))
        }

        // Ties across tickets: some events take the time of another event of the same eventId.
        let times = events.map(\.occurredAt)
        for index in events.indices where rng.chance(0.06) {
            events[index].occurredAt = rng.pick(times)
        }

        for event in events { schedule(event) }
        for _ in 0..<rng.int(0...8) { addSeatEvent(eventId, at: rng.int64(origin...showTime)) }
    }

    /// The time after `t`: sometimes the same millisecond, mostly seconds to hours later.
    private mutating func after(_ t: Int64, wholeSeconds: Bool) -> Int64 {
        let short = rng.int64(1...2_000), medium = rng.int64(2_000...600_000), long = rng.int64(600_000...14_400_000)
        let gap: Int64 = rng.weighted([(0, 6), (short, 10), (medium, 50), (long, 34)])
        let next = t + gap
        return wholeSeconds ? next / 1000 * 1000 : next
    }

    private mutating func ticketLifecycle(_ eventId: String, ticketId: String, from start: Int64, show: Int64) -> [FeedEvent] {
        var events: [FeedEvent] = []
        let wholeSeconds = rng.chance(0.3)
        var t = wholeSeconds ? start / 1000 * 1000 : start
        func make(_ kind: FeedEventKind, _ at: Int64, _ details: FeedEvent.Details = .none) -> FeedEvent {
            FeedEvent(id: "", kind: kind, eventId: eventId, ticketId: ticketId, occurredAt: at, details: details)
        }

        // Creation: usually first, sometimes late, sometimes never.
        let creation = rng.weighted([("first", 85), ("late", 5), ("none", 10)])
        if creation == "first" { events.append(make(.ticketCreated, t)) }
        t = after(t, wholeSeconds: wholeSeconds)

        // Downloads on 0–3 devices, some logged out, some downloaded again.
        let deviceCount = rng.weighted([(0, 30), (1, 45), (2, 20), (3, 5)])
        for d in 0..<deviceCount {
            let device = "\(ticketId)-d\(d)"
            events.append(make(.ticketDownloaded, t, .device(device)))
            t = after(t, wholeSeconds: wholeSeconds)
            if rng.chance(0.35) {
                events.append(make(.ticketLoggedOut, t, .device(device)))
                t = after(t, wholeSeconds: wholeSeconds)
                if rng.chance(0.25) {
                    events.append(make(.ticketDownloaded, t, .device(device)))
                    t = after(t, wholeSeconds: wholeSeconds)
                }
            }
        }

        if creation == "late" { events.append(make(.ticketCreated, t)) }

        // Transfers: attempts that are accepted, cancelled or left pending.
        let attempts = rng.weighted([(0, 55), (1, 18), (2, 10), (3, 7), (4, 5), (5, 3), (6, 2)])
        for attempt in 0..<attempts {
            if rng.chance(0.92) {
                events.append(make(.transferInitiated, t))
                t = after(t, wholeSeconds: wholeSeconds)
            }
            let outcome = rng.weighted([("accepted", 75), ("cancelled", 18), ("pending", attempt == attempts - 1 ? 7 : 0)])
            if outcome == "accepted" {
                events.append(make(.transferAccepted, t))
                t = after(t, wholeSeconds: wholeSeconds)
                if rng.chance(0.4) {
                    events.append(make(.ticketDownloaded, t, .device("\(ticketId)-x\(attempt)")))
                    t = after(t, wholeSeconds: wholeSeconds)
                }
            } else if outcome == "cancelled" {
                events.append(make(.transferCancelled, t))
                t = after(t, wholeSeconds: wholeSeconds)
            }
        }

        // Wallet passes.
        for platform in PassPlatform.allCases where rng.chance(platform == .ios ? 0.35 : 0.25) {
            var pt = t
            func pass(_ kind: FeedEventKind, _ status: PassStatus?, _ reason: InvalidationReason? = nil) {
                events.append(make(kind, pt, .pass(platform, status, reason)))
                pt = after(pt, wholeSeconds: wholeSeconds)
            }
            pass(.passAdded, rng.chance(0.85) ? .active : nil)
            if platform == .ios {
                for _ in 0..<rng.weighted([(0, 60), (1, 30), (2, 10)]) { pass(.passSyncAdded, rng.chance(0.5) ? .active : nil) }
            }
            if rng.chance(0.25) { pass(.passStatusChanged, rng.pick([.inactive, .expired, .active])) }
            if rng.chance(0.2) {
                pass(.passRemoved, rng.chance(0.6) ? .deleted : nil)
                if platform == .ios && rng.chance(0.4) { pass(.passSyncRemoved, rng.chance(0.5) ? .deleted : nil) }
                if rng.chance(0.4) { pass(.passAdded, rng.chance(0.8) ? .active : nil) }
            }
            if rng.chance(0.1) { pass(.passTransferred, rng.chance(0.5) ? .inactive : nil) }
            if rng.chance(0.1) {
                pass(.passInvalidated, rng.pick([.deleted, .inactive, nil]), rng.pick([.cancellation, .deletion, .reprint, nil]))
            }
            if rng.chance(0.3) {
                pt = max(pt, show - rng.int64(0...3_600_000))
                pass(.passControlled, rng.chance(0.5) ? .active : nil)
                if rng.chance(0.1) { pass(.passControlled, nil) }
            }
            if rng.chance(0.15) { pass(.passStatusChanged, .expired) }
        }

        // Deletion, pending or not; some restored, some deleted again.
        if rng.chance(0.12) {
            events.append(make(.ticketDeleted, t, .deletion(isPending: rng.chance(0.3))))
            t = after(t, wholeSeconds: wholeSeconds)
            if rng.chance(0.3) {
                events.append(make(.ticketRestored, t))
                t = after(t, wholeSeconds: wholeSeconds)
                if rng.chance(0.2) {
                    events.append(make(.ticketDeleted, t, .deletion(isPending: rng.chance(0.5))))
                    t = after(t, wholeSeconds: wholeSeconds)
                }
            }
        }

        // Event day: activation (sometimes twice, the second possibly earlier in time) and
        // access control.
        var dayTime = max(t, show - rng.int64(0...7_200_000))
        if wholeSeconds { dayTime = dayTime / 1000 * 1000 }
        if rng.chance(0.45) {
            let mode: ActivationMode = rng.weighted([(.online, 50), (.offline, 20), (.manual, 15), (.bluetooth, 15)])
            events.append(make(.ticketActivated, dayTime, .activation(mode)))
            if rng.chance(0.2) {
                let other: ActivationMode = rng.pick(ActivationMode.allCases)
                let otherTime = rng.chance(0.5) ? dayTime - rng.int64(0...600_000) : after(dayTime, wholeSeconds: wholeSeconds)
                events.append(make(.ticketActivated, otherTime, .activation(other)))
            }
            dayTime = after(dayTime, wholeSeconds: wholeSeconds)
        }
        if rng.chance(0.35) {
            events.append(make(.ticketControlled, dayTime))
            if rng.chance(0.1) { events.append(make(.ticketControlled, after(dayTime, wholeSeconds: wholeSeconds))) }
        }
        return events
    }

    /// Any ticket or pass kind, with plausible details (never a sync kind on android, which
    /// the decoder rejects).
    private mutating func randomEvent(_ eventId: String, ticketId: String, at: Int64) -> FeedEvent {
        let kind = rng.pick(FeedEventKind.allCases.filter(\.isTicketOrPass))
        var details: FeedEvent.Details = .none
        switch kind {
        case .ticketDeleted:
            details = .deletion(isPending: rng.chance(0.3))
        case .ticketDownloaded, .ticketLoggedOut:
            details = .device(rng.chance(0.5) ? "\(ticketId)-d0" : "noise-\(rng.int(0...3))")
        case .ticketActivated:
            details = .activation(rng.pick(ActivationMode.allCases))
        case _ where kind.isPass:
            let platform: PassPlatform = (kind == .passSyncAdded || kind == .passSyncRemoved) ? .ios : rng.pick(PassPlatform.allCases)
            let status: PassStatus? = kind == .passStatusChanged ? rng.pick(PassStatus.allCases)
                : (rng.chance(0.5) ? rng.pick(PassStatus.allCases) : nil)
            let reason: InvalidationReason? = kind == .passInvalidated ? rng.pick([.cancellation, .deletion, .reprint, nil]) : nil
            details = .pass(platform, status, reason)
        default:
            break
        }
        return FeedEvent(id: "", kind: kind, eventId: eventId, ticketId: ticketId, occurredAt: at, details: details)
    }

    private mutating func addSeatEvent(_ eventId: String, at: Int64) {
        let label = "A-\(rng.int(1...20))"
        let event: FeedEvent
        switch rng.int(0...5) {
        case 0:
            event = FeedEvent(id: "", kind: .chartObjectRemoved, eventId: eventId, ticketId: "", occurredAt: at,
                              details: .chartObject(label: label, removalReason: rng.pick(ChartRemovalReason.allCases)))
        case 1:
            event = FeedEvent(id: "", kind: .chartObjectRestored, eventId: eventId, ticketId: "", occurredAt: at,
                              details: .chartObject(label: label, removalReason: nil))
        default:
            event = FeedEvent(id: "", kind: .seatStatusChanged, eventId: eventId, ticketId: "", occurredAt: at,
                              details: .seatStatus(SeatStatusChange(
                                  objectLabel: label, status: rng.pick(["free", "booked", "reservedByToken", "resale"]),
                                  orderId: rng.chance(0.5) ? "order-\(rng.int(1...50))" : nil,
                                  originType: rng.pick(SeatOriginType.allCases))))
        }
        schedule(event)
    }

    // MARK: Delivery

    /// Gives the event its id and a delivery key: mostly soon after it happened, sometimes
    /// minutes or hours late, sometimes at a random time (before it happened, even).
    private mutating func schedule(_ event: FeedEvent) {
        var event = event
        event.id = newId()
        let soon = rng.int64(0...3_000), minutes = rng.int64(3_000...600_000)
        let hours = rng.int64(3_600_000...21_600_000), anytime = rng.int64(-43_200_000...43_200_000)
        let delay: Int64 = rng.weighted([(soon, 80), (minutes, 10), (hours, 7), (anytime, 3)])
        pending.append((event, event.occurredAt + delay))
    }

    private mutating func deliver(eventIds: [String]) -> Feed {
        // Arrival order: by delivery key, ties by generation order.
        let ordered = pending.enumerated().sorted { ($0.element.arrivalKey, $0.offset) < ($1.element.arrivalKey, $1.offset) }
        var deliveries = ordered.map { Delivery(event: $0.element.event, arrivalMilliseconds: $0.element.arrivalKey, origin: .original) }

        // Exact duplicates and re-sent ids with other content, a little later in the stream.
        let originals = deliveries
        var insertions: [(position: Int, delivery: Delivery)] = []
        for (index, original) in originals.enumerated() {
            if rng.chance(0.04) {
                insertions.append((min(originals.count, index + rng.int(1...200)),
                                   Delivery(event: original.event, arrivalMilliseconds: 0, origin: .exactDuplicate)))
            }
            if rng.chance(0.015) {
                var other = rng.pick(originals).event
                other.id = original.event.id
                insertions.append((min(originals.count, index + rng.int(1...200)),
                                   Delivery(event: other, arrivalMilliseconds: 0, origin: .resentId)))
            }
        }
        for insertion in insertions.sorted(by: { $0.position > $1.position }) {
            deliveries.insert(insertion.delivery, at: insertion.position)
        }

        // Strictly increasing arrival times (an inserted copy arrives just after its predecessor).
        var last = Int64.min
        for index in deliveries.indices {
            let key = deliveries[index].arrivalMilliseconds
            last = (last == Int64.min) ? key : max(last + 1, key)
            deliveries[index].arrivalMilliseconds = last
        }
        return Feed(seed: seed, scale: scale, deliveries: deliveries, eventIds: eventIds)
    }
}

/// One line describing a feed event, for failure reports.
func describeEvent(_ event: FeedEvent) -> String {
    var text = "\(event.id) \(event.kind.typeName) \(event.eventId)"
    if !event.ticketId.isEmpty { text += "/\(event.ticketId)" }
    text += " at \(describeInstant(event.occurredAt))"
    switch event.details {
    case .none: break
    case .deletion(let pending): if pending { text += " pending" }
    case .device(let device): text += " device=\(device)"
    case .activation(let mode): text += " mode=\(mode.name)"
    case .pass(let platform, let status, let reason):
        text += " \(platform.name)"
        if let status { text += " \(status.name)" }
        if let reason { text += " reason=\(reason.name)" }
    case .seatStatus(let change): text += " \(change.objectLabel)=\(change.status)"
    case .chartObject(let label, let reason): text += " \(label) \(reason?.name ?? "restored")"
    }
    return text
}
