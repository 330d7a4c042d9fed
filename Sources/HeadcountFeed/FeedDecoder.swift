// Feed decoding: bytes -> validated FeedEvent values.
import HeadcountCore
