// The libuv shell.
import CLibUV
import CHTTPParser
import HeadcountCore
