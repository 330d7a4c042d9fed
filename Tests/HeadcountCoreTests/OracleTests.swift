import Foundation
import HeadcountCore
import HeadcountTestSupport
import XCTest

// Seeded random differential test: the engine against the reference model, on feeds from
// `FeedGenerator`.
//
//   swift test --filter OracleTests        engine vs model: 5 fixed seeds, 1 random, 1 bigger feed
//   HEADCOUNT_ORACLE_SEED=1234 swift test --filter OracleTests         replay one seed (or 1,2,0x3f)
//   HEADCOUNT_ORACLE_ITERATIONS=50 swift test --filter OracleTests     50 random seeds instead of 1
//   HEADCOUNT_ORACLE_SCALE=4                                           4x the tickets per feed
//   swift test --filter OracleSelfTests    the generator and the model alone (no engine)
//
// A failure names the seed (`HEADCOUNT_ORACLE_SEED=<seed>`), the delivery, the eventId, the
// instant, the field and both values, and the events of one ticket that alone reproduce the
// difference when there is one.

struct OracleConfiguration {
    /// The engine a seed runs against: `seed % 4` picks `deltasPerSnapshot` 256, 16, 3 or 2.
    static func engineConfiguration(seed: UInt64) -> EngineConfiguration {
        let snapshotSpacings = [256, 16, 3, 2]
        var configuration = EngineConfiguration()
        configuration.deltasPerSnapshot = snapshotSpacings[Int(seed % UInt64(snapshotSpacings.count))]
        return configuration
    }

    /// `seed % 4` picks the engine's `deltasPerSnapshot` (256, 16, 3, 2): these cover all four.
    static let fixedSeeds: [UInt64] = [1, 2, 3, 4, 0xC0FFEE]
    /// One bigger feed in the default run (hundreds of tickets per eventId).
    static let bigSeed: (seed: UInt64, scale: Int) = (20_250_521, 2)

    /// (seed, scale) of each feed to run.
    var runs: [(seed: UInt64, scale: Int)]

    static func fromEnvironment() -> OracleConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let scale = environment["HEADCOUNT_ORACLE_SCALE"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
        if let text = environment["HEADCOUNT_ORACLE_SEED"], !text.isEmpty {
            let seeds = text.split(separator: ",").compactMap { parseSeed(String($0)) }
            precondition(!seeds.isEmpty, "HEADCOUNT_ORACLE_SEED=\(text) is not a seed")
            return OracleConfiguration(runs: seeds.map { ($0, scale) })
        }
        let randomCount = environment["HEADCOUNT_ORACLE_ITERATIONS"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
        // A fresh seed per run, from the clock (the generator itself is SplitMix64 only).
        var mixer = SplitMix64(seed: UInt64(bitPattern: Int64(Date().timeIntervalSince1970 * 1e9)) ^ UInt64(ProcessInfo.processInfo.processIdentifier))
        let random = (0..<randomCount).map { _ in mixer.next() }
        let runs = (fixedSeeds + random).map { (seed: $0, scale: scale) } + [(bigSeed.seed, bigSeed.scale * scale)]
        return OracleConfiguration(runs: runs)
    }

    static func parseSeed(_ text: String) -> UInt64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased().hasPrefix("0x") { return UInt64(trimmed.dropFirst(2), radix: 16) }
        return UInt64(trimmed)
    }

    static func replayLine(_ seed: UInt64, scale: Int) -> String {
        "HEADCOUNT_ORACLE_SEED=\(seed)" + (scale == 1 ? "" : " HEADCOUNT_ORACLE_SCALE=\(scale)")
    }
}

// MARK: - Comparing two subjects

struct Mismatch: CustomStringConvertible {
    let eventId: String
    let instant: Int64
    let field: String
    let left: String
    let right: String
    let leftName: String
    let rightName: String

    var description: String {
        "eventId \(eventId) at \(describeInstant(instant)): \(field): \(leftName)=\(left) \(rightName)=\(right)"
    }
}

/// The first difference between two subjects' answers (every field, nil-ness and invariants),
/// probing each eventId at its own instants.
func firstMismatch(_ left: StatisticsSubject, _ leftName: String, _ right: StatisticsSubject, _ rightName: String,
                   instants: [(eventId: String, instants: [Int64])]) -> Mismatch? {
    for (eventId, eventInstants) in instants {
        for instant in eventInstants {
            func mismatch(_ field: String, _ l: String, _ r: String) -> Mismatch {
                Mismatch(eventId: eventId, instant: instant, field: field, left: l, right: r,
                         leftName: leftName, rightName: rightName)
            }
            let l = left.statistics(eventId: eventId, at: instant)
            let r = right.statistics(eventId: eventId, at: instant)
            guard let l, let r else {
                if (l == nil) != (r == nil) {
                    return mismatch("answer", l == nil ? "nil" : "non-nil", r == nil ? "nil" : "non-nil")
                }
                continue
            }
            if l.eventId != r.eventId { return mismatch("eventId", l.eventId, r.eventId) }
            if l.counters != r.counters {
                let (lc, rc) = (l.counters, r.counters)
                for counter in StatisticsCounter.allCases where lc[counter] != rc[counter] {
                    return mismatch(counter.fieldName, "\(lc[counter])", "\(rc[counter])")
                }
            }
            if l.updatedAt != r.updatedAt { return mismatch("updatedAt", describe(l.updatedAt), describe(r.updatedAt)) }
            if let broken = l.violatedInvariant() { return mismatch("invariant", broken, "-") }
            if let broken = r.violatedInvariant() { return mismatch("invariant", "-", broken) }
        }
    }
    return nil
}

/// Every instant at which an eventId's answer can change is one of its own event times, so
/// probing each of them (and 1 ms either side, to catch `<` for `<=`), plus before everything
/// and after everything, sees every distinct answer it has.
func instantsByEvent(_ events: some Sequence<FeedEvent>, eventIds: [String]) -> [(eventId: String, instants: [Int64])] {
    var times: [String: [Int64]] = [:]
    for event in events { times[event.eventId, default: []].append(event.occurredAt) }
    return eventIds.map { ($0, instantsAround(times[$0] ?? [])) }
}

/// Each time, 1 ms before and after it, an hour before the earliest, a day after the latest
/// and the far future.
func instantsAround(_ times: some Sequence<Int64>) -> [Int64] {
    var set: Set<Int64> = [farFuture]
    for t in times { set.formUnion([t - 1, t, t + 1]) }
    if let earliest = set.min(), let latest = set.filter({ $0 != farFuture }).max() {
        set.insert(earliest - 3_600_000)
        set.insert(latest + 86_400_000)
    } else {
        set.insert(T0)
    }
    return set.sorted()
}

// MARK: - The differential run

/// Feeds one feed, delivery by delivery, to the reference model and to a candidate (the
/// engine), comparing them as it goes.
struct DifferentialRun {
    let feed: FeedGenerator.Feed
    let candidateName: String
    let makeCandidate: () -> StatisticsSubject
    /// Compare after each of the first 10 deliveries, then after every `checkEvery`, and
    /// after the last.
    let checkEvery: Int
    /// At intermediate checks, at most this many event times (plus the latest deliveries')
    /// are probed; the final check probes them all.
    let sampleCap: Int

    /// nil when the candidate agreed with the model everywhere; otherwise the failure report.
    func run() -> String? {
        let model = ReferenceModel()
        let engine = makeCandidate()
        let eventIds = feed.eventIds + ["EV-never-seen"]
        var sequence: UInt64 = 0
        var times: [String: Set<Int64>] = [:]
        var recentTimes: [String: [Int64]] = [:]
        var sampler = SplitMix64(seed: feed.seed ^ 0x5EED)

        for (step, delivery) in feed.deliveries.enumerated() {
            let event = delivery.event
            let modelAdmits = model.admit(id: event.id, arrivalMilliseconds: delivery.arrivalMilliseconds)
            let engineAdmits = engine.admit(id: event.id, arrivalMilliseconds: delivery.arrivalMilliseconds)
            if modelAdmits != engineAdmits {
                return report(step: step, sequence: sequence,
                              "admit(\(event.id)) model=\(modelAdmits) \(candidateName)=\(engineAdmits) for \(describeEvent(event)) (\(delivery.origin))")
            }
            if modelAdmits {
                sequence += 1
                model.apply(event, sequence: sequence)
                engine.apply(event, sequence: sequence)
                times[event.eventId, default: []].insert(event.occurredAt)
                recentTimes[event.eventId, default: []].append(event.occurredAt)
            }

            let last = step == feed.deliveries.count - 1
            guard step < 10 || (step + 1) % checkEvery == 0 || last else { continue }
            var probes: [(eventId: String, instants: [Int64])] = []
            for eventId in eventIds {
                let all = Array(times[eventId] ?? [])
                var probe = (last || all.count <= sampleCap) ? all : (0..<sampleCap).map { _ in sampler.pick(all) }
                probe += recentTimes[eventId] ?? []
                probes.append((eventId, instantsAround(probe)))
            }
            recentTimes.removeAll()
            if let mismatch = firstMismatch(model, "model", engine, candidateName, instants: probes) {
                return report(step: step, sequence: sequence, mismatch.description)
                    + "\n" + shrink(upTo: step, eventId: mismatch.eventId)
            }
        }
        return nil
    }

    private func report(step: Int, sequence: UInt64, _ what: String) -> String {
        """
        Oracle mismatch — replay with \(OracleConfiguration.replayLine(feed.seed, scale: feed.scale))
          seed \(feed.seed), \(candidateName), after delivery #\(step) of \(feed.deliveries.count) \
        (sequence \(sequence)): \(describeEvent(feed.deliveries[step].event))
          \(what)
        """
    }

    /// Replays each ticket of `eventId` alone (its deliveries up to `step`, in order) and
    /// reports the first one whose replay already shows a difference.
    private func shrink(upTo step: Int, eventId: String) -> String {
        let prefix = feed.deliveries[0...step].filter { $0.event.eventId == eventId && $0.event.kind.isTicketOrPass }
        var ticketIds: [String] = []
        for delivery in prefix where !ticketIds.contains(delivery.event.ticketId) { ticketIds.append(delivery.event.ticketId) }
        for ticketId in ticketIds {
            let deliveries = prefix.filter { $0.event.ticketId == ticketId }
            let model = ReferenceModel()
            let engine = makeCandidate()
            var sequence: UInt64 = 0
            var lines: [String] = []
            for delivery in deliveries {
                let admitted = model.admit(id: delivery.event.id, arrivalMilliseconds: delivery.arrivalMilliseconds)
                guard engine.admit(id: delivery.event.id, arrivalMilliseconds: delivery.arrivalMilliseconds) == admitted,
                      admitted else {
                    lines.append("      (not applied) \(describeEvent(delivery.event))")
                    continue
                }
                sequence += 1
                model.apply(delivery.event, sequence: sequence)
                engine.apply(delivery.event, sequence: sequence)
                lines.append("      seq \(sequence): \(describeEvent(delivery.event))")
            }
            let instants = instantsAround(deliveries.map(\.event.occurredAt))
            if let mismatch = firstMismatch(model, "model", engine, candidateName, instants: [(eventId, instants)]) {
                return "  ticket \(ticketId) alone reproduces it: \(mismatch)\n    its events in arrival order:\n"
                    + lines.joined(separator: "\n")
            }
        }
        return "  no single ticket of \(eventId) reproduces it alone (\(ticketIds.count) tried)"
    }
}

// MARK: - Tests

final class OracleTests: XCTestCase {
    func testEngineMatchesReferenceModel() throws {
        try skipEngineIfAsked()
        let configuration = OracleConfiguration.fromEnvironment()
        var failures = 0
        for (index, (seed, scale)) in configuration.runs.enumerated() {
            let feed = FeedGenerator.generate(seed: seed, scale: scale)
            let engineConfiguration = OracleConfiguration.engineConfiguration(seed: seed)
            let run = DifferentialRun(feed: feed, candidateName: "Engine(deltasPerSnapshot: \(engineConfiguration.deltasPerSnapshot))",
                                      makeCandidate: { Engine(configuration: engineConfiguration) },
                                      checkEvery: max(25, feed.deliveries.count / 12), sampleCap: 150)
            let started = Date()
            let failure = run.run()
            print("oracle \(OracleConfiguration.replayLine(seed, scale: scale)) (\(index + 1)/\(configuration.runs.count)): "
                  + "\(feed.deliveries.count) deliveries, "
                  + "\(feed.eventIds.count) eventIds, \(run.candidateName): "
                  + "\(failure == nil ? "ok" : "MISMATCH") in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            if let failure {
                print(failure)
                XCTFail(failure)
                failures += 1
                if failures >= 3 { break }
            }
        }
    }
}

/// The generator and the model on their own (no engine involved).
final class OracleSelfTests: XCTestCase {
    func testGeneratorIsDeterministic() {
        for seed: UInt64 in [1, 99] {
            let a = FeedGenerator.generate(seed: seed).deliveries
            let b = FeedGenerator.generate(seed: seed).deliveries
            XCTAssertEqual(a.count, b.count)
            XCTAssertTrue(zip(a, b).allSatisfy { $0.event == $1.event && $0.arrivalMilliseconds == $1.arrivalMilliseconds })
        }
        XCTAssertNotEqual(FeedGenerator.generate(seed: 1).deliveries.map(\.event.occurredAt),
                          FeedGenerator.generate(seed: 2).deliveries.map(\.event.occurredAt))
    }

    /// The fixed seeds together produce everything the oracle is meant to exercise.
    func testGeneratorCoverage() {
        var kinds: Set<FeedEventKind> = []
        var ties = 0, late = 0, outOfOrder = 0, duplicates = 0, resent = 0, futureDated = 0, seatOnly = 0, tickets = 0
        var syncOnAndroid = 0, daysAway = 0
        for seed in OracleConfiguration.fixedSeeds {
            let feed = FeedGenerator.generate(seed: seed)
            var arrival = Int64.min
            var latest = Int64.min / 2
            var seen: [String: Int] = [:]
            var ticketKeys: Set<String> = []
            for delivery in feed.deliveries {
                let event = delivery.event
                XCTAssertGreaterThan(delivery.arrivalMilliseconds, arrival, "seed \(seed): arrival must increase")
                arrival = delivery.arrivalMilliseconds
                kinds.insert(event.kind)
                switch delivery.origin {
                case .exactDuplicate: duplicates += 1
                case .resentId: resent += 1
                case .original: break
                }
                if case .pass(.android, _, _) = event.details, event.kind == .passSyncAdded || event.kind == .passSyncRemoved {
                    syncOnAndroid += 1
                }
                if event.occurredAt < delivery.arrivalMilliseconds - 3_600_000 { late += 1 }
                if event.occurredAt < latest { outOfOrder += 1 }
                if event.occurredAt > delivery.arrivalMilliseconds { futureDated += 1 }
                if abs(event.occurredAt - delivery.arrivalMilliseconds) > 86_400_000 { daysAway += 1 }
                latest = max(latest, event.occurredAt)
                if event.kind.isTicketOrPass {
                    ticketKeys.insert(event.eventId + "/" + event.ticketId)
                    seen["\(event.eventId)@\(event.occurredAt)", default: 0] += 1
                }
            }
            ties += seen.values.filter { $0 > 1 }.count
            tickets += ticketKeys.count
            for eventId in feed.eventIds where !feed.deliveries.contains(where: { $0.event.eventId == eventId && $0.event.kind.isTicketOrPass }) {
                seatOnly += 1
            }
        }
        XCTAssertEqual(kinds, Set(FeedEventKind.allCases), "missing kinds: \(Set(FeedEventKind.allCases).subtracting(kinds))")
        XCTAssertEqual(syncOnAndroid, 0)
        print("generator coverage over \(OracleConfiguration.fixedSeeds.count) seeds: \(tickets) tickets, \(ties) tied times, "
              + "\(late) delivered >1 h late, \(outOfOrder) out of order, \(futureDated) future-dated, \(daysAway) dated days away from arrival, \(duplicates) exact duplicates, "
              + "\(resent) re-sent ids, \(seatOnly) seat-only eventIds")
        XCTAssertGreaterThan(ties, 20)
        XCTAssertGreaterThan(late, 20)
        XCTAssertGreaterThan(outOfOrder, 100)
        XCTAssertGreaterThan(futureDated, 0)
        XCTAssertGreaterThan(daysAway, 5)
        XCTAssertGreaterThan(duplicates, 10)
        XCTAssertGreaterThan(resent, 3)
        XCTAssertGreaterThan(seatOnly, 0)
        XCTAssertGreaterThan(tickets, 200)
    }

    /// The memo of the model (contributions by ticket prefix) changes no answer, also when
    /// events keep arriving between queries.
    func testMemoizedModelMatchesPlainModel() {
        for seed: UInt64 in [7, 11] {
            // The first 500 deliveries: the unmemoized model is slow.
            let full = FeedGenerator.generate(seed: seed)
            let feed = FeedGenerator.Feed(seed: seed, scale: 1, deliveries: Array(full.deliveries.prefix(500)), eventIds: full.eventIds)
            let run = DifferentialRun(feed: feed, candidateName: "model(memoize: false)",
                                      makeCandidate: { ReferenceModel(memoize: false) },
                                      checkEvery: 20, sampleCap: 40)
            if let failure = run.run() { XCTFail(failure) }
        }
    }

    /// The model holds every invariant at every instant, and its answers do not depend on
    /// arrival order (other than the order of events at the same millisecond of one ticket).
    func testModelInvariantsAndArrivalOrderIndependence() {
        for seed: UInt64 in [1, 2, 7] {
            let feed = FeedGenerator.generate(seed: seed)
            let originals = feed.deliveries.filter { $0.origin == .original }.map(\.event)

            // Another arrival order that keeps each (ticket, millisecond) group's order.
            var rng = SplitMix64(seed: seed ^ 0xABCD)
            let shuffled = originals.map { ($0, rng.next()) }.sorted { $0.1 < $1.1 }.map(\.0)
            func groupKey(_ e: FeedEvent) -> String { "\(e.eventId)/\(e.ticketId)@\(e.occurredAt)" }
            var groups: [String: [FeedEvent]] = [:]
            for event in originals { groups[groupKey(event), default: []].append(event) }
            var taken: [String: Int] = [:]
            let reordered = shuffled.map { event -> FeedEvent in
                let key = groupKey(event)
                let index = taken[key, default: 0]
                taken[key] = index + 1
                return event.kind.isTicketOrPass ? groups[key]![index] : event
            }

            let inOrder = ReferenceModel(), outOfOrder = ReferenceModel()
            for (index, event) in originals.enumerated() {
                XCTAssertTrue(inOrder.admit(id: event.id, arrivalMilliseconds: Int64(index)))
                inOrder.apply(event, sequence: UInt64(index + 1))
            }
            for (index, event) in reordered.enumerated() {
                XCTAssertTrue(outOfOrder.admit(id: event.id, arrivalMilliseconds: Int64(index)))
                outOfOrder.apply(event, sequence: UInt64(index + 1))
            }
            let instants = instantsByEvent(originals, eventIds: feed.eventIds + ["EV-never-seen"])
            let started = Date()
            defer {
                print("model self-check seed \(seed): \(originals.count) events, "
                      + "\(instants.map(\.instants.count).reduce(0, +)) probes x 2 models in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            }
            if let mismatch = firstMismatch(inOrder, "in-order", outOfOrder, "reordered", instants: instants) {
                XCTFail("seed \(seed): \(mismatch)")
            }
            // Sanity: the model answers for every eventId and nil for an unknown one.
            for eventId in feed.eventIds { XCTAssertNotNil(inOrder.statistics(eventId: eventId, at: farFuture)) }
            XCTAssertNil(inOrder.statistics(eventId: "EV-never-seen", at: farFuture))
        }
    }
}
