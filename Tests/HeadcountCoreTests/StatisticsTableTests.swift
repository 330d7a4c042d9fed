import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

// Table-driven tests of SPEC §3 (ticket semantics) and §4 (every counter of the
// event-statistics table), each scenario with hand-computed expected values, run against
// both the reference model and the engine:
//
//   swift test --filter StatisticsTableModelTests    the reference model alone
//   swift test --filter StatisticsTableEngineTests   the engine alone
//
// `HEADCOUNT_SKIP_ENGINE=1` skips every engine test (while the engine is a stub).

/// What the table and oracle tests drive: the engine or the reference model.
protocol StatisticsSubject: AnyObject {
    func admit(id: String, arrivalMilliseconds: Int64) -> Bool
    func apply(_ event: FeedEvent, sequence: UInt64)
    func statistics(eventId: String, at: Int64) -> EventStatistics?
}

extension Engine: StatisticsSubject {}
extension ReferenceModel: StatisticsSubject {}

func skipEngineIfAsked() throws {
    if let value = ProcessInfo.processInfo.environment["HEADCOUNT_SKIP_ENGINE"], !value.isEmpty, value != "0" {
        throw XCTSkip("HEADCOUNT_SKIP_ENGINE is set")
    }
}

// MARK: - Building feed events

/// 2025-05-21T06:00:00.000Z.
let T0: Int64 = 1_747_807_200_000
/// T0 + `seconds`.
func s(_ seconds: Int64) -> Int64 { T0 + seconds * 1000 }
/// A `dateTime` in the far future (the latest RFC 3339 instant with a 4-digit year).
let farFuture: Int64 = 253_402_300_799_999

/// Feed event builders. An empty `id` is filled in by the scenario runner.
enum Feed {
    static func ticket(_ kind: FeedEventKind, _ ticketId: String, _ at: Int64, event: String = "E1",
                       id: String = "", _ details: FeedEvent.Details = .none) -> FeedEvent {
        FeedEvent(id: id, kind: kind, eventId: event, ticketId: ticketId, occurredAt: at, details: details)
    }
    static func created(_ t: String, _ at: Int64, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketCreated, t, at, event: event, id: id)
    }
    static func deleted(_ t: String, _ at: Int64, pending: Bool = false, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketDeleted, t, at, event: event, id: id, .deletion(isPending: pending))
    }
    static func restored(_ t: String, _ at: Int64, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketRestored, t, at, event: event, id: id)
    }
    static func downloaded(_ t: String, _ at: Int64, device: String, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketDownloaded, t, at, event: event, id: id, .device(device))
    }
    static func loggedOut(_ t: String, _ at: Int64, device: String, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketLoggedOut, t, at, event: event, id: id, .device(device))
    }
    static func initiated(_ t: String, _ at: Int64, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.transferInitiated, t, at, event: event, id: id)
    }
    static func accepted(_ t: String, _ at: Int64, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.transferAccepted, t, at, event: event, id: id)
    }
    static func cancelled(_ t: String, _ at: Int64, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.transferCancelled, t, at, event: event, id: id)
    }
    static func controlled(_ t: String, _ at: Int64, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketControlled, t, at, event: event, id: id)
    }
    static func activated(_ t: String, _ at: Int64, _ mode: ActivationMode, event: String = "E1", id: String = "") -> FeedEvent {
        ticket(.ticketActivated, t, at, event: event, id: id, .activation(mode))
    }
    static func pass(_ kind: FeedEventKind, _ t: String, _ at: Int64, _ platform: PassPlatform,
                     _ status: PassStatus? = nil, reason: InvalidationReason? = nil,
                     event: String = "E1", id: String = "") -> FeedEvent {
        precondition(kind.isPass)
        return ticket(kind, t, at, event: event, id: id, .pass(platform, status, reason))
    }
    static func seat(_ at: Int64, label: String = "A-1", status: String = "booked", event: String = "E1", id: String = "") -> FeedEvent {
        FeedEvent(id: id, kind: .seatStatusChanged, eventId: event, ticketId: "", occurredAt: at,
                  details: .seatStatus(SeatStatusChange(objectLabel: label, status: status, originType: .apiCall, originIP: "10.0.0.1")))
    }
    static func chartRemoved(_ at: Int64, label: String = "A-1", event: String = "E1", id: String = "") -> FeedEvent {
        FeedEvent(id: id, kind: .chartObjectRemoved, eventId: event, ticketId: "", occurredAt: at,
                  details: .chartObject(label: label, removalReason: .renamedOrDeleted))
    }
    static func chartRestored(_ at: Int64, label: String = "A-1", event: String = "E1", id: String = "") -> FeedEvent {
        FeedEvent(id: id, kind: .chartObjectRestored, eventId: event, ticketId: "", occurredAt: at,
                  details: .chartObject(label: label, removalReason: nil))
    }
}

// MARK: - Scenarios

typealias Counts = [StatisticsCounter: Int64]

/// `n` valid tickets with nothing done to them.
func plain(_ n: Int64) -> Counts {
    [.totalTickets: n, .validTickets: n, .notDownloadedTickets: n, .neverDownloadedTickets: n,
     .notActivatedTickets: n, .neverTransferred: n]
}

/// `n` deleted tickets never transferred.
func onlyDeleted(_ n: Int64) -> Counts {
    [.totalTickets: n, .deletedTickets: n, .neverTransferred: n]
}

extension Dictionary where Key == StatisticsCounter, Value == Int64 {
    /// These counts with `other`'s values added to them.
    static func + (lhs: Counts, rhs: Counts) -> Counts { lhs.merging(rhs) { $0 + $1 } }
}

struct Scenario {
    enum Step {
        /// Admit (expected new) and apply.
        case send(FeedEvent)
        /// Admit, expected to be refused as a duplicate; not applied.
        case duplicate(FeedEvent)
        /// The statistics of `eventId` at `at`: `expected` lists every non-zero counter; nil
        /// `expected` means the eventId is unknown (nil answer).
        case check(eventId: String, at: Int64, expected: Counts?, updatedAt: Int64?)
    }

    let name: String
    let steps: [Step]
}

extension Scenario.Step {
    static func check(_ at: Int64, _ expected: Counts, updatedAt: Int64?, event: String = "E1") -> Scenario.Step {
        .check(eventId: event, at: at, expected: expected, updatedAt: updatedAt)
    }
    static func unknown(_ event: String, at: Int64 = farFuture) -> Scenario.Step {
        .check(eventId: event, at: at, expected: nil, updatedAt: nil)
    }
}

enum Scenarios {
    typealias Step = Scenario.Step

    static let createdTicket = Scenario(name: "createdTicket", steps: [
        .send(Feed.created("T1", s(10))),
        .check(s(10) - 1, [:], updatedAt: nil),
        .check(s(10), plain(1), updatedAt: s(10)),
        .check(farFuture, plain(1), updatedAt: s(10)),
    ])

    static let deletedTickets = Scenario(name: "deletedTickets", steps: [
        .send(Feed.created("T1", s(0))),
        .send(Feed.created("T2", s(1))),
        .send(Feed.deleted("T1", s(20))),
        .check(s(20) - 1, plain(2), updatedAt: s(1)),
        .check(s(20), [.totalTickets: 2, .validTickets: 1, .deletedTickets: 1, .notDownloadedTickets: 1,
                       .neverDownloadedTickets: 1, .notActivatedTickets: 1, .neverTransferred: 2], updatedAt: s(20)),
    ])

    /// A pending deletion counts as deleted, and a deleted ticket leaves every valid counter.
    static let pendingDeletion = Scenario(name: "pendingDeletion", steps: [
        .send(Feed.created("T1", s(0))),
        .send(Feed.downloaded("T1", s(1), device: "d1")),
        .send(Feed.activated("T1", s(2), .offline)),
        .send(Feed.controlled("T1", s(3))),
        .send(Feed.initiated("T1", s(4))),
        .send(Feed.deleted("T1", s(10), pending: true)),
        .check(s(10) - 1, [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1, .pendingTransferTickets: 1,
                           .controlledTickets: 1, .activatedTickets: 1, .offlineActivatedTickets: 1,
                           .neverTransferred: 1], updatedAt: s(4)),
        .check(s(10), onlyDeleted(1), updatedAt: s(10)),
    ])

    static let restore = Scenario(name: "restore", steps: [
        .send(Feed.created("T1", s(0))),
        .send(Feed.deleted("T1", s(10))),
        .send(Feed.restored("T1", s(20))),
        .send(Feed.deleted("T1", s(30), pending: true)),
        .send(Feed.restored("T1", s(40))),
        .send(Feed.deleted("T1", s(50))),
        .send(Feed.deleted("T1", s(60))),
        .send(Feed.restored("T1", s(70))),
        // A restore with nothing to undo, alone in its event: the ticket exists and is valid.
        .send(Feed.restored("T2", s(5), event: "E2")),
        .check(s(0), plain(1), updatedAt: s(0)),
        .check(s(10), onlyDeleted(1), updatedAt: s(10)),
        .check(s(20) - 1, onlyDeleted(1), updatedAt: s(10)),
        .check(s(20), plain(1), updatedAt: s(20)),
        .check(s(30), onlyDeleted(1), updatedAt: s(30)),
        .check(s(40), plain(1), updatedAt: s(40)),
        .check(s(50), onlyDeleted(1), updatedAt: s(50)),
        .check(s(60), onlyDeleted(1), updatedAt: s(60)),
        .check(s(70) - 1, onlyDeleted(1), updatedAt: s(60)),
        .check(s(70), plain(1), updatedAt: s(70)),
        .check(farFuture, plain(1), updatedAt: s(5), event: "E2"),
    ])

    /// A ticket whose earliest event is its deletion exists, deleted; a later creation does not
    /// restore it.
    static let deletedFirst = Scenario(name: "deletedFirst", steps: [
        .send(Feed.deleted("T1", s(10))),
        .send(Feed.created("T1", s(20))),
        .check(s(10) - 1, [:], updatedAt: nil),
        .check(s(10), onlyDeleted(1), updatedAt: s(10)),
        .check(s(20), onlyDeleted(1), updatedAt: s(20)),
    ])

    static let downloadTwoDevices: Scenario = {
        let downloaded: Counts = [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1,
                                  .notActivatedTickets: 1, .neverTransferred: 1]
        let loggedOff: Counts = [.totalTickets: 1, .validTickets: 1, .notDownloadedTickets: 1,
                                 .notActivatedTickets: 1, .neverTransferred: 1]
        return Scenario(name: "downloadTwoDevices", steps: [
            .send(Feed.created("T1", s(0))),
            .send(Feed.downloaded("T1", s(10), device: "d1")),
            .send(Feed.downloaded("T1", s(20), device: "d2")),
            .send(Feed.loggedOut("T1", s(30), device: "d1")),
            .send(Feed.loggedOut("T1", s(40), device: "d2")),
            .send(Feed.downloaded("T1", s(50), device: "d1")),
            .send(Feed.loggedOut("T1", s(60), device: "d9")),  // a device it was never on
            .check(s(10) - 1, plain(1), updatedAt: s(0)),
            .check(s(10), downloaded, updatedAt: s(10)),
            .check(s(20), downloaded, updatedAt: s(20)),
            .check(s(30), downloaded, updatedAt: s(30)),
            .check(s(40) - 1, downloaded, updatedAt: s(30)),
            .check(s(40), loggedOff, updatedAt: s(40)),
            .check(s(50) - 1, loggedOff, updatedAt: s(40)),
            .check(s(50), downloaded, updatedAt: s(50)),
            .check(s(60), downloaded, updatedAt: s(60)),
            // The same device twice is one device: one logout empties the set.
            .send(Feed.downloaded("T1", s(0), device: "d1", event: "E2")),
            .send(Feed.downloaded("T1", s(1), device: "d1", event: "E2")),
            .send(Feed.loggedOut("T1", s(2), device: "d1", event: "E2")),
            .check(s(1), downloaded, updatedAt: s(1), event: "E2"),
            .check(s(2), loggedOff, updatedAt: s(2), event: "E2"),
            // A logout alone is no download.
            .send(Feed.loggedOut("T1", s(0), device: "d1", event: "E3")),
            .check(farFuture, plain(1), updatedAt: s(0), event: "E3"),
        ])
    }()

    static let neverVersusNotDownloaded = Scenario(name: "neverVersusNotDownloaded", steps: [
        .send(Feed.created("T1", s(0))),                       // never downloaded
        .send(Feed.created("T2", s(0))),                       // downloaded, then logged off
        .send(Feed.downloaded("T2", s(1), device: "d1")),
        .send(Feed.loggedOut("T2", s(2), device: "d1")),
        .send(Feed.downloaded("T3", s(3), device: "d1")),      // downloaded, no ticket.created
        .send(Feed.created("T4", s(0))),                       // downloaded, then deleted
        .send(Feed.downloaded("T4", s(1), device: "d1")),
        .send(Feed.deleted("T4", s(4))),
        .send(Feed.created("T5", s(0))),                       // never downloaded, deleted
        .send(Feed.deleted("T5", s(4))),
        .check(s(1), [.totalTickets: 4, .validTickets: 4, .downloadedTickets: 2, .notDownloadedTickets: 2,
                      .neverDownloadedTickets: 2, .notActivatedTickets: 4, .neverTransferred: 4], updatedAt: s(1)),
        .check(farFuture, [.totalTickets: 5, .validTickets: 3, .deletedTickets: 2, .downloadedTickets: 1,
                           .notDownloadedTickets: 2, .neverDownloadedTickets: 1, .notActivatedTickets: 3,
                           .neverTransferred: 5], updatedAt: s(4)),
    ])

    static let pendingTransfer: Scenario = {
        let oneValid: Counts = [.totalTickets: 2, .validTickets: 1, .deletedTickets: 1, .notDownloadedTickets: 1,
                                .neverDownloadedTickets: 1, .notActivatedTickets: 1]
        return Scenario(name: "pendingTransfer", steps: [
            .send(Feed.created("T1", s(0))),
            .send(Feed.initiated("T1", s(10))),
            .send(Feed.accepted("T1", s(20))),
            .send(Feed.initiated("T1", s(30))),
            .send(Feed.cancelled("T1", s(40))),
            .send(Feed.initiated("T1", s(50))),
            .send(Feed.created("T2", s(0))),
            .send(Feed.initiated("T2", s(10))),
            .send(Feed.deleted("T2", s(15))),
            .check(s(10) - 1, plain(2), updatedAt: s(0)),
            .check(s(10), plain(2) + [.pendingTransferTickets: 2], updatedAt: s(10)),
            // A deleted ticket's pending transfer is not counted; neither is a pending transfer a transfer.
            .check(s(15), oneValid + [.neverTransferred: 2, .pendingTransferTickets: 1], updatedAt: s(15)),
            .check(s(20), oneValid + [.neverTransferred: 1, .transferredOnce: 1, .totalTransferOperations: 1], updatedAt: s(20)),
            .check(s(30), oneValid + [.neverTransferred: 1, .transferredOnce: 1, .totalTransferOperations: 1,
                                      .pendingTransferTickets: 1], updatedAt: s(30)),
            .check(s(40), oneValid + [.neverTransferred: 1, .transferredOnce: 1, .totalTransferOperations: 1], updatedAt: s(40)),
            .check(s(50), oneValid + [.neverTransferred: 1, .transferredOnce: 1, .totalTransferOperations: 1,
                                      .pendingTransferTickets: 1], updatedAt: s(50)),
        ])
    }()

    /// Tickets A0…A5 with 0…5 successful transfers, D2 and D5 deleted with 2 and 5 (D5's
    /// transfers accepted with no initiation and no creation), X with a transfer pending only.
    static let transferBuckets: Scenario = {
        var steps: [Step] = []
        for k in 0...5 {
            steps.append(.send(Feed.created("A\(k)", s(0))))
            for j in 0..<Int64(k) {
                steps.append(.send(Feed.initiated("A\(k)", s(10 * (j + 1)))))
                steps.append(.send(Feed.accepted("A\(k)", s(10 * (j + 1) + 5))))
            }
        }
        steps += [
            .send(Feed.created("D2", s(0))),
            .send(Feed.accepted("D2", s(15))),
            .send(Feed.accepted("D2", s(25))),
            .send(Feed.deleted("D2", s(100))),
            .send(Feed.deleted("D5", s(100))),
            .send(Feed.accepted("D5", s(55))),
            .send(Feed.accepted("D5", s(45))),
            .send(Feed.accepted("D5", s(35))),
            .send(Feed.accepted("D5", s(25))),
            .send(Feed.accepted("D5", s(15))),
            .send(Feed.created("X", s(0))),
            .send(Feed.initiated("X", s(10))),
        ]
        let valid9: Counts = [.totalTickets: 9, .validTickets: 9, .notDownloadedTickets: 9,
                              .neverDownloadedTickets: 9, .notActivatedTickets: 9]
        steps += [
            .check(s(30), valid9 + [.pendingTransferTickets: 4, .neverTransferred: 2, .transferredOnce: 1,
                                    .transferredTwice: 6, .totalTransferOperations: 13], updatedAt: s(30)),
            .check(s(56), valid9 + [.pendingTransferTickets: 1, .neverTransferred: 2, .transferredOnce: 1,
                                    .transferredTwice: 2, .transferred3Times: 1, .transferred4PlusTimes: 3,
                                    .totalTransferOperations: 22], updatedAt: s(55)),
            .check(farFuture, [.totalTickets: 9, .validTickets: 7, .deletedTickets: 2, .notDownloadedTickets: 7,
                               .neverDownloadedTickets: 7, .notActivatedTickets: 7, .pendingTransferTickets: 1,
                               .neverTransferred: 2, .transferredOnce: 1, .transferredTwice: 2,
                               .transferred3Times: 1, .transferred4PlusTimes: 3,
                               .totalTransferOperations: 22], updatedAt: s(100)),
        ]
        return Scenario(name: "transferBuckets", steps: steps)
    }()

    static let controlled = Scenario(name: "controlled", steps: [
        .send(Feed.created("T1", s(0))),
        .send(Feed.controlled("T1", s(10))),
        .send(Feed.controlled("T1", s(20))),
        .send(Feed.controlled("T2", s(5))),
        .send(Feed.deleted("T2", s(30))),
        .send(Feed.created("T3", s(0))),
        .check(s(10), plain(3) + [.controlledTickets: 2], updatedAt: s(10)),
        .check(s(30), [.totalTickets: 3, .validTickets: 2, .deletedTickets: 1, .notDownloadedTickets: 2,
                       .neverDownloadedTickets: 2, .notActivatedTickets: 2, .neverTransferred: 3,
                       .controlledTickets: 1], updatedAt: s(30)),
        .send(Feed.restored("T2", s(40))),
        .check(s(40), plain(3) + [.controlledTickets: 2], updatedAt: s(40)),
    ])

    static let activationModes = Scenario(name: "activationModes", steps: [
        .send(Feed.activated("T1", s(1), .online)),
        .send(Feed.activated("T2", s(2), .offline)),
        .send(Feed.activated("T3", s(3), .manual)),
        .send(Feed.activated("T4", s(4), .bluetooth)),
        .send(Feed.created("T5", s(0))),
        .send(Feed.activated("T6", s(5), .offline)),
        .send(Feed.deleted("T6", s(6))),
        .check(s(5), [.totalTickets: 6, .validTickets: 6, .notDownloadedTickets: 6, .neverDownloadedTickets: 6,
                      .neverTransferred: 6, .activatedTickets: 5, .offlineActivatedTickets: 2,
                      .manualActivatedTickets: 1, .notActivatedTickets: 1], updatedAt: s(5)),
        .check(farFuture, [.totalTickets: 6, .validTickets: 5, .deletedTickets: 1, .notDownloadedTickets: 5,
                           .neverDownloadedTickets: 5, .neverTransferred: 6, .activatedTickets: 4,
                           .offlineActivatedTickets: 1, .manualActivatedTickets: 1, .notActivatedTickets: 1],
               updatedAt: s(6)),
    ])

    /// The earliest activation's mode wins, even when it arrives after a later one; equal
    /// times go to the first to arrive.
    static let activationEarliestWins: Scenario = {
        let one: Counts = [.totalTickets: 1, .validTickets: 1, .notDownloadedTickets: 1,
                           .neverDownloadedTickets: 1, .neverTransferred: 1]
        let two: Counts = [.totalTickets: 2, .validTickets: 2, .notDownloadedTickets: 2,
                           .neverDownloadedTickets: 2, .neverTransferred: 2]
        return Scenario(name: "activationEarliestWins", steps: [
            .send(Feed.created("T1", s(0))),
            .send(Feed.activated("T1", s(50), .manual)),
            .check(farFuture, one + [.activatedTickets: 1, .manualActivatedTickets: 1], updatedAt: s(50)),
            .send(Feed.activated("T1", s(20), .offline)),   // arrives later, earlier in time
            .check(farFuture, one + [.activatedTickets: 1, .offlineActivatedTickets: 1], updatedAt: s(50)),
            .send(Feed.activated("T1", s(20), .online)),    // same time, arrives after: loses
            .send(Feed.activated("T2", s(30), .online)),
            .send(Feed.activated("T2", s(30), .offline)),   // same time, arrives after: loses
            .send(Feed.activated("T2", s(40), .manual)),
            .check(s(20) - 1, plain(1), updatedAt: s(0)),
            .check(s(20), one + [.activatedTickets: 1, .offlineActivatedTickets: 1], updatedAt: s(20)),
            .check(s(30), two + [.activatedTickets: 2, .offlineActivatedTickets: 1], updatedAt: s(30)),
            .check(s(50), two + [.activatedTickets: 2, .offlineActivatedTickets: 1], updatedAt: s(50)),
        ])
    }()

    /// A ticket known only through pass events exists.
    static let passOnlyTicket = Scenario(name: "passOnlyTicket", steps: [
        .send(Feed.pass(.passAdded, "T9", s(10), .ios)),
        .send(Feed.pass(.passStatusChanged, "T9", s(20), .android, .active)),
        .send(Feed.pass(.passControlled, "T8", s(30), .ios)),
        .check(s(10) - 1, [:], updatedAt: nil),
        .check(s(10), plain(1) + [.iosPassAdded: 1], updatedAt: s(10)),
        .check(s(20), plain(1) + [.iosPassAdded: 1, .androidPassActive: 1], updatedAt: s(20)),
        .check(s(30), plain(2) + [.iosPassAdded: 1, .androidPassActive: 1, .iosPassControlled: 1], updatedAt: s(30)),
    ])

    /// A pass's status is the latest given (in time, not arrival); actions without a status keep it.
    static let passStatusLatestWins: Scenario = {
        let base: Counts = plain(1) + [.iosPassAdded: 1, .androidPassAdded: 1]
        return Scenario(name: "passStatusLatestWins", steps: [
            .send(Feed.created("T1", s(0))),
            .send(Feed.pass(.passAdded, "T1", s(10), .ios, .active)),
            .send(Feed.pass(.passStatusChanged, "T1", s(30), .ios, .inactive)),
            .send(Feed.pass(.passStatusChanged, "T1", s(20), .ios, .expired)),  // late
            .send(Feed.pass(.passRemoved, "T1", s(40), .ios)),                 // no status
            .send(Feed.pass(.passAdded, "T1", s(10), .android, .active)),
            .send(Feed.pass(.passInvalidated, "T1", s(50), .android, .deleted, reason: .deletion)),
            .send(Feed.pass(.passTransferred, "T1", s(60), .android)),         // no status
            .check(s(10) - 1, plain(1), updatedAt: s(0)),
            .check(s(15), base + [.iosPassActive: 1, .androidPassActive: 1], updatedAt: s(10)),
            .check(s(20), base + [.iosPassExpired: 1, .androidPassActive: 1], updatedAt: s(20)),
            .check(s(30), base + [.iosPassInactive: 1, .androidPassActive: 1], updatedAt: s(30)),
            .check(s(40), base + [.iosPassInactive: 1, .iosPassRemoved: 1, .androidPassActive: 1], updatedAt: s(40)),
            .check(s(50), base + [.iosPassInactive: 1, .iosPassRemoved: 1, .androidPassInvalidated: 1,
                                  .androidPassDeleted: 1], updatedAt: s(50)),
            .check(s(60), base + [.iosPassInactive: 1, .iosPassRemoved: 1, .androidPassInvalidated: 1,
                                  .androidPassDeleted: 1, .androidPassTransferred: 1], updatedAt: s(60)),
        ])
    }()

    /// Action counters count actions (re-additions included); `…PassControlled` counts tickets.
    static let passActionCounts = Scenario(name: "passActionCounts", steps: [
        .send(Feed.pass(.passAdded, "T1", s(1), .ios)),
        .send(Feed.pass(.passRemoved, "T1", s(2), .ios)),
        .send(Feed.pass(.passAdded, "T1", s(3), .ios)),
        .send(Feed.pass(.passSyncAdded, "T1", s(4), .ios)),
        .send(Feed.pass(.passSyncAdded, "T1", s(5), .ios)),
        .send(Feed.pass(.passSyncRemoved, "T1", s(6), .ios)),
        .send(Feed.pass(.passInvalidated, "T1", s(7), .ios, reason: .reprint)),
        .send(Feed.pass(.passTransferred, "T1", s(8), .ios)),
        .send(Feed.pass(.passControlled, "T1", s(9), .ios)),
        .send(Feed.pass(.passControlled, "T1", s(10), .ios)),
        .send(Feed.pass(.passAdded, "T1", s(1), .android)),
        .send(Feed.pass(.passAdded, "T1", s(2), .android)),
        .send(Feed.pass(.passRemoved, "T1", s(3), .android)),
        .send(Feed.pass(.passInvalidated, "T1", s(4), .android)),
        .send(Feed.pass(.passTransferred, "T1", s(5), .android)),
        .send(Feed.pass(.passControlled, "T1", s(6), .android)),
        .send(Feed.pass(.passControlled, "T2", s(11), .ios)),
        .send(Feed.pass(.passControlled, "T3", s(12), .android)),
        .send(Feed.pass(.passControlled, "T3", s(13), .android)),
        .check(s(5), plain(1) + [.iosPassAdded: 2, .iosPassRemoved: 1, .iosPassSyncAdded: 2,
                                 .androidPassAdded: 2, .androidPassRemoved: 1, .androidPassInvalidated: 1,
                                 .androidPassTransferred: 1], updatedAt: s(5)),
        .check(farFuture, plain(3) + [.iosPassAdded: 2, .iosPassSyncAdded: 2, .iosPassRemoved: 1,
                                      .iosPassSyncRemoved: 1, .iosPassInvalidated: 1, .iosPassTransferred: 1,
                                      .iosPassControlled: 2, .androidPassAdded: 2, .androidPassRemoved: 1,
                                      .androidPassInvalidated: 1, .androidPassTransferred: 1,
                                      .androidPassControlled: 2], updatedAt: s(13)),
    ])

    /// Wallet counters describe passes: a ticket's deletion does not change them.
    static let walletIgnoresDeletion: Scenario = {
        let wallet: Counts = [.iosPassAdded: 1, .iosPassActive: 1, .iosPassControlled: 1,
                              .androidPassAdded: 1, .androidPassInactive: 1]
        return Scenario(name: "walletIgnoresDeletion", steps: [
            .send(Feed.created("T1", s(0))),
            .send(Feed.pass(.passAdded, "T1", s(1), .ios, .active)),
            .send(Feed.pass(.passControlled, "T1", s(2), .ios)),
            .send(Feed.pass(.passAdded, "T1", s(3), .android, .inactive)),
            .send(Feed.deleted("T1", s(10), pending: true)),
            .send(Feed.pass(.passRemoved, "T1", s(20), .ios, .deleted)),
            .check(s(10) - 1, plain(1) + wallet, updatedAt: s(3)),
            .check(s(10), onlyDeleted(1) + wallet, updatedAt: s(10)),
            .check(s(20), onlyDeleted(1) + [.iosPassAdded: 1, .iosPassRemoved: 1, .iosPassDeleted: 1,
                                            .iosPassControlled: 1, .androidPassAdded: 1,
                                            .androidPassInactive: 1], updatedAt: s(20)),
        ])
    }()

    /// updatedAt: null before the first ticket/pass event, exact to the millisecond, moved by
    /// late events, never by seat events.
    static let updatedAt: Scenario = {
        let downloaded: Counts = [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1,
                                  .notActivatedTickets: 1, .neverTransferred: 1]
        let both: Counts = [.totalTickets: 2, .validTickets: 2, .downloadedTickets: 1, .notDownloadedTickets: 1,
                            .neverDownloadedTickets: 1, .notActivatedTickets: 2, .neverTransferred: 2]
        return Scenario(name: "updatedAt", steps: [
            .send(Feed.created("T1", T0 + 1)),
            .send(Feed.created("T2", T0 + 999)),
            .check(farFuture, plain(2), updatedAt: T0 + 999),
            .send(Feed.seat(T0 + 5000)),
            .send(Feed.downloaded("T1", T0 + 500, device: "d1")),   // late
            .send(Feed.seat(T0 + 7000, event: "E2")),
            .check(T0, [:], updatedAt: nil),
            .check(T0 + 1, plain(1), updatedAt: T0 + 1),
            .check(T0 + 499, plain(1), updatedAt: T0 + 1),
            .check(T0 + 500, downloaded, updatedAt: T0 + 500),
            .check(T0 + 998, downloaded, updatedAt: T0 + 500),
            .check(T0 + 999, both, updatedAt: T0 + 999),
            .check(T0 + 5000, both, updatedAt: T0 + 999),
            .check(farFuture, both, updatedAt: T0 + 999),
            .check(farFuture, [:], updatedAt: nil, event: "E2"),
        ])
    }()

    /// A query exactly at an event's occurredAt includes it; 1 ms before excludes it.
    static let instantBoundary: Scenario = {
        let dl: Counts = [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1, .notActivatedTickets: 1,
                          .neverTransferred: 1]
        let act: Counts = [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1, .activatedTickets: 1,
                           .manualActivatedTickets: 1, .neverTransferred: 1]
        let ctl = act + [.controlledTickets: 1]
        let xfer: Counts = [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1, .activatedTickets: 1,
                            .manualActivatedTickets: 1, .controlledTickets: 1, .transferredOnce: 1,
                            .totalTransferOperations: 1]
        let pass = xfer + [.iosPassAdded: 1, .iosPassActive: 1]
        let del: Counts = [.totalTickets: 1, .deletedTickets: 1, .transferredOnce: 1, .totalTransferOperations: 1,
                           .iosPassAdded: 1, .iosPassActive: 1]
        return Scenario(name: "instantBoundary", steps: [
            .send(Feed.deleted("T1", s(60))),
            .send(Feed.pass(.passAdded, "T1", s(50), .ios, .active)),
            .send(Feed.accepted("T1", s(40))),
            .send(Feed.controlled("T1", s(30))),
            .send(Feed.activated("T1", s(20), .manual)),
            .send(Feed.downloaded("T1", s(10), device: "d1")),
            .send(Feed.created("T1", s(0))),
            .check(s(0) - 1, [:], updatedAt: nil),
            .check(s(0), plain(1), updatedAt: s(0)),
            .check(s(10) - 1, plain(1), updatedAt: s(0)),
            .check(s(10), dl, updatedAt: s(10)),
            .check(s(20) - 1, dl, updatedAt: s(10)),
            .check(s(20), act, updatedAt: s(20)),
            .check(s(30) - 1, act, updatedAt: s(20)),
            .check(s(30), ctl, updatedAt: s(30)),
            .check(s(40) - 1, ctl, updatedAt: s(30)),
            .check(s(40), xfer, updatedAt: s(40)),
            .check(s(50) - 1, xfer, updatedAt: s(40)),
            .check(s(50), pass, updatedAt: s(50)),
            .check(s(60) - 1, pass, updatedAt: s(50)),
            .check(s(60), del, updatedAt: s(60)),
            .check(s(60) + 1, del, updatedAt: s(60)),
        ])
    }()

    /// Events at the same millisecond apply in arrival order (interleaved with other arrivals).
    static let tiesByArrival: Scenario = {
        let x = s(10)
        return Scenario(name: "tiesByArrival", steps: [
            .send(Feed.created("A", s(0))),
            .send(Feed.created("B", s(0))),
            .send(Feed.deleted("A", x)),
            .send(Feed.restored("B", x)),
            .send(Feed.downloaded("C", x, device: "d1")),
            .send(Feed.loggedOut("D", x, device: "d1")),
            .send(Feed.accepted("E", x)),
            .send(Feed.initiated("F", x)),
            .send(Feed.pass(.passStatusChanged, "G", x, .ios, .active)),
            .send(Feed.activated("H", x, .manual)),
            .send(Feed.restored("A", x)),                                   // A: valid
            .send(Feed.deleted("B", x)),                                    // B: deleted
            .send(Feed.loggedOut("C", x, device: "d1")),                    // C: not downloaded
            .send(Feed.downloaded("D", x, device: "d1")),                   // D: downloaded
            .send(Feed.initiated("E", x)),                                  // E: pending, once
            .send(Feed.accepted("F", x)),                                   // F: not pending, once
            .send(Feed.pass(.passStatusChanged, "G", x, .ios, .deleted)),   // G: DELETED
            .send(Feed.activated("H", x, .offline)),                        // H: manual
            .check(x - 1, plain(2), updatedAt: s(0)),
            .check(x, [.totalTickets: 8, .validTickets: 7, .deletedTickets: 1, .downloadedTickets: 1,
                       .notDownloadedTickets: 6, .neverDownloadedTickets: 5, .pendingTransferTickets: 1,
                       .activatedTickets: 1, .manualActivatedTickets: 1, .notActivatedTickets: 6,
                       .transferredOnce: 2, .neverTransferred: 6, .totalTransferOperations: 2,
                       .iosPassDeleted: 1], updatedAt: x),
        ])
    }()

    /// A duplicate id (exact re-send or different content) is acknowledged, never applied.
    static let duplicates = Scenario(name: "duplicates", steps: [
        .send(Feed.created("T1", s(0), id: "dup-1")),
        .duplicate(Feed.deleted("T1", s(10), id: "dup-1")),
        .send(Feed.accepted("T1", s(20), id: "dup-2")),
        .duplicate(Feed.accepted("T1", s(20), id: "dup-2")),
        .send(Feed.pass(.passAdded, "T1", s(30), .ios, id: "dup-3")),
        .duplicate(Feed.pass(.passAdded, "T1", s(30), .ios, id: "dup-3")),
        .duplicate(Feed.created("T1", s(0), event: "E9", id: "dup-1")),
        .check(farFuture, [.totalTickets: 1, .validTickets: 1, .notDownloadedTickets: 1, .neverDownloadedTickets: 1,
                           .notActivatedTickets: 1, .transferredOnce: 1, .totalTransferOperations: 1,
                           .iosPassAdded: 1], updatedAt: s(30)),
        .unknown("E9"),
    ])

    /// Never-seen eventIds answer nil; seat events make an eventId known but count nothing;
    /// the same ticketId in two events is two tickets.
    static let unknownEventId = Scenario(name: "unknownEventId", steps: [
        .unknown("E1"),
        .unknown("E1", at: s(0)),
        .send(Feed.seat(s(10), event: "E2")),
        .send(Feed.chartRemoved(s(20), event: "E2")),
        .send(Feed.chartRestored(s(30), event: "E2")),
        .check(s(0), [:], updatedAt: nil, event: "E2"),
        .check(farFuture, [:], updatedAt: nil, event: "E2"),
        .unknown("E1"),
        .send(Feed.created("T1", s(10), event: "E1")),
        .send(Feed.created("T1", s(10), event: "E3")),
        .send(Feed.deleted("T1", s(20), event: "E3")),
        .check(farFuture, plain(1), updatedAt: s(10), event: "E1"),
        .check(farFuture, onlyDeleted(1), updatedAt: s(20), event: "E3"),
        .check(farFuture, [:], updatedAt: nil, event: "E2"),
        .unknown("e1"),
        .unknown("E"),
    ])

    /// A late or missing ticket.created does not hide a ticket.
    static let lateCreated = Scenario(name: "lateCreated", steps: [
        .send(Feed.downloaded("T1", s(10), device: "d1")),
        .send(Feed.created("T1", s(20))),
        .send(Feed.activated("T1", s(5), .online)),
        .check(s(5) - 1, [:], updatedAt: nil),
        .check(s(5), [.totalTickets: 1, .validTickets: 1, .notDownloadedTickets: 1, .neverDownloadedTickets: 1,
                      .activatedTickets: 1, .neverTransferred: 1], updatedAt: s(5)),
        .check(s(10), [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1, .activatedTickets: 1,
                       .neverTransferred: 1], updatedAt: s(10)),
        .check(s(20), [.totalTickets: 1, .validTickets: 1, .downloadedTickets: 1, .activatedTickets: 1,
                       .neverTransferred: 1], updatedAt: s(20)),
    ])

    static let all: [Scenario] = [
        createdTicket, deletedTickets, pendingDeletion, restore, deletedFirst, downloadTwoDevices,
        neverVersusNotDownloaded, pendingTransfer, transferBuckets, controlled, activationModes,
        activationEarliestWins, passOnlyTicket, passStatusLatestWins, passActionCounts,
        walletIgnoresDeletion, updatedAt, instantBoundary, tiesByArrival, duplicates, unknownEventId,
        lateCreated,
    ]
}

// MARK: - Running a scenario

/// Runs `scenario` against a fresh subject: every check, and SPEC §4's invariants after every
/// step at every instant that matters (each event time, ±1 ms, before everything, far future).
func runScenario(_ scenario: Scenario, subjectName: String, makeSubject: () -> StatisticsSubject,
                 file: StaticString = #filePath, line: UInt = #line) {
    let subject = makeSubject()
    let where_ = "[\(subjectName)] scenario '\(scenario.name)'"
    var sequence: UInt64 = 0
    var times: Set<Int64> = [T0 - 3_600_000, farFuture]
    var eventIds: [String] = []

    for (index, step) in scenario.steps.enumerated() {
        let at = "\(where_) step \(index)"
        switch step {
        case .send(var event), .duplicate(var event):
            let expectNew: Bool
            if case .send = step { expectNew = true } else { expectNew = false }
            if event.id.isEmpty { event.id = "\(scenario.name)-\(index)" }
            let admitted = subject.admit(id: event.id, arrivalMilliseconds: T0 + Int64(index) * 10)
            guard admitted == expectNew else {
                XCTFail("\(at): admit(\(event.id)) returned \(admitted), expected \(expectNew)", file: file, line: line)
                return
            }
            guard admitted else { continue }
            sequence += 1
            subject.apply(event, sequence: sequence)
            times.formUnion([event.occurredAt - 1, event.occurredAt, event.occurredAt + 1])
            if !eventIds.contains(event.eventId) { eventIds.append(event.eventId) }
            for eventId in eventIds {
                for t in times.sorted() {
                    guard let stats = subject.statistics(eventId: eventId, at: t) else {
                        XCTFail("\(at): \(eventId) at \(t) answered nil after an event of it was applied", file: file, line: line)
                        return
                    }
                    if let broken = stats.violatedInvariant() {
                        XCTFail("\(at): \(eventId) at \(t): invariant \(broken) broken", file: file, line: line)
                        return
                    }
                }
            }
        case let .check(eventId, instant, expected, updatedAt):
            let answer = subject.statistics(eventId: eventId, at: instant)
            let label = "\(at): \(eventId) at \(describeInstant(instant))"
            guard let expected else {
                if answer != nil { XCTFail("\(label): expected nil (unknown event), got an answer", file: file, line: line) }
                continue
            }
            guard let answer else {
                XCTFail("\(label): expected an answer, got nil", file: file, line: line)
                continue
            }
            XCTAssertEqual(answer.eventId, eventId, "\(label): eventId", file: file, line: line)
            for counter in StatisticsCounter.allCases {
                let want = expected[counter] ?? 0
                if answer[counter] != want {
                    XCTFail("\(label): \(counter.fieldName) expected \(want), got \(answer[counter])", file: file, line: line)
                }
            }
            if answer.updatedAt != updatedAt {
                XCTFail("\(label): updatedAt expected \(describe(updatedAt)), got \(describe(answer.updatedAt))", file: file, line: line)
            }
            if let broken = answer.violatedInvariant() {
                XCTFail("\(label): invariant \(broken) broken", file: file, line: line)
            }
        }
    }
}

/// `2025-05-21T06:00:00.001Z (T0+1 ms)`, for failure messages.
func describeInstant(_ t: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let text = formatter.string(from: Date(timeIntervalSince1970: Double(t) / 1000))
    if t == farFuture { return "\(text) (farFuture)" }
    let delta = t - T0
    return "\(text) (T0\(delta >= 0 ? "+" : "")\(delta) ms)"
}

func describe(_ t: Int64?) -> String { t.map(describeInstant) ?? "nil" }

// MARK: - The test classes

final class StatisticsTableModelTests: XCTestCase {
    private func run(_ scenario: Scenario, file: StaticString = #filePath, line: UInt = #line) {
        runScenario(scenario, subjectName: "ReferenceModel", makeSubject: { ReferenceModel() }, file: file, line: line)
    }

    func testCreatedTicket() { run(Scenarios.createdTicket) }
    func testDeletedTickets() { run(Scenarios.deletedTickets) }
    func testPendingDeletion() { run(Scenarios.pendingDeletion) }
    func testRestore() { run(Scenarios.restore) }
    func testDeletedFirst() { run(Scenarios.deletedFirst) }
    func testDownloadTwoDevices() { run(Scenarios.downloadTwoDevices) }
    func testNeverVersusNotDownloaded() { run(Scenarios.neverVersusNotDownloaded) }
    func testPendingTransfer() { run(Scenarios.pendingTransfer) }
    func testTransferBuckets() { run(Scenarios.transferBuckets) }
    func testControlled() { run(Scenarios.controlled) }
    func testActivationModes() { run(Scenarios.activationModes) }
    func testActivationEarliestWins() { run(Scenarios.activationEarliestWins) }
    func testPassOnlyTicket() { run(Scenarios.passOnlyTicket) }
    func testPassStatusLatestWins() { run(Scenarios.passStatusLatestWins) }
    func testPassActionCounts() { run(Scenarios.passActionCounts) }
    func testWalletIgnoresDeletion() { run(Scenarios.walletIgnoresDeletion) }
    func testUpdatedAt() { run(Scenarios.updatedAt) }
    func testInstantBoundary() { run(Scenarios.instantBoundary) }
    func testTiesByArrival() { run(Scenarios.tiesByArrival) }
    func testDuplicates() { run(Scenarios.duplicates) }
    func testUnknownEventId() { run(Scenarios.unknownEventId) }
    func testLateCreated() { run(Scenarios.lateCreated) }

    func testEveryScenarioIsListed() {
        XCTAssertEqual(Scenarios.all.count, 22)
        XCTAssertEqual(Set(Scenarios.all.map(\.name)).count, Scenarios.all.count)
    }
}

final class StatisticsTableEngineTests: XCTestCase {
    /// Each scenario runs on an engine with default settings and on one that snapshots every
    /// 2 deltas (so late events land before snapshots).
    private func run(_ scenario: Scenario, file: StaticString = #filePath, line: UInt = #line) throws {
        try skipEngineIfAsked()
        runScenario(scenario, subjectName: "Engine", makeSubject: { Engine() }, file: file, line: line)
        var small = EngineConfiguration()
        small.deltasPerSnapshot = 2
        runScenario(scenario, subjectName: "Engine(deltasPerSnapshot: 2)",
                    makeSubject: { Engine(configuration: small) }, file: file, line: line)
    }

    func testCreatedTicket() throws { try run(Scenarios.createdTicket) }
    func testDeletedTickets() throws { try run(Scenarios.deletedTickets) }
    func testPendingDeletion() throws { try run(Scenarios.pendingDeletion) }
    func testRestore() throws { try run(Scenarios.restore) }
    func testDeletedFirst() throws { try run(Scenarios.deletedFirst) }
    func testDownloadTwoDevices() throws { try run(Scenarios.downloadTwoDevices) }
    func testNeverVersusNotDownloaded() throws { try run(Scenarios.neverVersusNotDownloaded) }
    func testPendingTransfer() throws { try run(Scenarios.pendingTransfer) }
    func testTransferBuckets() throws { try run(Scenarios.transferBuckets) }
    func testControlled() throws { try run(Scenarios.controlled) }
    func testActivationModes() throws { try run(Scenarios.activationModes) }
    func testActivationEarliestWins() throws { try run(Scenarios.activationEarliestWins) }
    func testPassOnlyTicket() throws { try run(Scenarios.passOnlyTicket) }
    func testPassStatusLatestWins() throws { try run(Scenarios.passStatusLatestWins) }
    func testPassActionCounts() throws { try run(Scenarios.passActionCounts) }
    func testWalletIgnoresDeletion() throws { try run(Scenarios.walletIgnoresDeletion) }
    func testUpdatedAt() throws { try run(Scenarios.updatedAt) }
    func testInstantBoundary() throws { try run(Scenarios.instantBoundary) }
    func testTiesByArrival() throws { try run(Scenarios.tiesByArrival) }
    func testDuplicates() throws { try run(Scenarios.duplicates) }
    func testUnknownEventId() throws { try run(Scenarios.unknownEventId) }
    func testLateCreated() throws { try run(Scenarios.lateCreated) }
}
