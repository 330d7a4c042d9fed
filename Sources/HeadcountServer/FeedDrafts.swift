import HeadcountCore
import HeadcountFeed
import HeadcountStorage

/// A feed body's events made ready to admit, as the decoder hands them out
/// (`FeedEventSink`): for each, its duplicate-check key, what applying it takes
/// (`PreparedEvent`) and its WAL record, encoded but not yet sealed with a sequence
/// (`WALRecord.encodeUnsealed`). All of it is made from the decoder's bytes
/// (`FeedEventBytes`): a ticket or pass event costs no String and no heap object of its own
/// (its show's id is interned), where a `FeedEvent` cost three to four allocations and frees
/// and the copies of its Strings (measured: ~25% of the intake thread's instructions).
///
/// Used by one thread at a time, one body at a time, and reused (`reset` keeps the room).
final class FeedDrafts: FeedEventSink {
    /// Per drafted event, in request order.
    private(set) var keys: [Hash128] = []
    private(set) var prepared: [PreparedEvent] = []
    /// Where each record ends in `records` (it starts where the one before ends).
    private(set) var recordEnds: [Int] = []
    /// The unsealed WAL records, back to back; `FeedCommitter.add` seals each as it is admitted.
    var records: [UInt8] = []
    /// The next draft to admit.
    var next = 0
    /// Events the decoder (or the WAL's limits) rejected, in request order.
    private var rejections: [(index: Int, id: String?, error: String)] = []
    private var arrivalMilliseconds: Int64 = 0
    private var eventIds = EventIdInterner()

    var count: Int { keys.count }

    /// Empties the drafts for a body that arrived at `arrivalMilliseconds` (the WAL records
    /// carry it), keeping their room.
    func reset(arrivalMilliseconds: Int64) {
        self.arrivalMilliseconds = arrivalMilliseconds
        // The room of a batch of up to `keptEvents` events is kept for the next body; a
        // bigger one's (the limit is `--max-batch-events`, 100,000 by default: ~20 MB) is given back.
        let keep = keys.capacity <= FeedDrafts.keptEvents
        keys.removeAll(keepingCapacity: keep)
        prepared.removeAll(keepingCapacity: keep)
        recordEnds.removeAll(keepingCapacity: keep)
        records.removeAll(keepingCapacity: keep)
        rejections.removeAll(keepingCapacity: keep)
        next = 0
    }
    static let keptEvents = 8192

    /// The rejections so far (and forgets them).
    func takeRejections() -> [(index: Int, id: String?, error: String)] {
        if rejections.isEmpty { return [] }
        defer { rejections = [] }
        return rejections
    }

    /// The unsealed WAL record of draft `index`.
    func withRecord<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let start = index == 0 ? 0 : recordEnds[index - 1]
        let end = recordEnds[index]
        return records.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
    }

    func accept(_ event: FeedEventBytes, index: Int) {
        if let problem = WALRecord.encodingProblem(of: event) {
            rejections.append((index, String(decoding: event.id, as: UTF8.self), problem))
            return
        }
        keys.append(Engine.admissionKey(id: event.id))
        prepared.append(PreparedEvent(event, eventId: eventIds.string(event.eventId)))
        WALRecord.encodeUnsealed(arrivalMilliseconds: arrivalMilliseconds, event: event, into: &records)
        recordEnds.append(records.count)
    }

    func accept(_ event: FeedEvent, index: Int) {
        if let problem = WALRecord.encodingProblem(of: event) {
            rejections.append((index, event.id, problem))
            return
        }
        keys.append(Engine.admissionKey(id: event.id))
        prepared.append(PreparedEvent(event))
        // Sealed with sequence 0, sealed again when admitted (a rare kind: the checksum twice).
        WALRecord.encode(sequence: 0, arrivalMilliseconds: arrivalMilliseconds, event: event, into: &records)
        recordEnds.append(records.count)
    }

    func reject(index: Int, id: String?, error: String) {
        rejections.append((index, id, error))
    }
}
