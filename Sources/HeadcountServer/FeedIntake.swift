import CLibUV
import Foundation
import DequeModule
import HeadcountCore
import HeadcountFeed
import HeadcountStorage

/// Feed requests are decoded, checked for duplicates and WAL-encoded here, either on the
/// loop thread in time slices or, for large bodies, on the intake thread beside it.
///
/// **On the loop, in slices.** A feed batch of 1,000 events costs about 1 ms to decode, check
/// for duplicates and encode for the WAL; if it were done as each request was read, a query
/// arriving beside a few pipelined batches would wait several milliseconds (measured: p99
/// 26–600 ms under a saturating feed). So the read callback only queues the complete request,
/// and an idle handle (which also keeps the loop from blocking while work remains) spends at
/// most `sliceNanoseconds` per loop turn on the queue — decoding the next request, then
/// admitting and encoding its events 64 at a time — before the loop polls again and answers
/// whatever queries came in.
///
/// **On the intake thread.** Bodies of at least `threadBodyBytes` go to `hc-intake` (a
/// `WorkerThread`) instead, which does the same steps, so a batched feed uses both cores:
/// the loop reads requests, applies durable events and answers queries while the thread
/// decodes and admits the next batch (on a 2-core machine the loop thread was at 92% of a
/// core with all of it on the loop). What the thread shares with the loop:
/// - the engine's duplicate-check table, under `admissionLock`, held for a step's admissions
///   (the loop takes it only to expire keys, count them or take a snapshot);
/// - the committer's pending WAL buffer, to which a step's records, encoded into a
///   `FeedCommitter.Submission` of the admitting thread's own, are appended at the end of the
///   step (`FeedCommitter.submit`, a short lock the loop takes to flush);
/// - the sequence counter, owned by whichever thread admits (see "Order").
/// Events cross as `PreparedEvent`s, so the loop never touches the id, ticket or device strings
/// the thread would have allocated (it makes none: `FeedDrafts`); only a show's id, one String
/// per show shared by its events, is retained there and released on the loop.
///
/// **Order.** Requests are admitted in the order they were read, whichever thread admits
/// them: a request goes to the thread only while the loop's queue is empty, and the loop
/// admits from its queue only while the thread has nothing, so the two never admit at the
/// same time and a request never overtakes an earlier one. A one-event request therefore
/// stays on the loop (no thread hand-off, which costs two wake-ups) unless a batch is ahead
/// of it on the thread.
///
/// **Queries first.** While statistics or status-change queries are being served (one in the
/// last `queryQuietNanoseconds`), new requests stay on the loop, whatever their size: a feed
/// on both cores leaves none for the clients asking the queries on a small machine (measured
/// on 2 cores: query p99 4–38 ms under a saturating feed on both cores, against ~1–2 ms with
/// the feed on the loop alone). A pure ingest (a backfill, a replay) gets both cores. The
/// loop's feed slices are shorter meanwhile (`querySliceNanoseconds`, 100 µs against 250):
/// measured in six alternating pairs under a saturating feed with 200 queries/s, query p50
/// 0.24–0.33 against 0.41–0.49 ms, p99 from the send lower in five pairs of six, feed rate
/// within the noise.
///
/// Group commit is unchanged: what was submitted is flushed once per loop turn
/// (`FeedCommitter`), and a request is answered when every sequence assigned up to its last
/// admission is durable and applied (`Job.throughSequence`).
///
/// A request's arrival time (for the idempotency window) is when it was read, not when its
/// slice ran. Backpressure is per connection: a connection's pipelined requests count
/// against its limit until answered, so the queue holds at most connections × pipeline.
final class FeedIntake {
    /// One queued feed request (a value: the queue holds it, the slice takes it out to work on).
    struct Job {
        /// Emptied once decoded, so the connection can reuse its buffer.
        var body: [UInt8]
        let format: FeedBodyFormat
        let arrivalMilliseconds: Int64
        /// Answers the request (`HeadcountServer.feedAnswered`).
        let responder: HTTPResponder
        /// Decoded whole into the loop's drafts (`FeedIntake.loopDrafts`), which only the job
        /// at the head of the queue uses.
        var isDecoded = false
        /// Being decoded a step at a time by the loop's decoder (`FeedDecoder.beginItems`),
        /// and whether the decoder has given all its events.
        var isDecodingInSteps = false
        var isDecoderExhausted = false
        var accepted = 0
        var duplicates = 0
        var rejections: [(index: Int, id: String?, error: String)] = []
        /// The last sequence assigned when the job's last event was admitted: its answer
        /// waits until everything up to here is durable.
        var throughSequence: UInt64 = 0
        /// Set on the intake thread when the body failed as a whole.
        var failure: APIError?
        /// A word of the duplicate-check slots touched before a step (`Engine.touchAdmissions`).
        var touchSink: UInt64 = 0
        /// Decoded and admitted on the intake thread (for `/metrics`).
        var wasOnIntakeThread = false

        init(body: [UInt8], format: FeedBodyFormat, arrivalMilliseconds: Int64, responder: HTTPResponder) {
            self.body = body
            self.format = format
            self.arrivalMilliseconds = arrivalMilliseconds
            self.responder = responder
        }
    }

    /// Work per loop turn on the queue (at least one step is always taken)…
    let sliceNanoseconds: UInt64
    /// …and while queries are being served (see "Queries first"; 0: `sliceNanoseconds`).
    let querySliceNanoseconds: UInt64
    /// Bodies of at least this many bytes go to the intake thread (0: none do).
    let threadBodyBytes: Int
    /// Events admitted per step (between two looks at the clock, and per lock hold).
    private let stepEvents = 64
    private var queue: Deque<Job> = []
    private var idleHandle: UnsafeMutablePointer<uv_idle_t>?
    private var isIdleRunning = false
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private var worker: WorkerThread?
    /// Jobs handed to the intake thread whose completion has not yet run on the loop.
    private var threadJobs = 0
    private let threadSliceMicroseconds: Int
    private let threadNice: Int
    /// When the last query was served (`uv_hrtime`), and how long after it requests stay on
    /// the loop (0: they never do for queries' sake).
    var lastQueryAt: UInt64 = 0
    let queryQuietNanoseconds: UInt64
    private let isThreadIdleClass: Bool

    /// Held around each step's admissions (the duplicate-check table), on either thread.
    let admissionLock: NSLock
    /// Decodes a body on the loop into drafts (the server's decoder and its limits): nil, or
    /// the whole body's failure.
    var decode: (([UInt8], FeedBodyFormat, FeedDrafts) -> FeedBodyError?)!
    /// The loop decoder's incremental form (`FeedDecoder.beginItems`, `nextItems`, `endItems`).
    var beginItems: (([UInt8], FeedBodyFormat) -> Result<Void, FeedBodyError>?)?
    var nextItems: ((FeedDrafts, Int) -> Bool)!
    var endItems: (() -> Void)!
    /// Decodes a body on the intake thread (a decoder of its own, same limits).
    var threadDecode: (([UInt8], FeedBodyFormat, FeedDrafts) -> FeedBodyError?)?
    /// Admits each event by its duplicate-check key (`Engine.admit(key:…)`, under
    /// `admissionLock`); an admitted one gets its sequence and its WAL record goes into the
    /// step's submission (`FeedCommitter.add`); then the step is submitted to the group commit
    /// (`submit`). Called per event, so directly rather than through closures (each call of a
    /// closure capturing the server retained and released it: ~3% of the intake thread).
    /// Both outlive the intake (the server owns all three).
    unowned(unsafe) var engine: Engine!
    unowned(unsafe) var committer: FeedCommitter!
    /// Touches the duplicate-check table for a step's keys before they are admitted (under the lock).
    var touch: ((UnsafeBufferPointer<Hash128>) -> UInt64)?
    var submit: ((inout FeedCommitter.Submission) -> Void)!
    /// The last sequence assigned so far (the admitting thread's).
    var lastAssignedSequence: (() -> UInt64)!
    /// A request is fully admitted: answer it once its events are durable. On the loop.
    var finished: ((Job) -> Void)!
    /// A request's body failed as a whole. On the loop.
    var failed: ((Job, APIError) -> Void)!

    init(loop: UnsafeMutablePointer<uv_loop_t>, sliceNanoseconds: UInt64, querySliceNanoseconds: UInt64 = 0, threadBodyBytes: Int = 0,
         threadSliceMicroseconds: Int = 0, threadNice: Int = 0, isThreadIdleClass: Bool = false, queryQuietMilliseconds: Int = 0,
         admissionLock: NSLock = NSLock()) {
        self.loop = loop
        self.sliceNanoseconds = sliceNanoseconds
        self.querySliceNanoseconds = querySliceNanoseconds
        self.threadBodyBytes = threadBodyBytes
        self.threadSliceMicroseconds = threadSliceMicroseconds
        self.threadNice = threadNice
        self.queryQuietNanoseconds = UInt64(max(queryQuietMilliseconds, 0)) * 1_000_000
        self.isThreadIdleClass = isThreadIdleClass
        self.admissionLock = admissionLock
        let idle = UnsafeMutablePointer<uv_idle_t>.allocate(capacity: 1)
        uv_idle_init(loop, idle)
        idle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        idleHandle = idle
    }

    /// No request is waiting to be admitted, on either thread.
    var isEmpty: Bool { queue.isEmpty && threadJobs == 0 }
    var queuedRequests: Int { queue.count + threadJobs }

    func enqueue(_ job: Job) {
        // Never both at once: see "Order" and "Queries first" above.
        if queue.isEmpty && threadBodyBytes > 0 && threadDecode != nil
            && (threadJobs > 0 || job.body.count >= threadBodyBytes) && !areQueriesActive {
            return runOnThread(job)
        }
        queue.append(job)
        startSlices()
    }

    private var areQueriesActive: Bool {
        queryQuietNanoseconds > 0 && lastQueryAt > 0 && uv_hrtime() &- lastQueryAt < queryQuietNanoseconds
    }

    /// Keeps the loop working off its queue (not while the thread still has requests: they
    /// were read first).
    private func startSlices() {
        guard threadJobs == 0, !queue.isEmpty, let idle = idleHandle, !isIdleRunning else { return }
        isIdleRunning = true
        uv_idle_start(idle) { handle in
            Unmanaged<FeedIntake>.fromOpaque(handle!.pointee.data).takeUnretainedValue().runSlice()
        }
    }

    /// Closes the loop handles and stops the intake thread. Queued work must be done first.
    func close() {
        worker?.close()
        worker = nil
        guard let idle = idleHandle else { return }
        idleHandle = nil
        uv_idle_stop(idle)
        uv_close(hc_idle_as_handle(idle)) { handle in handle?.deallocate() }
    }

    /// Carries a job to the intake thread and back.
    private final class ThreadJob {
        var job: Job
        init(_ job: Job) { self.job = job }
    }

    private func runOnThread(_ job: Job) {
        threadJobs += 1
        let worker = self.worker ?? WorkerThread(loop: loop, name: "hc-intake",
                                                 schedulingClass: isThreadIdleClass ? .idle : .normal(sliceMicroseconds: threadSliceMicroseconds, nice: threadNice))
        self.worker = worker
        var job = job
        job.wasOnIntakeThread = true
        let carrier = ThreadJob(job)
        let drafts = threadDrafts
        worker.submit({ [unowned self] in
            // On the intake thread: the whole request at once (it holds up no query). Only
            // this thread touches `threadDrafts`, one job at a time.
            drafts.reset(arrivalMilliseconds: carrier.job.arrivalMilliseconds)
            switch threadDecode!(carrier.job.body, carrier.job.format, drafts) {
            case nil:
                carrier.job.body = []
                carrier.job.rejections = drafts.takeRejections()
                while drafts.next < drafts.count { step(&carrier.job, drafts: drafts, submission: &threadSubmission) }
                carrier.job.throughSequence = lastAssignedSequence()
            case .invalidJSON(let detail)?:
                carrier.job.failure = .invalidJSON(detail)
            case .tooManyEvents(let limit)?:
                carrier.job.failure = .tooManyEvents(limit: limit)
            }
            drafts.reset(arrivalMilliseconds: 0)  // its PreparedEvents: released here, not on the loop
        }, then: { [unowned self] in
            threadJobs -= 1
            if let failure = carrier.job.failure { failed(carrier.job, failure) } else { finished(carrier.job) }
            startSlices()  // requests that queued on the loop behind the thread's
        })
    }

    /// Admits and submits the job's next `stepEvents` drafts: under the admission lock,
    /// their table slots touched together (their cache misses overlap) and the admissions;
    /// the admitted events' WAL records go into the step's submission as they are admitted,
    /// and the submission to the group commit at the end of the step.
    ///
    /// On the loop a step also ends at `deadline` (`uv_hrtime`; looked at every 8 events, 0:
    /// never), so that a step never runs far past its slice: right after a snapshot, an
    /// admission may first copy the shard of the duplicate-check table it touches
    /// (copy-on-write), and the step's cost is no longer a fixed 64 events' worth.
    private func step(_ job: inout Job, drafts: FeedDrafts, submission: inout FeedCommitter.Submission, deadline: UInt64 = 0) {
        let end = min(drafts.next + stepEvents, drafts.count)
        admissionLock.lock()
        if let touch {
            let first = drafts.next
            job.touchSink = drafts.keys.withUnsafeBufferPointer { touch(UnsafeBufferPointer(rebasing: $0[first..<end])) }
        }
        var step = 0
        while drafts.next < end {
            let index = drafts.next
            if engine.admit(key: drafts.keys[index], arrivalMilliseconds: job.arrivalMilliseconds) {
                committer.add(drafts, index: index, to: &submission)
                job.accepted += 1
            } else {
                job.duplicates += 1
            }
            drafts.next = index + 1
            step += 1
            if deadline != 0 && step & 7 == 0 && uv_hrtime() >= deadline { break }
        }
        admissionLock.unlock()
        submit(&submission)
    }

    private func runSlice() {
        let deadline = uv_hrtime() &+ (querySliceNanoseconds > 0 && areQueriesActive ? querySliceNanoseconds : sliceNanoseconds)
        repeat {
            // Taken out while worked on (moved, not copied), put back if not finished.
            guard var job = queue.popFirst() else { break }
            if !job.isDecoded && !job.isDecodingInSteps {
                // A large body is decoded a step at a time, interleaved with its admissions:
                // decoding 1,000 events at once (and freeing them at once) held a query up
                // for ~0.8 ms. Only a body that can no longer fail as a whole is (see
                // `FeedDecoder.beginItems`); any other is decoded whole.
                loopDrafts.reset(arrivalMilliseconds: job.arrivalMilliseconds)
                if job.body.count >= stepDecodeBodyBytes, let begin = beginItems, let begun = begin(job.body, job.format) {
                    switch begun {
                    case .success:
                        job.isDecodingInSteps = true
                        job.body = []
                        queue.prepend(job)
                    case .failure(.invalidJSON(let detail)):
                        failed(job, .invalidJSON(detail))
                    case .failure(.tooManyEvents(let limit)):
                        failed(job, .tooManyEvents(limit: limit))
                    }
                    continue
                }
                switch decode(job.body, job.format, loopDrafts) {
                case nil:
                    job.isDecoded = true
                    job.body = []
                    job.rejections = loopDrafts.takeRejections()
                    queue.prepend(job)
                case .invalidJSON(let detail)?:
                    loopDrafts.reset(arrivalMilliseconds: 0)
                    failed(job, .invalidJSON(detail))
                case .tooManyEvents(let limit)?:
                    loopDrafts.reset(arrivalMilliseconds: 0)
                    failed(job, .tooManyEvents(limit: limit))
                }
                continue  // look at the clock after a decode
            }
            if job.isDecodingInSteps {
                // `loopDrafts` holds the next decoded events of this job (the only one being
                // decoded in steps: the head of the queue).
                if loopDrafts.next == loopDrafts.count && !job.isDecoderExhausted {
                    loopDrafts.reset(arrivalMilliseconds: job.arrivalMilliseconds)
                    job.isDecoderExhausted = nextItems(loopDrafts, stepEvents)
                    job.rejections.append(contentsOf: loopDrafts.takeRejections())
                }
                if loopDrafts.next < loopDrafts.count {
                    step(&job, drafts: loopDrafts, submission: &stepSubmission, deadline: deadline)
                }
                if job.isDecoderExhausted && loopDrafts.next == loopDrafts.count {
                    endItems()
                    loopDrafts.reset(arrivalMilliseconds: 0)
                    job.isDecodingInSteps = false
                    job.throughSequence = lastAssignedSequence()
                    finished(job)
                } else {
                    queue.prepend(job)
                }
                continue
            }
            if loopDrafts.next < loopDrafts.count {
                step(&job, drafts: loopDrafts, submission: &stepSubmission, deadline: deadline)
            }
            if loopDrafts.next == loopDrafts.count {
                loopDrafts.reset(arrivalMilliseconds: 0)
                job.throughSequence = lastAssignedSequence()
                finished(job)
            } else {
                queue.prepend(job)
            }
        } while uv_hrtime() < deadline
        if queue.isEmpty, let idle = idleHandle {
            isIdleRunning = false
            uv_idle_stop(idle)
        }
    }
    /// Bodies at least this large are decoded in steps on the loop (smaller ones at once:
    /// a step's worth of events or less).
    private let stepDecodeBodyBytes = 8 * 1024
    /// The drafts of the job at the head of the loop's queue, and the loop's step submission.
    private let loopDrafts = FeedDrafts()
    private var stepSubmission = FeedCommitter.Submission()
    /// The intake thread's (touched only on it).
    private let threadDrafts = FeedDrafts()
    private var threadSubmission = FeedCommitter.Submission()
}
