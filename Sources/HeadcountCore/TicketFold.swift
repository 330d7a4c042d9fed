/// A ticket's state at one instant, folded from its own events in (occurredAt, sequence)
/// order (SPEC §3), and the contribution that state makes to its event's counters.
///
/// The contribution of a ticket is a bit mask over the 27 *state* counters (`StateBit`): bit
/// set means the ticket adds 1 to that counter. Counters that count *actions* (wallet
/// actions, transfer operations) are never in a mask; a `DeltaRecord`'s action slot carries
/// them instead.
struct TicketFold {
    var exists = false
    var isDeleted = false
    var isEverDownloaded = false
    var isTransferPending = false
    var isControlled = false
    var activation: ActivationMode?
    var successfulTransfers = 0
    var iosPassStatus: PassStatus?
    var androidPassStatus: PassStatus?
    var isIOSPassControlled = false
    var isAndroidPassControlled = false

    /// The state packed into 32 bits, with the number of devices holding the ticket, so the
    /// common case — an event after all of its ticket's others — needs no walk of the history.
    /// Bits: 0 exists, 1 deleted, 2 ever downloaded, 3 transfer pending, 4 controlled, 5 ios
    /// pass controlled, 6 android pass controlled, 7–9 activation, 10–12 ios status, 13–15
    /// android status, 16–18 transfers (saturating at 4, all a count can tell), 19–31 device
    /// count; `TicketFold.unpackable` when the count does not fit (the slow path then applies).
    func packed(deviceCount: Int) -> UInt32 {
        guard deviceCount < 8191 else { return TicketFold.unpackable }
        var word: UInt32 = 0
        if exists { word |= 1 }
        if isDeleted { word |= 1 << 1 }
        if isEverDownloaded { word |= 1 << 2 }
        if isTransferPending { word |= 1 << 3 }
        if isControlled { word |= 1 << 4 }
        if isIOSPassControlled { word |= 1 << 5 }
        if isAndroidPassControlled { word |= 1 << 6 }
        word |= UInt32(activation?.rawValue ?? 0) << 7
        word |= UInt32(iosPassStatus?.rawValue ?? 0) << 10
        word |= UInt32(androidPassStatus?.rawValue ?? 0) << 13
        word |= UInt32(min(successfulTransfers, 4)) << 16
        word |= UInt32(deviceCount) << 19
        return word
    }

    static let unpackable: UInt32 = .max

    init() {}

    /// Unpacks `packed(deviceCount:)`; the device count comes back separately.
    init(packed word: UInt32) {
        exists = word & 1 != 0
        isDeleted = word & (1 << 1) != 0
        isEverDownloaded = word & (1 << 2) != 0
        isTransferPending = word & (1 << 3) != 0
        isControlled = word & (1 << 4) != 0
        isIOSPassControlled = word & (1 << 5) != 0
        isAndroidPassControlled = word & (1 << 6) != 0
        activation = ActivationMode(rawValue: UInt8((word >> 7) & 0x7))
        iosPassStatus = PassStatus(rawValue: UInt8((word >> 10) & 0x7))
        androidPassStatus = PassStatus(rawValue: UInt8((word >> 13) & 0x7))
        successfulTransfers = Int((word >> 16) & 0x7)
    }

    /// Applies one history entry. `devices` is the set of device hashes holding the ticket;
    /// it lives outside the struct so that a fold allocates nothing (the caller reuses it).
    @inline(__always)
    mutating func apply(kind: FeedEventKind, argument: UInt8, device: UInt64, devices: inout [UInt64]) {
        exists = true
        switch kind {
        case .ticketCreated:
            break
        case .ticketDeleted:
            isDeleted = true
        case .ticketRestored:
            isDeleted = false
        case .ticketDownloaded:
            isEverDownloaded = true
            if !devices.contains(device) { devices.append(device) }
        case .ticketLoggedOut:
            if let position = devices.firstIndex(of: device) { devices.swapAt(position, devices.count - 1); devices.removeLast() }
        case .transferInitiated:
            isTransferPending = true
        case .transferAccepted:
            isTransferPending = false
            successfulTransfers += 1
        case .transferCancelled:
            isTransferPending = false
        case .ticketControlled:
            isControlled = true
        case .ticketActivated:
            if activation == nil { activation = ActivationMode(rawValue: argument) }
        case .passAdded, .passSyncAdded, .passRemoved, .passSyncRemoved, .passControlled,
             .passInvalidated, .passTransferred, .passStatusChanged:
            let argument = PassArgument(rawValue: argument)
            let isIOS = argument.platform == .ios
            if let status = argument.status {
                if isIOS { iosPassStatus = status } else { androidPassStatus = status }
            }
            if kind == .passControlled {
                if isIOS { isIOSPassControlled = true } else { isAndroidPassControlled = true }
            }
        case .seatStatusChanged, .chartObjectRemoved, .chartObjectRestored:
            preconditionFailure("seat kinds are not ticket history")
        }
    }

    /// The contribution mask of this state (0 for a ticket that does not exist yet).
    @inline(__always)
    func contribution(deviceCount: Int) -> UInt64 {
        guard exists else { return 0 }
        var mask: UInt64 = TicketFold.bit(.totalTickets)
        if isDeleted {
            mask |= TicketFold.bit(.deletedTickets)
        } else {
            mask |= TicketFold.bit(.validTickets)
            mask |= deviceCount > 0 ? TicketFold.bit(.downloadedTickets) : TicketFold.bit(.notDownloadedTickets)
            if !isEverDownloaded { mask |= TicketFold.bit(.neverDownloadedTickets) }
            if isTransferPending { mask |= TicketFold.bit(.pendingTransferTickets) }
            if isControlled { mask |= TicketFold.bit(.controlledTickets) }
            if let activation {
                mask |= TicketFold.bit(.activatedTickets)
                if activation == .offline { mask |= TicketFold.bit(.offlineActivatedTickets) }
                if activation == .manual { mask |= TicketFold.bit(.manualActivatedTickets) }
            } else {
                mask |= TicketFold.bit(.notActivatedTickets)
            }
        }
        switch successfulTransfers {
        case 0: mask |= TicketFold.bit(.neverTransferred)
        case 1: mask |= TicketFold.bit(.transferredOnce)
        case 2: mask |= TicketFold.bit(.transferredTwice)
        case 3: mask |= TicketFold.bit(.transferred3Times)
        default: mask |= TicketFold.bit(.transferred4PlusTimes)
        }
        if isIOSPassControlled { mask |= TicketFold.bit(.iosPassControlled) }
        if isAndroidPassControlled { mask |= TicketFold.bit(.androidPassControlled) }
        // Status raw values are 1...4, in the same order as the counters from ...Active.
        if let status = iosPassStatus {
            mask |= 1 << UInt64(StatisticsCounter.iosPassActive.rawValue + Int(status.rawValue) - 1)
        }
        if let status = androidPassStatus {
            mask |= 1 << UInt64(StatisticsCounter.androidPassActive.rawValue + Int(status.rawValue) - 1)
        }
        return mask
    }

    @inline(__always)
    static func bit(_ counter: StatisticsCounter) -> UInt64 {
        assert(counter.rawValue < StatisticsCounter.stateCount, "only state counters have a mask bit")
        return 1 << UInt64(counter.rawValue)
    }

    /// The counter an event of this kind counts once as an action (a wallet action or a
    /// successful transfer), or `DeltaRecord.noAction`.
    static func actionSlot(kind: FeedEventKind, argument: UInt8) -> UInt8 {
        if kind == .transferAccepted { return UInt8(StatisticsCounter.totalTransferOperations.rawValue) }
        guard kind.isPass else { return DeltaRecord.noAction }
        let isIOS = PassArgument(rawValue: argument).platform == .ios
        let counter: StatisticsCounter?
        switch kind {
        case .passAdded: counter = isIOS ? .iosPassAdded : .androidPassAdded
        case .passSyncAdded: counter = isIOS ? .iosPassSyncAdded : nil
        case .passRemoved: counter = isIOS ? .iosPassRemoved : .androidPassRemoved
        case .passSyncRemoved: counter = isIOS ? .iosPassSyncRemoved : nil
        case .passInvalidated: counter = isIOS ? .iosPassInvalidated : .androidPassInvalidated
        case .passTransferred: counter = isIOS ? .iosPassTransferred : .androidPassTransferred
        default: counter = nil
        }
        return counter.map { UInt8($0.rawValue) } ?? DeltaRecord.noAction
    }
}

/// The state counters' bits in a contribution mask (bit `i` is counter slot `i`).
enum StateBit {
    static let count = StatisticsCounter.stateCount
    static let allBits: UInt64 = (1 << UInt64(StatisticsCounter.stateCount)) - 1
}

/// The one-byte argument of a pass history entry: platform (bits 0–1), status (bits 2–4),
/// invalidation reason (bits 5–6). Zero bits mean "not given".
struct PassArgument {
    var rawValue: UInt8

    init(rawValue: UInt8) { self.rawValue = rawValue }

    init(platform: PassPlatform, status: PassStatus?, reason: InvalidationReason?) {
        rawValue = platform.rawValue | ((status?.rawValue ?? 0) << 2) | ((reason?.rawValue ?? 0) << 5)
    }

    var platform: PassPlatform { PassPlatform(rawValue: rawValue & 0x3) ?? .ios }
    var status: PassStatus? { PassStatus(rawValue: (rawValue >> 2) & 0x7) }
    var reason: InvalidationReason? { InvalidationReason(rawValue: (rawValue >> 5) & 0x3) }
}

extension FeedEvent {
    /// The history argument byte and device hash of a ticket or pass event.
    var historyArgument: (argument: UInt8, device: UInt64) {
        switch details {
        case .deletion(let isPending): return (isPending ? 1 : 0, 0)
        case .device(let deviceId): return (0, Hash128.hash(deviceId).low)
        case .activation(let mode): return (mode.rawValue, 0)
        case .pass(let platform, let status, let reason):
            return (PassArgument(platform: platform, status: status, reason: reason).rawValue, 0)
        case .none, .seatStatus, .chartObject: return (0, 0)
        }
    }
}
