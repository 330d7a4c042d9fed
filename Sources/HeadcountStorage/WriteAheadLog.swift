// WAL and snapshot files.
import HeadcountCore
